"""The manager-action outbox when several replicas run its delivery loop over one store."""

from __future__ import annotations

import asyncio

from app.config import Settings
from app.services.orders import OrderService
from app.workflows.contracts import APPROVAL_EVENT, Step
from tests.fixtures.fakes import FakeWorkflowGateway, InMemoryStateStore


async def test_replicas_delivering_the_same_queued_action_leave_it_delivered_once_recorded(
    store: InMemoryStateStore,
) -> None:
    gateway = FakeWorkflowGateway()
    replicas = [OrderService(store, gateway, Settings(manager_token="t")) for _ in range(3)]
    await replicas[0].create("cars", 4, "o1")
    gateway.set("o1", "RUNNING", Step.AWAITING_APPROVAL)
    gateway.unavailable = True  # the engine is away: the approval is queued
    await replicas[0].approve("o1", True, "ana")
    assert await replicas[0].outbox.queued() == {"o1"}
    gateway.unavailable = False

    waiting = await asyncio.gather(*(r.outbox.deliver_pending() for r in replicas))

    assert waiting == [0, 0, 0]
    assert await replicas[1].outbox.queued() == set()
    record = store.data["order:o1"][0]
    assert record["pending_events"] == {}
    assert record["decision"]["decision"] == "approved"
    # Each delivery is the one recorded decision (the workflow reads the record, and ignores a
    # second copy of the event: tests/unit/workflows, test_an_approval_event_delivered_twice).
    assert {(order, event) for order, event, _ in gateway.events} == {("o1", APPROVAL_EVENT)}
    assert 1 <= len(gateway.events) <= 3
