"""Refuse oversized request bodies with 413 before reading them whole."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import PayloadTooLarge, error_body, status_code


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
        body = json.dumps(
            error_body(PayloadTooLarge.error, f"request body is over {self.max_bytes} bytes")
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send(
            {
                "type": "http.response.start",
                "status": status_code(PayloadTooLarge),
                "headers": headers,
            }
        )
        await send({"type": "http.response.body", "body": body})

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
