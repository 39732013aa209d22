"""The sidecar probe: what readiness reads, and what the worker watchdog's check does not."""

from __future__ import annotations

import asyncio

import httpx

from app.services.sidecar import SidecarProbe
from tests.fixtures.fakes import FakeSidecar, InMemoryStateStore


async def test_the_watchdog_check_does_not_read_the_state_store(
    store: InMemoryStateStore,
) -> None:
    sidecar = FakeSidecar(connected_workers=0)
    store.frozen = True  # any read would hang
    async with httpx.AsyncClient(transport=sidecar.transport()) as http:
        probe = SidecarProbe(http, "http://sidecar", store=store, store_deadline=0.2)

        assert await asyncio.wait_for(probe.worker_missing(), 1.0) is True
        sidecar.connected_workers = 1
        assert await asyncio.wait_for(probe.worker_missing(), 1.0) is False
        assert (await probe.readiness()).reason == "state store did not answer within 0.2s"


async def test_a_refused_metadata_call_is_not_ready_and_not_a_connected_worker(
    store: InMemoryStateStore,
) -> None:
    sidecar = FakeSidecar(metadata_status=401)
    async with httpx.AsyncClient(transport=sidecar.transport()) as http:
        probe = SidecarProbe(http, "http://sidecar", store=store)

        readiness = await probe.readiness()
        assert not await probe.worker_connected()
        assert not await probe.worker_missing()  # refused is no evidence of a missing worker
    assert readiness.reason == "sidecar metadata answered 401: refused"
    assert not readiness.ready
