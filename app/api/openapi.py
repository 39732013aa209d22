"""/openapi.json as the error handler really answers: every 4xx/5xx body, validation errors
included, is an ErrorOut, not FastAPI's default HTTPValidationError; every operation can
answer 503 at the request deadline (app.api.limits), with an UnavailableOut; and the order
routes' bearer token is optional in the docs when the app runs without customer auth, as it is
in the app (CUSTOMER_AUTH=off)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.api.dependencies import CUSTOMER_SCHEME
from app.api.errors import PayloadTooLarge, status_code
from app.api.schemas import ErrorOut, UnavailableOut
from app.errors import DependencyUnavailable, InvalidInput


def document_errors(app: FastAPI, *, customer_auth: bool = False) -> None:
    """`customer_auth`: whether the order routes require a token (CUSTOMER_AUTH=jwt); without
    it their scheme is documented as optional (an empty alternative), since anyone may call
    them."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            error_ref = {"$ref": "#/components/schemas/ErrorOut"}
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            schemas["ErrorOut"] = ErrorOut.model_json_schema()
            unavailable_ref = {"$ref": "#/components/schemas/UnavailableOut"}
            schemas["UnavailableOut"] = UnavailableOut.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
            invalid, too_large = str(status_code(InvalidInput)), str(status_code(PayloadTooLarge))
            unavailable = str(status_code(DependencyUnavailable))
            for operation in (op for path in schema["paths"].values() for op in path.values()):
                responses = operation.setdefault("responses", {})
                if invalid in responses:
                    responses[invalid] = _documented(InvalidInput.description, error_ref)
                if "requestBody" in operation:
                    responses[too_large] = _documented(PayloadTooLarge.description, error_ref)
                if unavailable not in responses:
                    responses[unavailable] = _documented(_DEADLINE, unavailable_ref)
                security = operation.get("security", [])
                if not customer_auth and any(CUSTOMER_SCHEME in entry for entry in security):
                    operation["security"] = [*security, {}]
            schemas.pop("HTTPValidationError", None)
            schemas.pop("ValidationError", None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


_DEADLINE = (
    "The request deadline passed (REQUEST_TIMEOUT_SECONDS): the sidecar or the state store "
    "did not answer. `may_have_happened` and `retry` say whether to repeat it and how"
)


def _documented(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}
