"""Limits on every request: bodies over a size get 413 before they are read whole, and a request
that the sidecar or the state store leaves hanging gets 503 at a deadline."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import PayloadTooLarge, error_body, status_code, unavailable_body
from app.errors import DependencyUnavailable
from app.services.changes import attempting


class _TooLarge(Exception):
    pass


class BodySizeLimit:
    """413 JSON for bodies over `max_bytes`: a declared length is refused before any byte is
    read; a streamed body is cut off as soon as it crosses the limit.

    FastAPI's own `max_body_size` answers a declared length in plain text, which would break
    the one error shape every response follows.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _reject(self, send: Send) -> None:
        detail = f"request body is over {self.max_bytes} bytes"
        await _send_json(
            send, status_code(PayloadTooLarge), error_body(PayloadTooLarge.error, detail)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._reject(send)
            return
        received, too_large, answered = 0, False, False

        async def limited_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                too_large = True
                raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal answered
            # The framework may turn the aborted read into an error response of its own;
            # answer with the 413 instead.
            if too_large:
                if not answered:
                    answered = True
                    await self._reject(send)
                return
            answered = answered or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _TooLarge:
            if not answered:
                await self._reject(send)


async def _send_json(send: Send, status: int, body: Mapping[str, object]) -> None:
    payload = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


class RequestDeadline:
    """503 for a request that has not answered within `seconds` plus the long poll it asked for
    (`?wait=N`, at most `max_wait`). Answered means the response has started: an event stream
    (GET /orders/{id}/events) then runs as long as its order does.

    Every request goes through the sidecar to Redis; when either freezes (SIGSTOP, a stalled
    disk, a partition) calls hang rather than fail, and clients and balancers would hang with
    them. The deadline turns that into an answer they can act on: whether the request's change
    may have happened (its attempt, app.services.changes), and how to repeat it safely.
    """

    def __init__(self, app: ASGIApp, seconds: float, max_wait: int) -> None:
        self.app = app
        self.seconds = seconds
        self.max_wait = max_wait

    def _budget(self, scope: Scope) -> float:
        query = parse_qs(scope.get("query_string", b"").decode(errors="replace"))
        try:
            wait = int(query.get("wait", ["0"])[0])
        except ValueError:
            wait = 0
        return self.seconds + min(max(wait, 0), self.max_wait)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        budget = self._budget(scope)
        started = False
        deadline = asyncio.timeout(budget)

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if not started and message["type"] == "http.response.start":
                started = True
                deadline.reschedule(None)
            await send(message)

        with attempting() as attempt:
            try:
                async with deadline:
                    await self.app(scope, receive, tracking_send)
            except TimeoutError:
                if started:
                    raise
                # A change not yet written is never written now (its 503 says nothing changed).
                attempt.abandon()
                detail = f"the Dapr sidecar or its state store did not answer within {budget:g}s"
                await _send_json(
                    send, status_code(DependencyUnavailable), unavailable_body(detail, attempt)
                )
