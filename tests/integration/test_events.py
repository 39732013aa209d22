"""GET /orders/{id}/events on the real stack: an order's steps as they happen, then its result."""

from __future__ import annotations

import asyncio

import httpx

from tests.fixtures.orders import create, new_id
from tests.fixtures.sse import collect


async def test_a_small_order_streams_its_steps_to_the_finished_event(
    api: httpx.AsyncClient,
) -> None:
    order_id = new_id("sse")
    await create(api, "paperclip", 1, order_id)

    async with asyncio.timeout(90):
        async with api.stream(
            "GET", f"/orders/{order_id}/events", timeout=httpx.Timeout(90)
        ) as response:
            assert response.status_code == 200, await response.aread()
            assert response.headers["content-type"].startswith("text/event-stream")
            events = await collect(response)  # the stream ends by itself after `finished`

    assert events, "no event"
    *steps, finished = events
    assert {event.event for event in steps} <= {"step"}
    assert finished.event == "finished"
    assert finished.data["order_id"] == order_id
    assert finished.data["status"] == "COMPLETED"
    assert finished.data["result"] == {"processed": True, "reason": None}
    ids = [int(event.id or "-1") for event in events]
    assert ids == sorted(set(ids)), ids  # strictly increasing: no repeats
    # The steps the stream saw are the order's own, in the order the workflow entered them.
    history = (await api.get(f"/orders/{order_id}/history")).json()["timeline"]
    entered = [entry["detail"] for entry in history if entry["event"] == "step"]
    seen = [event.data["step"] for event in steps if event.data["step"] is not None]
    assert seen == [step for step in entered if step in seen], (seen, entered)
