"""The one mapping from errors to HTTP: status codes, the `{"error", "detail"}` body, and the
`responses=` documentation that routes derive from the same classes."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from app.api.schemas import ErrorOut, UnavailableOut
from app.errors import (
    AppError,
    Conflict,
    DependencyUnavailable,
    InvalidInput,
    NotFound,
    SidecarUnreachable,
)
from app.services.changes import ChangeAttempt, attempt_in_progress


class Unauthorized(AppError):
    """Authentication is an HTTP concern: the domain never sees a token."""

    error = "unauthorized"
    description = "Missing or wrong token (the manager token, or a customer's JWT)"


class Forbidden(AppError):
    """Authenticated, but not as someone who may do this (a customer's token on a manager
    route)."""

    error = "forbidden"
    description = "Needs a manager's token"


class PayloadTooLarge(AppError):
    error = "payload_too_large"
    description = "Body over 16 KiB"


STATUS_CODES: dict[type[AppError], int] = {
    InvalidInput: 422,
    NotFound: 404,
    Conflict: 409,
    Unauthorized: 401,
    Forbidden: 403,
    PayloadTooLarge: 413,
    DependencyUnavailable: 503,
    # Only when the request is safe to repeat elsewhere; otherwise a 503 (see _app_error).
    SidecarUnreachable: 502,
}


def status_code(error: type[AppError]) -> int:
    """The status of `error`, or of its nearest mapped base class (500 when none is)."""
    for cls in error.__mro__:
        if cls in STATUS_CODES:
            return STATUS_CODES[cls]
    return 500


ErrorDoc = type[AppError] | tuple[type[AppError], str]


def error_responses(*errors: ErrorDoc) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route that can raise `errors` (a class, or a class with a description
    specific to that route): status, ErrorOut body and description come from the class."""
    documented: dict[int | str, dict[str, Any]] = {}
    for doc in errors:
        error, description = doc if isinstance(doc, tuple) else (doc, doc.description)
        model = UnavailableOut if issubclass(error, DependencyUnavailable) else ErrorOut
        documented[status_code(error)] = {"model": model, "description": description}
    return documented


def error_body(error: str, detail: str) -> dict[str, str]:
    return ErrorOut(error=error, detail=detail).model_dump()


def unavailable_body(detail: str, attempt: ChangeAttempt | None) -> dict[str, object]:
    """A 503's body: `detail` (what did not answer), then whether the request's change may
    have happened and how to repeat it safely, as words and as fields. "Nothing was changed"
    only when nothing had been written (see app.services.changes)."""
    attempt = attempt or ChangeAttempt()
    order_id = attempt.order_id
    if not attempt.sent:
        advice = "Nothing was changed; the request can be repeated as it was."
    elif attempt.retry == "same_order_id":
        advice = (
            f"Order {order_id} may have been accepted: repeat the create with "
            f'"order_id": "{order_id}" (or the header Idempotency-Key: {order_id}) to get it, '
            "never a second one."
        )
    elif attempt.retry == "same_request":
        advice = (
            f"The decision on order {order_id} may have been recorded: repeating it answers "
            "409 decision_already_made naming it if it was."
        )
    else:
        advice = "The stock may have changed: read it (GET /inventory) before repeating."
    return UnavailableOut(
        error=DependencyUnavailable.error,
        detail=f"{detail.rstrip('.')}. {advice}",
        may_have_happened=attempt.sent,
        retry=attempt.retry if attempt.sent else "any",
        order_id=order_id,
    ).model_dump()


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
    if isinstance(exc, DependencyUnavailable):
        attempt = attempt_in_progress()
        body = unavailable_body(exc.detail, attempt)
        # This replica's own sidecar is gone: 502, which the proxy retries on another replica
        # and counts against this one (devstack/stack/replicas.py), but only for a request that is
        # safe to repeat as it was. Everything else is the 503 every replica would answer.
        elsewhere = (
            isinstance(exc, SidecarUnreachable) and (attempt or ChangeAttempt()).safe_to_repeat
        )
        code = SidecarUnreachable if elsewhere else DependencyUnavailable
        return JSONResponse(body, status_code(code))
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
    return JSONResponse(error_body(exc.error, exc.detail), status_code(type(exc)), headers=headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(
        error_body(InvalidInput.error, _describe(list(exc.errors()))), status_code(InvalidInput)
    )


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
            error_body(InvalidInput.error, f"request body could not be parsed: {exc.detail}"),
            status_code(InvalidInput),
        )
    codes = {404: NotFound.error, 405: "method_not_allowed", 413: PayloadTooLarge.error}
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
