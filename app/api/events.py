"""Live order progress as Server-Sent Events: one order's steps, or every order's for managers.

Each event is named `step` (the order moved on) or `finished` (it has its result; the stream ends
after it), and its data is the order exactly as GET /orders/{id} returns it. The streams read
nothing themselves: the hub in app.live polls each watched order once for all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Annotated, Any, Final

import anyio
from fastapi import APIRouter, Header
from sse_starlette import EventSourceResponse, ServerSentEvent

from app.api.dependencies import EventsDep, ManagerViewerDep, OrdersDep, ViewerDep
from app.api.errors import Forbidden, Unauthorized, error_responses
from app.api.orders import OrderIdPath, order_out
from app.domain.customers import Viewer
from app.domain.orders import Order
from app.errors import NotFound
from app.live.progress import FINISHED, progress

router = APIRouter(tags=["events"])

# Keep-alive comments, so proxies and clients do not take a quiet order for a dead connection.
PING_SECONDS: Final = 15
# A client that stops reading is dropped after this, rather than holding the stream forever.
SEND_TIMEOUT_SECONDS: Final = 30
# How long a stream may take to end by itself once the server is stopping.
SHUTDOWN_GRACE_SECONDS: Final = 1.0

_STREAM_DOC: Final[dict[int | str, dict[str, Any]]] = {
    200: {
        "description": "`text/event-stream`: `step` events, then one `finished` event; each "
        "event's data is the order as GET /orders/{id} returns it",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


def _event(order: Order, viewer: Viewer, with_id: bool) -> ServerSentEvent:
    position = progress(order)
    return ServerSentEvent(
        data=order_out(order, viewer).model_dump_json(),
        event="finished" if position == FINISHED else "step",
        id=str(position) if with_id else None,
    )


def _stream(
    orders: AsyncGenerator[Order, None], viewer: Viewer, with_id: bool
) -> EventSourceResponse:
    # On the server's exit signal sse-starlette sets `shutdown`; the stream then ends as a
    # finished one does (the last chunk sent), rather than being cut off mid-response.
    shutdown = anyio.Event()

    async def encoded() -> AsyncIterator[ServerSentEvent]:
        async for order in _until(shutdown, orders):
            yield _event(order, viewer, with_id)

    return EventSourceResponse(
        encoded(),
        ping=PING_SECONDS,
        send_timeout=SEND_TIMEOUT_SECONDS,
        shutdown_event=shutdown,
        shutdown_grace_period=SHUTDOWN_GRACE_SECONDS,
    )


async def _until(stop: anyio.Event, orders: AsyncGenerator[Order, None]) -> AsyncIterator[Order]:
    """`orders` until they end or `stop` is set, whichever comes first."""
    stopping = asyncio.ensure_future(stop.wait())
    following: asyncio.Future[Order] | None = None
    try:
        while True:
            following = asyncio.ensure_future(anext(orders))
            await asyncio.wait({following, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not following.done():
                return
            try:
                order = following.result()
            except StopAsyncIteration:
                return
            following = None
            yield order
    finally:
        stopping.cancel()
        if following is not None and not following.done():
            # The generator runs in that task: stop it there before closing it.
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await following
        await orders.aclose()


@router.get(
    "/orders/{order_id}/events",
    response_class=EventSourceResponse,
    responses={
        **_STREAM_DOC,
        **error_responses(
            (NotFound, "Unknown order, or (CUSTOMER_AUTH=jwt) another customer's"),
            (Unauthorized, "CUSTOMER_AUTH=jwt: no valid token"),
        ),
    },
)
async def order_events(
    order_id: OrderIdPath,
    hub: EventsDep,
    orders: OrdersDep,
    viewer: ViewerDep,
    last_event_id: Annotated[
        int | None,
        Header(
            ge=0,
            le=FINISHED,
            description="Resume: only changes after this event id (sent back by EventSource)",
        ),
    ] = None,
) -> EventSourceResponse:
    """The order's progress as it happens: its current state first, then each step, then
    `finished` with the result. Event ids follow the order's progress, so a reconnect with
    `Last-Event-ID` gets only what it has not seen."""
    # 404 before the stream starts, for an unknown order and for another customer's alike (the
    # owner is checked before the hub watches it, so nobody else's order is even polled).
    await orders.check_visible(order_id, viewer)
    await hub.current(order_id)
    after = -1 if last_event_id is None else last_event_id
    return _stream(hub.follow(order_id, after), viewer, with_id=True)


@router.get(
    "/events",
    response_class=EventSourceResponse,
    responses={**_STREAM_DOC, **error_responses(Unauthorized, Forbidden)},
)
async def all_order_events(hub: EventsDep, manager: ManagerViewerDep) -> EventSourceResponse:
    """Managers: every order's changes while connected (the orders already watched, then each
    order accepted or decided meanwhile, to its end). A live feed: no ids, nothing to resume."""
    return _stream(hub.follow_all(), manager, with_id=False)
