"""Shutdown waits for changes still running behind requests already answered (a create that
got the deadline's 503), up to SHUTDOWN_DRAIN_SECONDS, before the clients close."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest

from app.errors import DependencyUnavailable
from tests.fixtures.api import Api, running_api
from tests.fixtures.fakes import InMemoryStateStore
from tests.fixtures.waiting import eventually

PAPERCLIPS = {"item": "paperclip", "quantity": 3}
# The request deadline that answers the held create with a 503. The create must reach its first
# write before it strikes (else it is given up, with nothing to wait for): with the short 0.5 s
# one, a loaded machine's event loop overran it (1 run in 3 under three busy loops: the drain
# logged nothing, the 503 named no order).
REQUEST_TIMEOUT_SECONDS = 2.0


@asynccontextmanager
async def served(
    store: InMemoryStateStore, drain_seconds: float
) -> AsyncIterator[tuple[Api, Callable[[], Awaitable[None]], asyncio.Task[None]]]:
    """The app, and a way to begin its shutdown (the lifespan's exit) while the test watches:
    (api, stop, the task that ends when shutdown has)."""
    ready: asyncio.Queue[Api] = asyncio.Queue()
    stopping = asyncio.Event()

    async def serve() -> None:
        async with running_api(
            store, REQUEST_TIMEOUT_SECONDS, shutdown_drain_seconds=drain_seconds
        ) as api:
            await ready.put(api)
            await stopping.wait()

    server = asyncio.create_task(serve())

    async def stop() -> None:
        stopping.set()

    try:
        yield await ready.get(), stop, server
    finally:
        stopping.set()
        await asyncio.wait_for(server, timeout=10)


async def shutdown_began(caplog: pytest.LogCaptureFixture) -> None:
    async def waiting() -> bool:
        return "shutdown: waiting up to" in caplog.text

    await eventually(waiting, bool, deadline_seconds=5, interval=0.01, what="the drain began")


async def stop_behind_a_held_create(
    api: Api, stop: Callable[[], Awaitable[None]], caplog: pytest.LogCaptureFixture
) -> tuple[asyncio.Event, httpx.Response]:
    """A create whose record's save the store holds gets its 503; then shutdown begins and
    waits for it. Returns the gate that releases the save, and the 503."""
    gate = api.store.hold_saves("order:")
    response = await api.client.post("/orders", json=PAPERCLIPS)
    assert response.status_code == 503, response.text
    await stop()
    await shutdown_began(caplog)
    return gate, response


async def test_shutdown_waits_for_a_create_whose_request_got_a_503(
    store: InMemoryStateStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.services.changes")
    async with served(store, drain_seconds=3) as (api, stop, server):
        gate, response = await stop_behind_a_held_create(api, stop, caplog)
        order_id = response.json()["order_id"]

        assert not server.done()  # held by the unfinished create
        gate.set()
        await asyncio.wait_for(server, timeout=5)

    assert f"order:{order_id}" in store.data
    assert [instance for _, instance, _ in api.workflows.scheduled] == [order_id]
    assert "still unfinished" not in caplog.text


async def test_shutdown_gives_up_on_a_change_at_its_deadline_and_names_it(
    store: InMemoryStateStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.services.changes")
    async with served(store, drain_seconds=0.3) as (api, stop, server):
        store.hold_saves("order:")  # never released: the store hangs
        response = await api.client.post("/orders", json=PAPERCLIPS)
        order_id = response.json()["order_id"]

        await stop()
        await asyncio.wait_for(server, timeout=5)

    assert f"still unfinished after 0.3s: create order {order_id}" in caplog.text


async def test_a_change_asked_for_while_shutting_down_is_refused_and_changes_nothing(
    store: InMemoryStateStore, caplog: pytest.LogCaptureFixture
) -> None:
    # Uvicorn stops taking requests before the lifespan's exit; this is the service's own line,
    # for a request that would still reach it (another server, a request already routed).
    caplog.set_level(logging.INFO, logger="app.services.changes")
    async with served(store, drain_seconds=3) as (api, stop, _):
        gate, _ = await stop_behind_a_held_create(api, stop, caplog)  # keeps the drain waiting

        with pytest.raises(DependencyUnavailable, match="refused, the service is shutting down"):
            await api.services.orders.create("paperclip", 3, "late")
        gate.set()

    assert "order:late" not in store.data
