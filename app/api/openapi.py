"""/openapi.json as the error handler really answers: every 4xx/5xx body, validation errors
included, is an ErrorOut, not FastAPI's default HTTPValidationError."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.api.errors import PayloadTooLarge, status_code
from app.api.schemas import ErrorOut
from app.errors import InvalidInput


def document_errors(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            error_ref = {"$ref": "#/components/schemas/ErrorOut"}
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            schemas["ErrorOut"] = ErrorOut.model_json_schema()
            invalid, too_large = str(status_code(InvalidInput)), str(status_code(PayloadTooLarge))
            for operation in (op for path in schema["paths"].values() for op in path.values()):
                responses = operation.setdefault("responses", {})
                if invalid in responses:
                    responses[invalid] = _documented(InvalidInput.description, error_ref)
                if "requestBody" in operation:
                    responses[too_large] = _documented(PayloadTooLarge.description, error_ref)
            schemas.pop("HTTPValidationError", None)
            schemas.pop("ValidationError", None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _documented(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}
