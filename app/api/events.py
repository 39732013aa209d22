"""Live order progress as Server-Sent Events: one order's steps, or every order's for managers.

Each event is named `step` (the order moved on) or `finished` (it has its result; the stream ends
after it), and its data is the order exactly as GET /orders/{id} returns it. The streams read
nothing themselves: app.events' hub polls each watched order once for all of them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Final

from fastapi import APIRouter, Header
from sse_starlette import EventSourceResponse, ServerSentEvent

from app.api.dependencies import EventsDep, ManagerDep
from app.api.errors import Unauthorized, error_responses
from app.api.orders import OrderIdPath
from app.api.schemas import OrderOut
from app.domain.orders import Order
from app.errors import NotFound
from app.events.progress import FINISHED, progress

router = APIRouter(tags=["events"])

# Keep-alive comments, so proxies and clients do not take a quiet order for a dead connection.
PING_SECONDS: Final = 15
# A client that stops reading is dropped after this, rather than holding the stream forever.
SEND_TIMEOUT_SECONDS: Final = 30

_STREAM_DOC: Final[dict[int | str, dict[str, Any]]] = {
    200: {
        "description": "`text/event-stream`: `step` events, then one `finished` event; each "
        "event's data is the order as GET /orders/{id} returns it",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


def _event(order: Order, with_id: bool) -> ServerSentEvent:
    position = progress(order)
    return ServerSentEvent(
        data=OrderOut.model_validate(order, from_attributes=True).model_dump_json(),
        event="finished" if position == FINISHED else "step",
        id=str(position) if with_id else None,
    )


def _stream(events: AsyncIterator[Order], with_id: bool) -> EventSourceResponse:
    async def encoded() -> AsyncIterator[ServerSentEvent]:
        async for order in events:
            yield _event(order, with_id)

    return EventSourceResponse(encoded(), ping=PING_SECONDS, send_timeout=SEND_TIMEOUT_SECONDS)


@router.get(
    "/orders/{order_id}/events",
    response_class=EventSourceResponse,
    responses={**_STREAM_DOC, **error_responses((NotFound, "Unknown order"))},
)
async def order_events(
    order_id: OrderIdPath,
    hub: EventsDep,
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
    await hub.current(order_id)  # 404 before the stream starts
    after = -1 if last_event_id is None else last_event_id
    return _stream(hub.follow(order_id, after), with_id=True)


@router.get(
    "/events",
    response_class=EventSourceResponse,
    dependencies=[ManagerDep],
    responses={**_STREAM_DOC, **error_responses(Unauthorized)},
)
async def all_order_events(hub: EventsDep) -> EventSourceResponse:
    """Managers: every order's changes while connected (the orders already watched, then each
    order accepted meanwhile, to its end). A live feed: no ids, nothing to resume."""
    return _stream(hub.follow_all(), with_id=False)
