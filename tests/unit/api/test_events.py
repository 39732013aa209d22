"""GET /orders/{id}/events and GET /events over the in-process app and the fakes.

httpx's ASGI transport hands over a streamed body once the app has sent all of it, so each test
drives the order to its end (or shuts the app down) and then reads the whole stream.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from asgi_lifespan import LifespanManager

from app.api.dependencies import Services
from app.config import Settings
from app.live.progress import FINISHED
from app.main import create_app
from app.workflows.contracts import Step
from tests.fixtures.api import MANAGER_TOKEN, SHORT_REQUEST_TIMEOUT_SECONDS, Api, assert_error
from tests.fixtures.fakes import FakeSidecar, FakeWorkflowGateway, InMemoryStateStore, fake_services
from tests.fixtures.manager import manager_headers
from tests.fixtures.sse import Event, collect
from tests.fixtures.waiting import eventually

PROCESSED = {"processed": True, "reason": None}


@pytest.fixture
def request_timeout_seconds() -> float:
    return SHORT_REQUEST_TIMEOUT_SECONDS


async def place(api: Api, order_id: str = "sse-1") -> str:
    response = await api.client.post(
        "/orders", json={"item": "paperclip", "quantity": 1, "order_id": order_id}
    )
    assert response.status_code == 202, response.text
    return order_id


async def read_once_more(workflows: FakeWorkflowGateway) -> None:
    """Until the hub's poller has read the engine twice more: it has seen the last change."""
    target = workflows.reads + 2

    async def reads() -> int:
        return workflows.reads

    await eventually(reads, lambda n: n >= target, deadline_seconds=5, interval=0.001, what="reads")


def stream(api: Api, path: str, **headers: str) -> asyncio.Task[list[Event]]:
    async def read() -> list[Event]:
        async with api.client.stream("GET", path, headers=headers) as response:
            assert response.status_code == 200, await response.aread()
            assert response.headers["content-type"].startswith("text/event-stream")
            return await collect(response)

    return asyncio.create_task(read())


async def run_to_the_end(api: Api, order_id: str, steps: list[Step]) -> None:
    for step in steps:
        api.workflows.set(order_id, "RUNNING", step)
        await read_once_more(api.workflows)
    api.workflows.set(order_id, "COMPLETED", Step.DONE, PROCESSED)


async def test_events_follow_each_step_and_end_with_the_result(api: Api) -> None:
    order_id = await place(api)
    events = stream(api, f"/orders/{order_id}/events")
    await read_once_more(api.workflows)

    await run_to_the_end(api, order_id, [Step.NOTIFYING, Step.RESERVING, Step.PROCESSING_PAYMENT])
    seen = await asyncio.wait_for(events, 5)

    assert [(e.event, e.data["step"]) for e in seen] == [
        ("step", None),
        ("step", "notifying"),
        ("step", "reserving_inventory"),
        ("step", "processing_payment"),
        ("finished", "done"),
    ]
    assert [int(e.id or "") for e in seen] == sorted({int(e.id or "") for e in seen})
    assert seen[-1].id == str(FINISHED)
    assert seen[-1].data["result"] == PROCESSED
    # Each event's data is the order as GET /orders/{id} returns it.
    assert seen[-1].data == (await api.client.get(f"/orders/{order_id}")).json()


async def test_a_late_client_gets_the_current_state_first(api: Api) -> None:
    order_id = await place(api)
    api.workflows.set(order_id, "RUNNING", Step.AWAITING_APPROVAL)
    events = stream(api, f"/orders/{order_id}/events")
    await read_once_more(api.workflows)

    api.workflows.set(order_id, "COMPLETED", Step.DONE, PROCESSED)
    seen = await asyncio.wait_for(events, 5)

    assert [(e.event, e.data["step"]) for e in seen] == [
        ("step", "awaiting_approval"),
        ("finished", "done"),
    ]


async def test_last_event_id_resumes_after_it_without_repeats(api: Api) -> None:
    order_id = await place(api)
    api.workflows.set(order_id, "RUNNING", Step.RESERVING)
    first = stream(api, f"/orders/{order_id}/events")
    await read_once_more(api.workflows)
    api.workflows.set(order_id, "RUNNING", Step.PROCESSING_PAYMENT)
    await read_once_more(api.workflows)
    api.workflows.set(order_id, "COMPLETED", Step.DONE, PROCESSED)
    [reserving, paying, finished] = await asyncio.wait_for(first, 5)

    resumed = await asyncio.wait_for(
        stream(api, f"/orders/{order_id}/events", **{"Last-Event-ID": str(reserving.id)}), 5
    )
    assert resumed == [finished]  # the current state is past the id: only what follows it
    assert paying.data["step"] == "processing_payment"
    caught_up = await asyncio.wait_for(
        stream(api, f"/orders/{order_id}/events", **{"Last-Event-ID": str(finished.id)}), 5
    )
    assert caught_up == []  # nothing new: the stream ends at once


async def test_an_unknown_order_is_a_404_error(api: Api) -> None:
    response = await api.client.get("/orders/no-such-order/events")
    assert_error(response, 404, "not_found")


async def test_a_malformed_last_event_id_is_a_422_error(api: Api) -> None:
    order_id = await place(api)
    response = await api.client.get(f"/orders/{order_id}/events", headers={"Last-Event-ID": "x"})
    assert_error(response, 422, "invalid_input")


async def test_every_order_stream_needs_a_manager_token(api: Api) -> None:
    assert_error(await api.client.get("/events"), 401, "unauthorized")
    wrong = {"Authorization": "Bearer wrong"}
    assert_error(await api.client.get("/events", headers=wrong), 401, "unauthorized")


async def test_streams_end_cleanly_when_the_app_shuts_down(store: InMemoryStateStore) -> None:
    workflows = FakeWorkflowGateway()
    settings = Settings(
        manager_token=MANAGER_TOKEN, order_events_poll_seconds=0.01, log_level="WARNING"
    )
    built: list[Services] = []
    app = create_app(settings, services=fake_services(store, workflows, FakeSidecar(), built))
    manager = manager_headers(MANAGER_TOKEN)
    lifespan = LifespanManager(app)
    await lifespan.__aenter__()
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=lifespan.app), base_url="http://test"
    )
    async with client:
        api = Api(client, app, store, workflows, FakeSidecar(), built[-1])
        everything = stream(api, "/events", **manager)
        await asyncio.sleep(0.05)  # the manager's stream is open before the order is placed
        order_id = await place(api, "sse-shutdown")
        one = stream(api, f"/orders/{order_id}/events")
        await read_once_more(workflows)
        workflows.set(order_id, "RUNNING", Step.AWAITING_APPROVAL)
        await read_once_more(workflows)

        await lifespan.__aexit__(None, None, None)  # the server stops: streams end, nothing hangs

        all_seen, one_seen = await asyncio.wait_for(asyncio.gather(everything, one), 5)
    assert [e.data["step"] for e in one_seen] == [None, "awaiting_approval"]
    assert [(e.data["order_id"], e.data["step"]) for e in all_seen] == [
        (order_id, None),
        (order_id, "awaiting_approval"),
    ]
    assert all(e.id is None for e in all_seen)


async def test_a_started_stream_outlives_the_request_deadline(api: Api) -> None:
    order_id = await place(api)
    events = stream(api, f"/orders/{order_id}/events")
    await read_once_more(api.workflows)

    # The deadline bounds the time to the answer, not the stream: time passing is the point.
    await asyncio.sleep(SHORT_REQUEST_TIMEOUT_SECONDS * 2)
    api.workflows.set(order_id, "COMPLETED", Step.DONE, PROCESSED)
    seen = await asyncio.wait_for(events, 5)

    assert [e.event for e in seen] == ["step", "finished"]
