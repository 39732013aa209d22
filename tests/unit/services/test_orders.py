"""OrderService over the in-memory store and a fake workflow engine."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.config import Settings
from app.domain.orders import ManagerDecision, Order, OrderRecord, Outcome
from app.errors import (
    Conflict,
    DecisionAlreadyMade,
    DependencyUnavailable,
    InvalidInput,
    NotFound,
)
from app.services.manager_outbox import OUTBOX_KEY
from app.services.order_records import OrderRecords
from app.services.orders import OrderService
from app.services.state_store import SidecarStateStore
from app.workflows.contracts import (
    APPROVAL_EVENT,
    CANCEL_EVENT,
    PAST_PAYMENT_STEPS,
    WORKFLOW_NAME,
    OrderOutcome,
    Step,
    StepEntry,
    WorkflowSnapshot,
)
from tests.fixtures.fakes import FakeWorkflowGateway, InMemoryStateStore, RedisStateApi
from tests.fixtures.waiting import eventually

THRESHOLD = 50_000
TIMEOUT_SECONDS = 30.0
START = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def ticking_clock() -> Callable[[], datetime]:
    """A clock that moves one second per reading, so every order has its own created_at."""
    ticks = iter(range(1_000_000))
    return lambda: START + timedelta(seconds=next(ticks))


@pytest.fixture
def gateway() -> FakeWorkflowGateway:
    return FakeWorkflowGateway()


@pytest.fixture
def settings() -> Settings:
    return Settings(
        approval_threshold=THRESHOLD,
        approval_timeout_seconds=TIMEOUT_SECONDS,
        manager_token="t",
    )


@pytest.fixture
def orders(
    store: InMemoryStateStore, gateway: FakeWorkflowGateway, settings: Settings
) -> OrderService:
    return OrderService(store, gateway, settings, clock=ticking_clock())


async def create(
    orders: OrderService, order_id: str, item: str = "cars", quantity: int = 4
) -> Order:
    order, _ = await orders.create(item, quantity, order_id)
    return order


def record(store: InMemoryStateStore, order_id: str) -> dict[str, Any]:
    return store.data[f"order:{order_id}"][0]


def decided(store: InMemoryStateStore, order_id: str) -> dict[str, Any] | None:
    """The decision the stored record's action log holds, as {decision, by, at}."""
    decision = OrderRecord.model_validate(record(store, order_id)).decision
    return None if decision is None else decision.model_dump()


def decision_kind(store: InMemoryStateStore, order_id: str) -> str | None:
    decision = decided(store, order_id)
    return None if decision is None else str(decision["decision"])


def undelivered(store: InMemoryStateStore, order_id: str) -> list[tuple[int, str]]:
    """The stored record's actions still owed to the workflow, as (seq, kind)."""
    stored = OrderRecord.model_validate(record(store, order_id))
    return [(action.seq, action.kind) for action in stored.undelivered()]


def outbox(store: InMemoryStateStore) -> list[str]:
    """Orders whose manager actions still wait for delivery."""
    entry = store.data.get(OUTBOX_KEY)
    return [] if entry is None else list(entry[0]["order_ids"])


# -- create ----------------------------------------------------------------------------------


async def test_create_computes_the_total_cost(orders: OrderService) -> None:
    order = await create(orders, "o1", "computers", 3)

    assert order.total_cost == 1_500


async def test_create_above_the_threshold_requires_approval(orders: OrderService) -> None:
    order = await create(orders, "o1", "cars", 4)  # 60,000

    assert order.approval_required is True


async def test_create_at_the_threshold_needs_no_approval(orders: OrderService) -> None:
    order = await create(orders, "o1", "computers", THRESHOLD // 500)

    assert order.total_cost == THRESHOLD
    assert order.approval_required is False


async def test_approval_threshold_comes_from_settings(
    store: InMemoryStateStore, gateway: FakeWorkflowGateway
) -> None:
    service = OrderService(store, gateway, Settings(approval_threshold=100))

    order, _ = await service.create("computers", 1, "o1")

    assert order.approval_required is True


async def test_create_schedules_one_workflow_with_the_order_input(
    orders: OrderService, gateway: FakeWorkflowGateway
) -> None:
    await create(orders, "o1", "Cars", 4)

    assert gateway.scheduled == [
        (
            WORKFLOW_NAME,
            "o1",
            {
                "order_id": "o1",
                "item": "cars",
                "quantity": 4,
                "total_cost": 60_000,
                "approval_required": True,
                "approval_timeout_seconds": TIMEOUT_SECONDS,
                # The defaults: a day of retries, 10 s doubling to 5 min between them.
                "infrastructure_retry": {
                    "budget_seconds": 86_400.0,
                    "first_interval_seconds": 10.0,
                    "max_interval_seconds": 300.0,
                },
            },
        )
    ]


async def test_the_infrastructure_retry_budget_comes_from_settings(
    store: InMemoryStateStore, gateway: FakeWorkflowGateway
) -> None:
    settings = Settings(
        infrastructure_retry_hours=0.5,
        infrastructure_retry_first_interval_seconds=1,
        infrastructure_retry_max_interval_seconds=4,
    )
    service = OrderService(store, gateway, settings)

    await service.create("cars", 1, "o1")

    assert gateway.scheduled[0][2]["infrastructure_retry"] == {
        "budget_seconds": 1800.0,
        "first_interval_seconds": 1.0,
        "max_interval_seconds": 4.0,
    }


async def test_create_without_an_id_generates_one(
    orders: OrderService, gateway: FakeWorkflowGateway
) -> None:
    order, created = await orders.create("cars", 1, None)

    assert created is True
    assert order.order_id
    assert [instance for _, instance, _ in gateway.scheduled] == [order.order_id]


async def test_create_stores_the_normalized_item(
    orders: OrderService, store: InMemoryStateStore
) -> None:
    order = await create(orders, "o1", "  PaperClip ", 2)

    assert order.item == "paperclip"
    assert record(store, "o1")["item"] == "paperclip"


async def test_repeated_create_returns_the_existing_order_without_scheduling_again(
    orders: OrderService, gateway: FakeWorkflowGateway
) -> None:
    first, first_created = await orders.create("cars", 4, "o1")

    second, second_created = await orders.create("cars", 4, "o1")

    assert (first_created, second_created) == (True, False)
    assert second.order_id == first.order_id
    assert second.created_at == first.created_at
    assert len(gateway.scheduled) == 1


async def test_repeated_create_with_another_spelling_of_the_item_is_the_same_order(
    orders: OrderService, gateway: FakeWorkflowGateway
) -> None:
    await orders.create("cars", 4, "o1")

    _, created = await orders.create("CARS", 4, "o1")

    assert created is False
    assert len(gateway.scheduled) == 1


async def test_same_id_with_a_different_body_is_a_conflict(
    orders: OrderService, gateway: FakeWorkflowGateway, store: InMemoryStateStore
) -> None:
    await orders.create("cars", 4, "o1")

    with pytest.raises(Conflict, match="already exists"):
        await orders.create("cars", 5, "o1")

    assert record(store, "o1")["quantity"] == 4
    assert len(gateway.scheduled) == 1


async def test_unknown_item_is_invalid_input_listing_known_items(
    orders: OrderService, store: InMemoryStateStore, gateway: FakeWorkflowGateway
) -> None:
    with pytest.raises(InvalidInput, match="known items: cars, computers, paperclip"):
        await orders.create("unicorns", 1, "o1")

    assert store.data == {}
    assert gateway.scheduled == []


async def test_create_with_the_engine_unavailable_accepts_the_order_pending(
    orders: OrderService, gateway: FakeWorkflowGateway, store: InMemoryStateStore
) -> None:
    # The order needs only the state store; its start is left to the start outbox
    # (tests/unit/services/test_order_starts.py). Before, the record was deleted and the
    # create answered 503, and a create whose record write got through anyway was processed.
    gateway.unavailable = True

    order, created = await orders.create("cars", 4, "o1")

    assert (created, order.status) == (True, "PENDING")
    assert (await orders.get("o1")).status == "PENDING"
    listed, _ = await orders.list(None, 20, None)
    assert [o.order_id for o in listed] == ["o1"]
    assert list(await orders.starts.outbox.entries()) == ["o1"]
    assert gateway.scheduled == []


class _CrashingGateway(FakeWorkflowGateway):
    """The process dies between writing the record and scheduling (not a DependencyUnavailable)."""

    async def schedule(self, workflow: str, instance_id: str, payload: Any) -> None:
        raise RuntimeError("process killed")


async def test_repeat_after_an_interrupted_create_schedules_the_workflow(
    store: InMemoryStateStore, gateway: FakeWorkflowGateway, settings: Settings
) -> None:
    with pytest.raises(RuntimeError):
        await OrderService(store, _CrashingGateway(), settings).create("cars", 4, "o1")

    _, created = await OrderService(store, gateway, settings).create("cars", 4, "o1")

    assert created is False
    assert [instance for _, instance, _ in gateway.scheduled] == ["o1"]


# Over the sidecar adapter and daprd's Redis answers, where a write the store refuses comes back
# as the same 500 "failed to set key" as a create of a key that exists.


@pytest.fixture
def orders_over_sidecar(
    sidecar_store: SidecarStateStore, gateway: FakeWorkflowGateway, settings: Settings
) -> OrderService:
    return OrderService(sidecar_store, gateway, settings)


async def test_a_refused_order_record_write_is_unavailable_and_starts_nothing(
    orders_over_sidecar: OrderService, redis_api: RedisStateApi, gateway: FakeWorkflowGateway
) -> None:
    redis_api.read_only.add("order:")

    with pytest.raises(DependencyUnavailable, match="NOPERM"):
        await orders_over_sidecar.create("cars", 4, "o1")

    assert gateway.scheduled == []


async def test_a_refused_listing_write_fails_the_create_until_a_retry_lists_it(
    orders_over_sidecar: OrderService, redis_api: RedisStateApi, gateway: FakeWorkflowGateway
) -> None:
    redis_api.read_only.add("orders:by-sequence:")
    with pytest.raises(DependencyUnavailable, match="NOPERM"):
        await orders_over_sidecar.create("cars", 4, "o1")
    assert gateway.scheduled == []
    redis_api.read_only.clear()

    await orders_over_sidecar.create("cars", 4, "o1")

    listed, _ = await orders_over_sidecar.list(None, 20, None)
    assert [order.order_id for order in listed] == ["o1"]
    assert [instance for _, instance, _ in gateway.scheduled] == ["o1"]


# -- get -------------------------------------------------------------------------------------


async def test_get_of_an_unknown_order_is_not_found(orders: OrderService) -> None:
    with pytest.raises(NotFound):
        await orders.get("nope")


async def test_get_right_after_create_is_pending_or_running(orders: OrderService) -> None:
    await create(orders, "o1")

    order = await orders.get("o1")

    assert order.status in {"PENDING", "RUNNING"}
    assert order.result is None


async def test_order_not_yet_picked_up_by_the_engine_is_pending(
    orders: OrderService, gateway: FakeWorkflowGateway
) -> None:
    await create(orders, "o1")
    del gateway.snapshots["o1"]

    order = await orders.get("o1")

    assert (order.status, order.step, order.result) == ("PENDING", None, None)


async def test_get_shows_the_workflow_step(
    orders: OrderService, gateway: FakeWorkflowGateway
) -> None:
    await create(orders, "o1")
    gateway.set("o1", "RUNNING", Step.AWAITING_APPROVAL)

    order = await orders.get("o1")

    assert (order.status, order.step) == ("RUNNING", Step.AWAITING_APPROVAL)


async def test_get_of_a_completed_order_shows_the_workflow_result(
    orders: OrderService, gateway: FakeWorkflowGateway
) -> None:
    await create(orders, "o1")
    gateway.set("o1", "COMPLETED", Step.DONE, {"processed": False, "reason": "rejected"})

    order = await orders.get("o1")

    assert order.result == Outcome(processed=False, reason="rejected")


async def test_get_of_a_failed_workflow_reports_why(
    orders: OrderService, gateway: FakeWorkflowGateway
) -> None:
    await create(orders, "o1")
    gateway.set("o1", "FAILED", Step.PROCESSING_PAYMENT)

    order = await orders.get("o1")

    assert order.result == Outcome(processed=False, reason="workflow_failed")


async def test_updated_at_is_never_before_created_at(
    orders: OrderService, gateway: FakeWorkflowGateway
) -> None:
    created = await create(orders, "o1")
    # The engine's clock may lag the API's: an update stamped before the order was created.
    gateway.snapshots["o1"] = WorkflowSnapshot(
        "RUNNING", None, None, created.created_at - timedelta(hours=1)
    )

    order = await orders.get("o1")

    assert order.updated_at == order.created_at


# -- list ------------------------------------------------------------------------------------


async def make_orders(orders: OrderService, count: int) -> list[str]:
    ids = [f"o{n}" for n in range(1, count + 1)]
    for order_id in ids:
        await create(orders, order_id, "paperclip", 1)
    return ids


async def test_list_without_orders_is_empty(orders: OrderService) -> None:
    assert await orders.list(None, 20, None) == ([], None)


async def test_list_is_newest_first(orders: OrderService) -> None:
    await make_orders(orders, 3)

    page, cursor = await orders.list(None, 20, None)

    assert [order.order_id for order in page] == ["o3", "o2", "o1"]
    assert cursor is None


async def test_list_pages_with_a_cursor(orders: OrderService) -> None:
    await make_orders(orders, 5)

    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        page, cursor = await orders.list(None, 2, cursor)
        pages.append([order.order_id for order in page])
        if cursor is None:
            break

    assert pages == [["o5", "o4"], ["o3", "o2"], ["o1"]]


async def test_list_filters_by_status(orders: OrderService, gateway: FakeWorkflowGateway) -> None:
    await make_orders(orders, 4)
    gateway.set("o1", "COMPLETED", Step.DONE, {"processed": True, "reason": None})
    gateway.set("o3", "COMPLETED", Step.DONE, {"processed": True, "reason": None})

    page, cursor = await orders.list("COMPLETED", 20, None)

    assert [order.order_id for order in page] == ["o3", "o1"]
    assert cursor is None


async def test_list_pages_through_sparse_matches_of_a_filter(
    orders: OrderService, gateway: FakeWorkflowGateway
) -> None:
    await make_orders(orders, 6)
    gateway.set("o1", "FAILED")
    gateway.set("o4", "FAILED")

    first, cursor = await orders.list("FAILED", 1, None)
    assert cursor is not None
    second, last_cursor = await orders.list("FAILED", 1, cursor)

    assert [order.order_id for order in first + second] == ["o4", "o1"]
    assert last_cursor is None


async def test_list_skips_ids_whose_order_is_gone(
    orders: OrderService, store: InMemoryStateStore
) -> None:
    await make_orders(orders, 3)
    del store.data["order:o2"]

    page, _ = await orders.list(None, 20, None)

    assert [order.order_id for order in page] == ["o3", "o1"]


# -- approve ---------------------------------------------------------------------------------


async def test_approve_raises_the_approval_event(
    orders: OrderService, gateway: FakeWorkflowGateway
) -> None:
    await create(orders, "o1", "cars", 4)

    await orders.approve("o1", True, "alice")

    assert gateway.events == [
        ("o1", APPROVAL_EVENT, {"seq": 1, "approval": True, "approver": "alice"})
    ]


async def test_reject_raises_the_approval_event_with_approval_false(
    orders: OrderService, gateway: FakeWorkflowGateway
) -> None:
    await create(orders, "o1", "cars", 4)

    await orders.approve("o1", False, None)

    assert gateway.events == [
        ("o1", APPROVAL_EVENT, {"seq": 1, "approval": False, "approver": "manager"})
    ]


async def test_approve_records_the_decision(
    orders: OrderService, store: InMemoryStateStore
) -> None:
    await create(orders, "o1", "cars", 4)

    await orders.approve("o1", True, "alice")

    decision = decided(store, "o1")
    assert decision is not None
    assert (decision["decision"], decision["by"]) == ("approved", "alice")


async def test_approve_of_an_order_that_needs_no_approval_is_a_conflict(
    orders: OrderService, gateway: FakeWorkflowGateway
) -> None:
    await create(orders, "o1", "paperclip", 1)

    with pytest.raises(Conflict, match="does not need approval"):
        await orders.approve("o1", True, "alice")

    assert gateway.events == []


async def test_approve_of_a_finished_order_is_a_conflict(
    orders: OrderService, gateway: FakeWorkflowGateway
) -> None:
    await create(orders, "o1", "cars", 4)
    gateway.set("o1", "COMPLETED", Step.DONE, {"processed": False, "reason": "approval_timeout"})

    with pytest.raises(Conflict, match="already finished"):
        await orders.approve("o1", True, "alice")

    assert gateway.events == []


async def test_second_decision_is_a_conflict(
    orders: OrderService, gateway: FakeWorkflowGateway
) -> None:
    await create(orders, "o1", "cars", 4)
    await orders.approve("o1", True, "alice")

    with pytest.raises(DecisionAlreadyMade, match=r"^approved by alice at 2026-11-27T10:00:01"):
        await orders.approve("o1", False, "bob")

    assert len(gateway.events) == 1


async def test_approve_of_an_unknown_order_is_not_found(orders: OrderService) -> None:
    with pytest.raises(NotFound):
        await orders.approve("nope", True, "alice")


async def test_delivered_approval_leaves_nothing_queued(
    orders: OrderService, store: InMemoryStateStore
) -> None:
    await create(orders, "o1", "cars", 4)

    await orders.approve("o1", True, "alice")

    assert undelivered(store, "o1") == []
    assert outbox(store) == []


async def test_approval_the_engine_cannot_take_is_accepted_and_queued(
    orders: OrderService, gateway: FakeWorkflowGateway, store: InMemoryStateStore
) -> None:
    await create(orders, "o1", "cars", 4)
    gateway.unavailable = True

    await orders.approve("o1", True, "alice")

    assert gateway.events == []
    assert undelivered(store, "o1") == [(1, "approve")]
    assert outbox(store) == ["o1"]


async def test_queued_approval_is_delivered_once_the_engine_is_back(
    orders: OrderService, gateway: FakeWorkflowGateway, store: InMemoryStateStore
) -> None:
    await create(orders, "o1", "cars", 4)
    gateway.unavailable = True
    await orders.approve("o1", True, "alice")
    gateway.unavailable = False

    assert await orders.outbox.deliver_pending() == 0

    assert gateway.events == [
        ("o1", APPROVAL_EVENT, {"seq": 1, "approval": True, "approver": "alice"})
    ]
    assert undelivered(store, "o1") == []
    assert outbox(store) == []


async def test_queued_approval_is_delivered_only_once(
    orders: OrderService, gateway: FakeWorkflowGateway
) -> None:
    await create(orders, "o1", "cars", 4)
    gateway.unavailable = True
    await orders.approve("o1", True, "alice")
    gateway.unavailable = False

    await orders.outbox.deliver_pending()
    await orders.outbox.deliver_pending()

    assert len(gateway.events) == 1


async def test_queued_actions_wait_while_the_engine_is_still_down(
    orders: OrderService, gateway: FakeWorkflowGateway, store: InMemoryStateStore
) -> None:
    await create(orders, "o1", "cars", 4)
    gateway.unavailable = True
    await orders.approve("o1", True, "alice")

    assert await orders.outbox.deliver_pending() == 1

    assert gateway.events == []
    assert outbox(store) == ["o1"]


async def test_queued_action_for_an_order_that_finished_meanwhile_is_dropped(
    orders: OrderService, gateway: FakeWorkflowGateway, store: InMemoryStateStore
) -> None:
    await create(orders, "o1", "cars", 4)
    gateway.unavailable = True
    await orders.approve("o1", True, "alice")
    gateway.unavailable = False
    gateway.set("o1", "COMPLETED", Step.DONE, {"processed": False, "reason": "approval_timeout"})

    assert await orders.outbox.deliver_pending() == 0

    assert gateway.events == []
    assert outbox(store) == []


async def test_second_decision_after_a_queued_one_is_a_conflict(
    orders: OrderService, gateway: FakeWorkflowGateway
) -> None:
    await create(orders, "o1", "cars", 4)
    gateway.unavailable = True
    await orders.approve("o1", True, "alice")

    with pytest.raises(DecisionAlreadyMade, match=r"^approved by alice"):
        await orders.approve("o1", False, "bob")


async def test_approve_with_the_state_store_down_changes_nothing(
    orders: OrderService, gateway: FakeWorkflowGateway, store: InMemoryStateStore
) -> None:
    await create(orders, "o1", "cars", 4)
    store.fail_next_saves = 1

    with pytest.raises(DependencyUnavailable):
        await orders.approve("o1", True, "alice")

    assert decided(store, "o1") is None
    assert gateway.events == []


class _SidecarCrash(FakeWorkflowGateway):
    """The whole sidecar goes away at the moment an event is raised: the workflow API refuses
    the event and the state store refuses the next write."""

    def __init__(self, store: InMemoryStateStore) -> None:
        super().__init__()
        self.store = store
        self.crash_on_next_event = False

    async def raise_event(self, instance_id: str, event: str, data: Any) -> None:
        if self.crash_on_next_event:
            self.crash_on_next_event = False
            self.store.fail_next_saves = 1
            raise DependencyUnavailable("sidecar crashed")
        await super().raise_event(instance_id, event, data)


async def test_approval_accepted_as_the_sidecar_crashes_is_still_delivered(
    store: InMemoryStateStore, settings: Settings
) -> None:
    # Once a manager action is accepted (recorded, 202) it must reach the workflow eventually;
    # a retry by the client can only get a 409 now.
    gateway = _SidecarCrash(store)
    orders = OrderService(store, gateway, settings)
    await orders.create("cars", 4, "o1")
    gateway.crash_on_next_event = True

    await orders.approve("o1", True, "alice")
    await orders.outbox.deliver_pending()

    assert gateway.events == [
        ("o1", APPROVAL_EVENT, {"seq": 1, "approval": True, "approver": "alice"})
    ]


async def test_approve_retries_a_racing_record_write(
    orders: OrderService, gateway: FakeWorkflowGateway, store: InMemoryStateStore
) -> None:
    await create(orders, "o1", "cars", 4)
    store.conflict_next_saves = 2

    await orders.approve("o1", True, "alice")

    assert decision_kind(store, "o1") == "approved"
    assert len(gateway.events) == 1


# -- cancel ----------------------------------------------------------------------------------


async def test_cancel_raises_the_cancel_event(
    orders: OrderService, gateway: FakeWorkflowGateway, store: InMemoryStateStore
) -> None:
    await create(orders, "o1")
    gateway.set("o1", "RUNNING", Step.AWAITING_APPROVAL)

    await orders.cancel("o1")

    assert gateway.events == [("o1", CANCEL_EVENT, {"seq": 1})]
    assert decision_kind(store, "o1") == "cancelled"


@pytest.mark.parametrize("step", sorted(PAST_PAYMENT_STEPS - {Step.DONE}))
async def test_cancel_past_payment_is_a_conflict(
    orders: OrderService, gateway: FakeWorkflowGateway, step: str
) -> None:
    await create(orders, "o1")
    gateway.set("o1", "RUNNING", step)

    with pytest.raises(Conflict, match="past payment"):
        await orders.cancel("o1")

    assert gateway.events == []


async def test_cancel_of_a_finished_order_is_a_conflict(
    orders: OrderService, gateway: FakeWorkflowGateway
) -> None:
    await create(orders, "o1")
    gateway.set("o1", "COMPLETED", Step.DONE, {"processed": True, "reason": None})

    with pytest.raises(Conflict, match="already finished"):
        await orders.cancel("o1")

    assert gateway.events == []


async def test_cancel_of_an_unknown_order_is_not_found(orders: OrderService) -> None:
    with pytest.raises(NotFound):
        await orders.cancel("nope")


async def test_cancel_the_engine_cannot_take_is_queued_and_delivered_later(
    orders: OrderService, gateway: FakeWorkflowGateway, store: InMemoryStateStore
) -> None:
    await create(orders, "o1")
    gateway.unavailable = True
    await orders.cancel("o1")
    assert (gateway.events, outbox(store)) == ([], ["o1"])
    gateway.unavailable = False

    await orders.outbox.deliver_pending()

    assert gateway.events == [("o1", CANCEL_EVENT, {"seq": 1})]
    assert decision_kind(store, "o1") == "cancelled"


async def test_a_cancel_given_up_before_it_was_recorded_records_nothing(
    store: InMemoryStateStore, caplog: pytest.LogCaptureFixture
) -> None:
    # The request deadline answered 503 while the engine read hung: the shielded change goes on
    # but must not record what its caller was told did not happen.
    caplog.set_level(logging.INFO, logger="app.services.orders")
    gateway = FakeWorkflowGateway()
    orders = OrderService(store, gateway, Settings(request_timeout_seconds=0.2))
    await create(orders, "o1", "paperclip", 3)
    gateway.hanging = True

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(orders.cancel("o1"), timeout=0.01)

    async def settled() -> tuple[object, bool]:
        given_up = "given up before it was recorded" in caplog.text
        return decided(store, "o1"), given_up

    decision, _ = await eventually(
        settled, lambda seen: seen != (None, False), deadline_seconds=5, what="the change settled"
    )
    assert decision is None
    assert gateway.events == []


# -- the point of no return: payment and cancel on one record ---------------------------------


async def test_cancel_once_the_payment_started_is_a_conflict_even_when_the_engine_cannot_say(
    orders: OrderService, gateway: FakeWorkflowGateway, store: InMemoryStateStore
) -> None:
    await create(orders, "o1", "paperclip", 3)
    assert await OrderRecords(store).start_payment("o1")
    gateway.unavailable_reads = True

    with pytest.raises(Conflict, match="past payment"):
        await orders.cancel("o1")

    assert (gateway.events, decided(store, "o1")) == ([], None)


async def test_payment_does_not_start_once_a_cancel_is_recorded(
    orders: OrderService, store: InMemoryStateStore
) -> None:
    await create(orders, "o1", "paperclip", 3)
    await orders.cancel("o1")

    assert await OrderRecords(store).start_payment("o1") is False
    assert record(store, "o1")["payment_started"] is False


async def test_starting_the_payment_again_finds_it_started(
    orders: OrderService, store: InMemoryStateStore
) -> None:
    # The activity ran again after a crash: the mark it left lets it go on (the ledger keeps
    # one entry per order).
    await create(orders, "o1", "paperclip", 3)
    records = OrderRecords(store)

    assert [await records.start_payment("o1"), await records.start_payment("o1")] == [True, True]
    assert record(store, "o1")["payment_started"] is True


async def test_a_cancel_losing_the_race_to_the_payment_start_is_refused(
    orders: OrderService, gateway: FakeWorkflowGateway, store: InMemoryStateStore
) -> None:
    await create(orders, "o1", "paperclip", 3)
    gateway.set("o1", "RUNNING", Step.RESERVING)  # the engine does not show the payment yet
    # The workflow marks the payment started between the cancel's read and its write.
    store.before_next_save = lambda: OrderRecords(store).start_payment("o1")

    with pytest.raises(Conflict, match="past payment"):
        await orders.cancel("o1")

    assert decided(store, "o1") is None
    assert gateway.events == []


async def test_a_payment_start_losing_the_race_to_a_cancel_charges_nothing(
    orders: OrderService, gateway: FakeWorkflowGateway, store: InMemoryStateStore
) -> None:
    await create(orders, "o1", "paperclip", 3)
    # The cancel is recorded between the payment start's read and its write.
    store.before_next_save = lambda: orders.cancel("o1")

    assert await OrderRecords(store).start_payment("o1") is False
    assert decision_kind(store, "o1") == "cancelled"
    assert record(store, "o1")["payment_started"] is False


# -- the approval deadline: the timer and a manager's decision on one record -------------------


@pytest.mark.parametrize("decide", ["approve", "reject", "cancel"])
async def test_a_decision_once_the_approval_timed_out_is_a_conflict(
    orders: OrderService, gateway: FakeWorkflowGateway, store: InMemoryStateStore, decide: str
) -> None:
    await create(orders, "o1", "cars", 4)
    assert await OrderRecords(store).close_decisions("o1", "approval_timeout") is None
    gateway.unavailable_reads = True  # nor does the engine have to say so

    decision = (
        orders.cancel("o1")
        if decide == "cancel"
        else orders.approve("o1", decide == "approve", None)
    )

    with pytest.raises(Conflict, match="takes no decision any more: approval_timeout"):
        await decision

    assert (gateway.events, decided(store, "o1")) == ([], None)


async def test_the_timeout_finds_a_decision_recorded_before_it(
    orders: OrderService, store: InMemoryStateStore
) -> None:
    await create(orders, "o1", "cars", 4)
    await orders.approve("o1", True, "alice")

    assert await OrderRecords(store).close_decisions("o1", "approval_timeout") == "approved"
    assert record(store, "o1")["decisions_closed"] is None


async def test_timing_out_again_finds_it_timed_out(
    orders: OrderService, store: InMemoryStateStore
) -> None:
    await create(orders, "o1", "cars", 4)
    records = OrderRecords(store)

    assert [
        await records.close_decisions("o1", "approval_timeout"),
        await records.close_decisions("o1", "approval_timeout"),
    ] == [
        None,
        None,
    ]
    assert record(store, "o1")["decisions_closed"] == "approval_timeout"


async def test_an_approval_losing_the_race_to_the_timeout_is_refused(
    orders: OrderService, gateway: FakeWorkflowGateway, store: InMemoryStateStore
) -> None:
    await create(orders, "o1", "cars", 4)
    gateway.set("o1", "RUNNING", Step.AWAITING_APPROVAL)  # the engine still shows the wait
    store.before_next_save = lambda: OrderRecords(store).close_decisions("o1", "approval_timeout")

    with pytest.raises(Conflict, match="approval_timeout"):
        await orders.approve("o1", True, "alice")

    assert (gateway.events, decided(store, "o1")) == ([], None)


async def test_a_timeout_losing_the_race_to_an_approval_finds_it(
    orders: OrderService, store: InMemoryStateStore
) -> None:
    await create(orders, "o1", "cars", 4)
    store.before_next_save = lambda: orders.approve("o1", True, "alice")

    assert await OrderRecords(store).close_decisions("o1", "approval_timeout") == "approved"
    assert record(store, "o1")["decisions_closed"] is None


class _WorkerAway(FakeWorkflowGateway):
    """daprd is up but the app's worker is not connected: Dapr can neither report the
    workflow's state nor take an event for it."""

    def __init__(self) -> None:
        super().__init__()
        self.worker_connected = True

    async def snapshot(self, instance_id: str) -> WorkflowSnapshot | None:
        if not self.worker_connected:
            raise DependencyUnavailable("did not find address for actor")
        return await super().snapshot(instance_id)

    async def raise_event(self, instance_id: str, event: str, data: Any) -> None:
        if not self.worker_connected:
            raise DependencyUnavailable("did not find address for actor")
        await super().raise_event(instance_id, event, data)


async def test_approval_sent_while_the_worker_is_away_is_accepted_and_delivered_once_it_returns(
    store: InMemoryStateStore, settings: Settings
) -> None:
    gateway = _WorkerAway()
    orders = OrderService(store, gateway, settings)
    await orders.create("cars", 4, "o1")
    gateway.worker_connected = False

    await orders.approve("o1", True, "alice")
    assert await orders.outbox.deliver_pending() == 1
    assert gateway.events == []

    gateway.worker_connected = True
    assert await orders.outbox.deliver_pending() == 0
    assert gateway.events == [
        ("o1", APPROVAL_EVENT, {"seq": 1, "approval": True, "approver": "alice"})
    ]


# -- the outcome recorded on the order, and the engine's purge of finished histories -----------


async def finish(
    store: InMemoryStateStore,
    gateway: FakeWorkflowGateway,
    order_id: str,
    reason: str | None = None,
) -> None:
    """What the workflow's last activity and its completion do."""
    outcome = OrderOutcome(
        order_id=order_id,
        processed=reason is None,
        reason=reason,
        finished_at=START + timedelta(minutes=5),
    )
    await OrderRecords(store).record_outcome(outcome)
    gateway.set(order_id, "COMPLETED", Step.DONE, {"processed": reason is None, "reason": reason})


async def test_a_finished_order_reads_the_same_after_its_history_is_purged(
    orders: OrderService, gateway: FakeWorkflowGateway, store: InMemoryStateStore
) -> None:
    await create(orders, "o1", "cars", 4)
    await finish(store, gateway, "o1", "rejected")
    before = await orders.get("o1")
    listed_before, _ = await orders.list(None, 10, None)

    del gateway.snapshots["o1"]  # the retention policy purged the workflow

    assert await orders.get("o1") == before
    assert (await orders.list(None, 10, None))[0] == listed_before
    assert (before.status, before.step) == ("COMPLETED", Step.DONE)
    assert before.result == Outcome(processed=False, reason="rejected")
    assert before.updated_at == START + timedelta(minutes=5)


async def test_a_purged_order_read_by_a_fresh_process_is_still_finished(
    store: InMemoryStateStore, gateway: FakeWorkflowGateway, settings: Settings
) -> None:
    first = OrderService(store, gateway, settings, clock=ticking_clock())
    await create(first, "o1", "paperclip", 1)
    await finish(store, gateway, "o1")
    del gateway.snapshots["o1"]

    restarted = OrderService(store, gateway, settings, clock=ticking_clock())
    order = await restarted.get("o1")

    assert (order.status, order.result) == ("COMPLETED", Outcome(processed=True, reason=None))


async def test_a_finished_order_needs_no_engine_read_once_its_outcome_is_known(
    orders: OrderService, gateway: FakeWorkflowGateway, store: InMemoryStateStore
) -> None:
    await create(orders, "o1", "paperclip", 1)
    await finish(store, gateway, "o1")
    await orders.get("o1")
    gateway.unavailable_reads = True

    assert (await orders.get("o1", wait_seconds=5)).status == "COMPLETED"
    assert gateway.waits == []


async def test_approve_of_a_purged_order_is_a_conflict(
    orders: OrderService, gateway: FakeWorkflowGateway, store: InMemoryStateStore
) -> None:
    await create(orders, "o1", "cars", 4)
    await finish(store, gateway, "o1", "approval_timeout")
    del gateway.snapshots["o1"]

    with pytest.raises(Conflict, match="already finished"):
        await orders.approve("o1", True, None)
    with pytest.raises(Conflict, match="already finished"):
        await orders.cancel("o1")
    assert gateway.events == []


async def test_repeating_the_create_of_a_purged_order_starts_nothing(
    orders: OrderService, gateway: FakeWorkflowGateway, store: InMemoryStateStore
) -> None:
    await create(orders, "o1", "paperclip", 1)
    await finish(store, gateway, "o1")
    del gateway.snapshots["o1"]

    order, created = await orders.create("paperclip", 1, "o1")

    assert (created, order.status) == (False, "COMPLETED")
    assert len(gateway.scheduled) == 1


async def test_the_first_recorded_outcome_stays(
    orders: OrderService, gateway: FakeWorkflowGateway, store: InMemoryStateStore
) -> None:
    await create(orders, "o1", "paperclip", 1)
    await finish(store, gateway, "o1")
    # The activity ran again (at least once delivery), with a later clock.
    again = OrderOutcome(order_id="o1", processed=False, reason="payment_failed", finished_at=START)
    await OrderRecords(store).record_outcome(again)

    assert record(store, "o1")["outcome"]["processed"] is True


# -- one decision per order -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [("approve", "cancel"), ("cancel", "approve"), ("reject", "approve"), ("cancel", "reject")],
)
async def test_the_first_decision_wins_and_the_second_names_it(
    orders: OrderService, gateway: FakeWorkflowGateway, first: str, second: str
) -> None:
    await create(orders, "o1", "cars", 4)
    gateway.set("o1", "RUNNING", Step.AWAITING_APPROVAL)
    decide = {
        "approve": lambda: orders.approve("o1", True, "alice"),
        "reject": lambda: orders.approve("o1", False, "alice"),
        "cancel": lambda: orders.cancel("o1", "alice"),
    }
    won = {"approve": "approved", "reject": "rejected", "cancel": "cancelled"}[first]

    await decide[first]()
    with pytest.raises(DecisionAlreadyMade, match=rf"^{won} by alice at "):
        await decide[second]()

    assert len(gateway.events) == 1
    order = await orders.get("o1")
    assert (order.decision, order.decided_by) == (won, "alice")


async def test_racing_decisions_record_exactly_one(
    orders: OrderService,
    gateway: FakeWorkflowGateway,
    store: InMemoryStateStore,
    settings: Settings,
) -> None:
    await create(orders, "o1", "cars", 4)
    gateway.set("o1", "RUNNING", Step.AWAITING_APPROVAL)
    other_replica = OrderService(store, gateway, settings, clock=ticking_clock())
    # The other replica's cancel lands between this approval's read and its writes.
    store.before_next_save = lambda: other_replica.cancel("o1")

    with pytest.raises(DecisionAlreadyMade, match=r"^cancelled by manager"):
        await orders.approve("o1", True, "alice")

    assert gateway.events == [("o1", CANCEL_EVENT, {"seq": 1})]


async def test_a_decision_without_a_name_is_the_managers(
    orders: OrderService, gateway: FakeWorkflowGateway
) -> None:
    await create(orders, "o1", "cars", 4)

    order = await orders.approve("o1", True, None)

    assert (order.decision, order.decided_by) == ("approved", "manager")
    assert order.decided_at == START + timedelta(seconds=1)


async def test_records_written_before_decisions_were_unified_still_read() -> None:
    earlier = {
        "order_id": "o1", "item": "cars", "quantity": 4, "total_cost": 60000,
        "approval_required": True, "created_at": START.isoformat(),
        "decision": {"approved": False, "approver": None, "at": START.isoformat()},
    }  # fmt: skip
    cancelled = {**earlier, "decision": None, "cancel_requested": True}

    assert OrderRecord.model_validate(earlier).decision == ManagerDecision(
        decision="rejected", by="manager", at=START
    )
    decision = OrderRecord.model_validate(cancelled).decision
    assert decision is not None
    assert decision.decision == "cancelled"


async def test_the_timeline_of_a_finished_order_comes_from_its_record(
    orders: OrderService, gateway: FakeWorkflowGateway, store: InMemoryStateStore
) -> None:
    await create(orders, "o1", "cars", 4)
    await orders.approve("o1", True, "alice")
    outcome = OrderOutcome(
        order_id="o1",
        processed=True,
        finished_at=START + timedelta(minutes=2),
        steps=[
            StepEntry(step=Step.NOTIFYING, at=START),
            StepEntry(step=Step.AWAITING_APPROVAL, at=START + timedelta(seconds=1)),
            StepEntry(step=Step.DONE, at=START + timedelta(minutes=2)),
        ],
    )
    await OrderRecords(store).record_outcome(outcome)
    del gateway.snapshots["o1"]

    entries = await orders.history("o1")

    assert [(e.event, e.detail) for e in entries] == [
        ("accepted", "4 cars, total 60000"),
        ("step", "notifying"),
        ("step", "awaiting_approval"),
        ("decision", f"approved by alice at {(START + timedelta(seconds=1)).isoformat()}"),
        ("step", "done"),
        ("finished", "processed"),
    ]


async def test_a_decision_made_on_another_replica_shows_at_once(
    store: InMemoryStateStore, gateway: FakeWorkflowGateway, settings: Settings
) -> None:
    # Two replicas: two services over the same store and engine, each with its own memory.
    here = OrderService(store, gateway, settings, clock=ticking_clock())
    there = OrderService(store, gateway, settings, clock=ticking_clock())
    await create(here, "o1", "cars", 4)
    gateway.set("o1", "RUNNING", Step.AWAITING_APPROVAL)
    assert (await here.get("o1")).decision is None  # polled here before the decision

    await there.approve("o1", True, "ana")

    seen = await here.get("o1")
    assert (seen.decision, seen.decided_by) == ("approved", "ana")


async def test_an_outcome_recorded_by_another_replica_shows_once_the_workflow_finished(
    store: InMemoryStateStore, gateway: FakeWorkflowGateway, settings: Settings
) -> None:
    here = OrderService(store, gateway, settings, clock=ticking_clock())
    there = OrderService(store, gateway, settings, clock=ticking_clock())
    await create(here, "o1", "cars", 4)
    await there.approve("o1", True, "ana")
    assert (await here.get("o1")).result is None  # decided: now cached here

    await OrderRecords(store).record_outcome(
        OrderOutcome(order_id="o1", processed=True, reason=None, finished_at=START, steps=[])
    )
    gateway.snapshots.pop("o1")  # finished and purged by the engine

    assert (await here.get("o1")).result == Outcome(processed=True, reason=None)
