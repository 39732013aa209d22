"""One exception hierarchy for the service, turned into `{"error", "detail"}` JSON in one place."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match


class AppError(Exception):
    status_code = 500
    error = "internal_error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidInput(AppError):
    status_code = 422
    error = "invalid_input"


class NotFound(AppError):
    status_code = 404
    error = "not_found"


class Conflict(AppError):
    status_code = 409
    error = "conflict"


class Unauthorized(AppError):
    status_code = 401
    error = "unauthorized"


class PayloadTooLarge(AppError):
    status_code = 413
    error = "payload_too_large"


class DependencyUnavailable(AppError):
    """The sidecar or the state store did not answer; the request changed nothing and may be retried."""

    status_code = 503
    error = "unavailable"


def error_body(error: str, detail: str) -> dict[str, str]:
    return {"error": error, "detail": detail}


def _describe(errors: list[Any]) -> str:
    parts = []
    for item in errors:
        if item.get("type") == "json_invalid":
            parts.append("request body is not valid JSON")
            continue
        location = ".".join(str(part) for part in item.get("loc", ()) if part != "body")
        message = item.get("msg", "invalid")
        parts.append(f"{location}: {message}" if location else message)
    return "; ".join(parts) or "invalid request"


async def _app_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
    return JSONResponse(error_body(exc.error, exc.detail), exc.status_code, headers=headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(error_body("invalid_input", _describe(list(exc.errors()))), 422)


def _allowed_methods(request: Request) -> str:
    # Starlette answers 405 from the first route whose path matches, so /orders (GET and POST
    # are two routes) would advertise only one method. Collect them from every matching route
    # (FastAPI keeps included routers behind contexts, which iter_route_contexts unfolds); a
    # literal path such as /inventory/restock outranks a template such as /inventory/{item}.
    literal: set[str] = set()
    templated: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match != Match.NONE:
            target = templated if "{" in (route.path or "") else literal
            target |= set(route.methods or ())
    return ", ".join(sorted(literal or templated))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:
        # FastAPI's only 400 is a body it could not decode (e.g. not UTF-8): malformed input,
        # reported like every other malformed body.
        return JSONResponse(
            error_body("invalid_input", f"request body could not be parsed: {exc.detail}"), 422
        )
    codes = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    return JSONResponse(
        error_body(codes.get(exc.status_code, "http_error"), str(exc.detail)),
        exc.status_code,
        headers=headers,
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
