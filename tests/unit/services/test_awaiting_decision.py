"""The orders awaiting a manager's decision, kept in the store for the managers' feed: who
enters and leaves, that every write is idempotent and safe across replicas, and that the feed
drops what the record says is no longer waiting."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from app.config import Settings
from app.services.awaiting_decision import AwaitingDecision, ManagerFeedOrders
from app.services.order_records import OrderRecords
from app.services.orders import OrderService
from app.services.state_store import SidecarStateStore, StateStore
from app.workflows.contracts import OrderOutcome
from tests.fixtures.fakes import FakeWorkflowGateway, InMemoryStateStore, RedisStateApi

AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class NoNewOrders:
    async def poll(self) -> list[str]:
        return []


def orders(store: StateStore, gateway: FakeWorkflowGateway) -> OrderService:
    return OrderService(store, gateway, Settings(manager_token="t"))


def feed(store: StateStore) -> ManagerFeedOrders:
    records = OrderRecords(store)
    return ManagerFeedOrders(records.awaiting, records.still_awaiting_decision, NoNewOrders())


def outcome(order_id: str) -> OrderOutcome:
    return OrderOutcome(order_id=order_id, processed=False, reason="rejected", finished_at=AT)


async def test_an_order_needing_approval_is_listed_from_acceptance_until_its_decision(
    store: InMemoryStateStore,
) -> None:
    service = orders(store, FakeWorkflowGateway())
    await service.create("cars", 4, "big")
    assert await AwaitingDecision(store).oldest_first() == ["big"]

    await service.approve("big", True, "alice")

    assert await AwaitingDecision(store).oldest_first() == []


async def test_an_order_leaves_when_its_outcome_is_recorded_also_by_a_second_run(
    store: InMemoryStateStore,
) -> None:
    await orders(store, FakeWorkflowGateway()).create("cars", 4, "big")
    records = OrderRecords(store)
    await records.record_outcome(outcome("big"))
    await records.awaiting.add("big", AT)  # as if the first run died after its record write

    await records.record_outcome(outcome("big"))  # the activity run again

    assert await records.awaiting.oldest_first() == []


async def test_an_order_that_needs_no_approval_is_never_listed(store: InMemoryStateStore) -> None:
    await orders(store, FakeWorkflowGateway()).create("paperclip", 1, "small")
    await OrderRecords(store).record_outcome(outcome("small"))

    assert not [key for key in store.data if key.startswith("orders:awaiting-decision:")]


async def test_an_order_accepted_while_the_engine_is_down_is_listed(
    store: InMemoryStateStore,
) -> None:
    # Its workflow starts later (the start outbox); a manager may decide it meanwhile.
    order, _ = await orders(store, FakeWorkflowGateway(unavailable=True)).create("cars", 4, "big")

    assert order.status == "PENDING"
    assert await AwaitingDecision(store).oldest_first() == ["big"]


async def test_adding_or_removing_twice_changes_nothing(store: InMemoryStateStore) -> None:
    awaiting = AwaitingDecision(store)
    await awaiting.add("a", AT)
    await awaiting.add("a", AT)
    await awaiting.add("b", AT + timedelta(seconds=1))
    assert await awaiting.oldest_first() == ["a", "b"]

    await awaiting.remove({"a"})
    await awaiting.remove({"a"})

    assert await awaiting.oldest_first() == ["b"]


async def test_replicas_adding_and_removing_at_once_lose_no_change(
    store: InMemoryStateStore,
) -> None:
    replicas = [AwaitingDecision(store) for _ in range(3)]
    ids = [f"order-{n}" for n in range(90)]

    await asyncio.gather(
        *(replicas[n % 3].add(i, AT + timedelta(seconds=n)) for n, i in enumerate(ids))
    )
    await asyncio.gather(*(replicas[n % 3].remove({i}) for n, i in enumerate(ids[::2])))

    assert await AwaitingDecision(store).oldest_first() == ids[1::2]


async def test_the_feed_gives_each_order_once_and_drops_one_decided_meanwhile(
    store: InMemoryStateStore,
) -> None:
    service = orders(store, FakeWorkflowGateway())
    await service.create("cars", 4, "waiting")
    await service.create("cars", 4, "decided")
    await service.approve("decided", False, "alice")
    await AwaitingDecision(store).add("decided", AT)  # a late write that raced the decision
    watched = feed(store)

    assert await watched.poll() == ["waiting"]
    assert await watched.poll() == []
    assert await AwaitingDecision(store).oldest_first() == ["waiting"]


async def test_a_decision_stands_when_the_store_refuses_to_unlist_it(
    sidecar_store: SidecarStateStore, redis_api: RedisStateApi
) -> None:
    service = orders(sidecar_store, FakeWorkflowGateway())
    await service.create("cars", 4, "big")
    redis_api.read_only.add("orders:awaiting-decision:")

    decided = await service.approve("big", True, "alice")

    assert decided.decision == "approved"
    redis_api.read_only.clear()
    assert await feed(sidecar_store).poll() == []  # the feed drops the entry
    assert await AwaitingDecision(sidecar_store).oldest_first() == []
