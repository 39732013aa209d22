"""The manager-action outbox when several replicas run its delivery loop over one store."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from app.config import Settings
from app.domain.orders import OrderRecord
from app.services.orders import OrderService
from app.workflows.contracts import APPROVAL_EVENT, CANCEL_EVENT, Step
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
    record = OrderRecord.model_validate(store.data["order:o1"][0])
    assert (record.undelivered(), record.delivered) == ([], 1)
    assert [(action.seq, action.kind, action.by) for action in record.actions] == [
        (1, "approve", "ana")
    ]
    # Each delivery is the one recorded decision (the workflow reads the record, and ignores a
    # second copy of the event: tests/unit/workflows, test_an_approval_event_delivered_twice).
    assert {(order, event) for order, event, _ in gateway.events} == {("o1", APPROVAL_EVENT)}
    assert 1 <= len(gateway.events) <= 3


class _DropsAfter(FakeWorkflowGateway):
    """Raises the first `events_taken` events, then is away."""

    def __init__(self, events_taken: int) -> None:
        super().__init__()
        self.events_taken = events_taken

    async def raise_event(self, instance_id: str, event: str, data: Any) -> None:
        if len(self.events) >= self.events_taken:
            self.unavailable = True
        await super().raise_event(instance_id, event, data)


async def test_queued_actions_are_delivered_in_log_order_resuming_after_the_last_delivered(
    store: InMemoryStateStore,
) -> None:
    """Two actions owed (as pause and resume will be): the engine takes the first and goes
    away; the record says so, and the next round delivers only the second."""
    gateway = _DropsAfter(events_taken=1)
    service = OrderService(store, gateway, Settings(manager_token="t"))
    await service.create("cars", 4, "o1")
    gateway.set("o1", "RUNNING", Step.AWAITING_APPROVAL)
    stored, etag = store.data["order:o1"]
    record = OrderRecord.model_validate(stored)
    at = datetime(2026, 12, 7, tzinfo=UTC)
    record = record.with_action(record.next_action("approve", "ana", at))
    record = record.with_action(record.next_action("cancel", "bo", at))
    await service.outbox.add("o1")
    await store.save("order:o1", record.model_dump(mode="json"), etag)

    assert await service.outbox.deliver_pending() == 1
    assert OrderRecord.model_validate(store.data["order:o1"][0]).delivered == 1
    gateway.unavailable, gateway.events_taken = False, 2
    assert await service.outbox.deliver_pending() == 0

    assert [(event, data["seq"]) for _, event, data in gateway.events] == [
        (APPROVAL_EVENT, 1),
        (CANCEL_EVENT, 2),
    ]
    assert OrderRecord.model_validate(store.data["order:o1"][0]).delivered == 2
    assert await service.outbox.queued() == set()
