"""The start outbox: an order is accepted on the state store alone, and its workflow is started
by the create when the engine answers in time, else by the loop every replica runs."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from app.config import Settings
from app.errors import DependencyUnavailable
from app.services.order_starts import ORPHAN_SECONDS, StartOutbox
from app.services.orders import OrderService
from app.workflows.contracts import CANCEL_EVENT, OrderOutcome
from tests.fixtures.fakes import FakeWorkflowGateway, InMemoryStateStore
from tests.fixtures.shop import ORDER_ID, Shop
from tests.fixtures.workflow_driver import ScriptedContext, run_with_activities

START = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
RETRY_SECONDS = 5.0


@dataclass
class Clock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def gateway() -> FakeWorkflowGateway:
    return FakeWorkflowGateway()


def service(store: InMemoryStateStore, gateway: FakeWorkflowGateway, clock: Clock) -> OrderService:
    settings = Settings(manager_token="t", start_retry_seconds=RETRY_SECONDS)
    return OrderService(store, gateway, settings, clock=clock)


@pytest.fixture
def orders(store: InMemoryStateStore, gateway: FakeWorkflowGateway, clock: Clock) -> OrderService:
    return service(store, gateway, clock)


def started(gateway: FakeWorkflowGateway) -> list[str]:
    return [instance for _, instance, _ in gateway.scheduled]


async def waiting(orders: OrderService) -> list[str]:
    return sorted(await orders.starts.outbox.entries())


async def test_a_create_the_engine_answers_starts_the_order_and_leaves_nothing_listed(
    orders: OrderService, gateway: FakeWorkflowGateway
) -> None:
    order, _ = await orders.create("paperclip", 1, "o1")

    assert order.status == "PENDING"  # the view of the create itself: scheduled, not yet run
    assert started(gateway) == ["o1"]
    assert await waiting(orders) == []


async def test_a_create_the_engine_cannot_take_is_accepted_and_listed(
    orders: OrderService, gateway: FakeWorkflowGateway
) -> None:
    gateway.unavailable = True

    order, created = await orders.create("paperclip", 1, "o1")

    assert (created, order.status) == (True, "PENDING")
    assert started(gateway) == []
    assert await waiting(orders) == ["o1"]
    assert await orders.starts.outbox.waiting() == 1


async def test_a_create_whose_engine_hangs_answers_within_its_bounded_wait(
    orders: OrderService, gateway: FakeWorkflowGateway
) -> None:
    gateway.hanging = True  # schedule and reads hang, as during a placement rebalance

    async with asyncio.timeout(2):  # the request deadline (a quarter of it is the wait)
        order, created = await orders.create("paperclip", 1, "o1")

    assert (created, order.status) == (True, "PENDING")
    assert await waiting(orders) == ["o1"]


async def test_the_loop_starts_a_listed_order_once_its_retry_is_due(
    orders: OrderService, gateway: FakeWorkflowGateway, clock: Clock
) -> None:
    gateway.unavailable = True
    await orders.create("paperclip", 1, "o1")
    gateway.unavailable = False

    assert await orders.starts.retry_due() == 1  # held by the create until its retry is due
    assert started(gateway) == []
    clock.advance(RETRY_SECONDS)
    assert await orders.starts.retry_due() == 0

    assert started(gateway) == ["o1"]
    assert await waiting(orders) == []
    assert (await orders.get("o1")).status == "RUNNING"


async def test_the_loop_keeps_an_order_while_the_engine_is_still_down(
    orders: OrderService, gateway: FakeWorkflowGateway, clock: Clock
) -> None:
    gateway.unavailable = True
    await orders.create("paperclip", 1, "o1")
    clock.advance(RETRY_SECONDS)

    assert await orders.starts.retry_due() == 1
    gateway.unavailable = False
    assert await orders.starts.retry_due() == 1  # the failed try holds it for another round
    clock.advance(RETRY_SECONDS)
    assert await orders.starts.retry_due() == 0

    assert started(gateway) == ["o1"]


async def test_a_started_order_left_listed_is_dropped_without_a_second_start(
    orders: OrderService, gateway: FakeWorkflowGateway, store: InMemoryStateStore, clock: Clock
) -> None:
    # The create's schedule reached the engine but its answer did not come back in time (or
    # the removal failed): the workflow runs and the order is still listed.
    await orders.create("paperclip", 1, "o1")
    await orders.starts.outbox.put_back("o1", START, START)
    clock.advance(1)

    assert await orders.starts.retry_due() == 0

    assert started(gateway) == ["o1"]
    assert gateway.twin_starts == []


async def test_a_finished_order_left_listed_is_never_started_again(
    orders: OrderService, gateway: FakeWorkflowGateway, clock: Clock
) -> None:
    # Dapr starts a finished instance again when asked (the fake does as well): the loop must
    # see the outcome first, even with the engine's history already purged.
    await orders.create("paperclip", 1, "o1")
    await orders.starts._records.record_outcome(
        OrderOutcome(order_id="o1", processed=True, reason=None, finished_at=START, steps=[])
    )
    del gateway.snapshots["o1"]  # purged
    await orders.starts.outbox.put_back("o1", START, START)
    clock.advance(1)

    assert await orders.starts.retry_due() == 0

    assert started(gateway) == ["o1"]


async def test_a_duplicate_start_of_a_running_order_is_harmless(
    orders: OrderService, gateway: FakeWorkflowGateway
) -> None:
    await orders.create("paperclip", 1, "o1")
    record, _ = await orders.starts._records.get("o1")

    assert await orders.starts.start(record) is True  # ALREADY_EXISTS: started is started

    assert started(gateway) == ["o1"]
    assert gateway.twin_starts == ["o1"]
    assert await waiting(orders) == []


async def test_a_record_without_a_workflow_is_started_by_the_loop(
    store: InMemoryStateStore, gateway: FakeWorkflowGateway, clock: Clock
) -> None:
    # A replica died between the record and its start (nothing raised, nothing released).
    class Dying(FakeWorkflowGateway):
        async def schedule(self, workflow: str, instance_id: str, payload: object) -> None:
            raise asyncio.CancelledError  # the process stops here

    with pytest.raises(asyncio.CancelledError):
        await service(store, Dying(), clock).create("cars", 4, "o1")
    survivor = service(store, gateway, clock)
    clock.advance(RETRY_SECONDS)

    assert await survivor.starts.retry_due() == 0

    assert started(gateway) == ["o1"]
    ((_, _, order_input),) = gateway.scheduled
    assert (order_input["order_id"], order_input["approval_required"]) == ("o1", True)


async def test_an_entry_without_a_record_is_kept_during_the_grace_then_dropped(
    orders: OrderService, gateway: FakeWorkflowGateway, clock: Clock
) -> None:
    # A create that stopped after listing the order, before writing its record (its 503 said
    # nothing was changed), or one still writing it.
    await orders.starts.outbox.enter("ghost", START, START)
    clock.advance(RETRY_SECONDS)

    assert await orders.starts.retry_due() == 1
    clock.advance(ORPHAN_SECONDS)
    assert await orders.starts.retry_due() == 0

    assert started(gateway) == []
    assert await waiting(orders) == []


async def test_a_repeated_create_within_the_hold_leaves_the_start_to_its_holder(
    orders: OrderService, gateway: FakeWorkflowGateway, clock: Clock
) -> None:
    gateway.unavailable = True
    await orders.create("paperclip", 1, "o1")
    gateway.unavailable = False

    order, created = await orders.create("paperclip", 1, "o1")

    assert (created, order.status) == (False, "PENDING")
    assert started(gateway) == []
    clock.advance(RETRY_SECONDS)
    order, _ = await orders.create("paperclip", 1, "o1")  # past the hold: it starts it
    assert started(gateway) == ["o1"]
    assert await waiting(orders) == []


async def test_a_create_that_fails_after_listing_releases_the_start_for_its_retry(
    orders: OrderService, gateway: FakeWorkflowGateway, store: InMemoryStateStore
) -> None:
    original_add = orders._index.add

    async def refused(number: int, order_id: str) -> None:
        raise DependencyUnavailable("listing write refused")

    orders._index.add = refused  # type: ignore[method-assign]
    with pytest.raises(DependencyUnavailable):
        await orders.create("paperclip", 1, "o1")
    orders._index.add = original_add  # type: ignore[method-assign]

    _, created = await orders.create("paperclip", 1, "o1")  # the client's retry, at once

    assert created is False
    assert started(gateway) == ["o1"]


async def test_replicas_running_the_loop_at_once_start_an_order_once(
    store: InMemoryStateStore, gateway: FakeWorkflowGateway, clock: Clock
) -> None:
    gateway.unavailable = True
    await service(store, gateway, clock).create("paperclip", 1, "o1")
    gateway.unavailable = False
    clock.advance(RETRY_SECONDS)
    replicas = [service(store, gateway, clock) for _ in range(3)]

    await asyncio.gather(*(replica.starts.retry_due() for replica in replicas))

    assert started(gateway) == ["o1"]
    assert gateway.twin_starts == []


async def test_claims_are_exclusive_until_they_run_out(store: InMemoryStateStore) -> None:
    outbox = StartOutbox(store)
    await outbox.enter("o1", START, START)
    later = START + timedelta(seconds=RETRY_SECONDS)

    assert await outbox.claim("o1", START, later) is True
    assert await outbox.claim("o1", START, later) is False  # held
    assert await outbox.claim("o1", later, later) is True  # ran out
    await outbox.remove({"o1"})
    assert await outbox.claim("o1", later, later) is False  # started: not listed again


# -- a manager's decision on an order whose workflow has not started --------------------------


async def pending_shop(store: InMemoryStateStore, item: str, quantity: int) -> Shop:
    """ORDER_ID accepted while the engine could not start it."""
    shop = Shop(store)
    await shop.inventory.seed()
    shop.gateway.unavailable = True
    await shop.orders.create(item, quantity, ORDER_ID)
    shop.gateway.unavailable = False
    assert shop.gateway.scheduled == []
    return shop


async def start_and_deliver(shop: Shop) -> dict[str, object]:
    """The loops of a replica: the start, then the queued decision; returns the workflow input."""
    await shop.orders.starts.outbox.put_back(ORDER_ID, START, START)  # due now
    assert await shop.orders.starts.retry_due() == 0
    assert await shop.orders.outbox.deliver_pending() == 0
    ((_, _, order_input),) = shop.gateway.scheduled
    return dict(order_input)


async def already_decided(ctx: ScriptedContext) -> None:
    """At the approval wait: the decision's event was raised before the workflow started."""


async def test_a_cancel_before_the_workflow_starts_ends_the_order_cancelled(
    store: InMemoryStateStore,
) -> None:
    shop = await pending_shop(store, "paperclip", 3)

    await shop.answer(lambda: shop.orders.cancel(ORDER_ID))

    # Dapr refuses an event for an instance it does not have: recorded and queued, not refused.
    assert shop.answers == ["202"]
    assert shop.gateway.events == []
    assert await shop.orders.outbox.deliver_pending() == 1  # still nothing to deliver it to
    order_input = await start_and_deliver(shop)
    assert shop.raised_events() == [(CANCEL_EVENT, {"seq": 1})]
    run = await run_with_activities(order_input, shop.activities, raised_events=shop.raised_events)
    assert run.result == {"processed": False, "reason": "cancelled"}
    assert await shop.nothing_paid_or_held("paperclip")


async def test_an_approval_before_the_workflow_starts_is_the_outcome(
    store: InMemoryStateStore,
) -> None:
    shop = await pending_shop(store, "cars", 4)

    await shop.answer(lambda: shop.orders.approve(ORDER_ID, True, "alice"))

    assert shop.answers == ["202"]
    order_input = await start_and_deliver(shop)
    run = await run_with_activities(
        order_input,
        shop.activities,
        raised_events=shop.raised_events,
        at_approval_wait=already_decided,
    )
    assert run.result == {"processed": True, "reason": None}
    assert (await shop.payments.entry(ORDER_ID) or {}).get("status") == "paid"


async def test_a_pending_order_is_reported_waiting_to_start(
    orders: OrderService, gateway: FakeWorkflowGateway
) -> None:
    gateway.unavailable = True
    await orders.create("paperclip", 1, "o1")
    await orders.create("paperclip", 1, "o2")
    gateway.unavailable = False
    await orders.create("paperclip", 1, "o3")

    assert await orders.starts.outbox.waiting() == 2


async def test_a_create_slower_than_its_hold_leaves_the_start_to_the_loop(
    store: InMemoryStateStore, gateway: FakeWorkflowGateway, clock: Clock
) -> None:
    # The store answered the create so late that another replica's loop started the order,
    # and the quick order finished: a second start now would run it again (Dapr starts a
    # finished instance again, and so does the fake).
    settings = Settings(manager_token="t", start_retry_seconds=0.05)
    orders, other_replica = (OrderService(store, gateway, settings, clock=clock) for _ in "ab")
    index_add = orders._index.add

    async def slow_listing(number: int, order_id: str) -> None:
        await asyncio.sleep(0.1)  # past the create's own hold
        clock.advance(0.05)  # and the hold the store shows
        assert await other_replica.starts.retry_due() == 0
        gateway.set(order_id, "COMPLETED", "done", {"processed": True, "reason": None})
        await index_add(number, order_id)

    orders._index.add = slow_listing  # type: ignore[method-assign]
    await orders.create("paperclip", 1, "o1")

    assert started(gateway) == ["o1"]
