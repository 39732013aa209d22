"""The auditor over the in-memory store: a clean shop passes, and each invariant broken on
purpose is reported with the order (or item) it concerns."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from app.config import Settings
from app.domain.audit import AuditReport, AuditRules, Violation
from app.services.audit import Auditor
from app.services.inventory import InventoryService
from app.services.order_records import OrderRecords
from app.services.orders import OrderService
from app.services.payments import PaymentLedger
from app.workflows.contracts import OrderOutcome, Reason, Retrying, WorkflowSnapshot
from tests.fixtures.fakes import FakeWorkflowGateway, InMemoryStateStore

START = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
APPROVAL_TIMEOUT = 30.0
GRACE = 60.0
RULES = AuditRules(approval_timeout_seconds=APPROVAL_TIMEOUT, grace_seconds=GRACE)


class Shop:
    """The real services on the fakes; the workflow's steps are played by hand."""

    def __init__(self, store: InMemoryStateStore, workflows: FakeWorkflowGateway) -> None:
        self.store = store
        self.workflows = workflows
        settings = Settings(approval_threshold=50_000, approval_timeout_seconds=APPROVAL_TIMEOUT)
        self.orders = OrderService(store, workflows, settings, clock=lambda: START)
        self.records = OrderRecords(store)
        self.stock = InventoryService(store)
        self.ledger = PaymentLedger(store)
        self.now = START + timedelta(seconds=5)

    def auditor(self) -> Auditor:
        return Auditor(self.store, self.workflows, RULES, clock=lambda: self.now)

    async def audit(self) -> AuditReport:
        return await self.auditor().run()

    async def place(self, order_id: str, item: str = "computers", quantity: int = 2) -> str:
        await self.orders.create(item, quantity, order_id)
        return order_id

    async def reserve(self, order_id: str) -> bool:
        record, _ = await self.records.get(order_id)
        return await self.stock.reserve(order_id, record.item, record.quantity)

    async def finish(self, order_id: str, reason: Reason | None) -> None:
        outcome = OrderOutcome(
            order_id=order_id, processed=reason is None, reason=reason, finished_at=START
        )
        await self.records.record_outcome(outcome)
        self.workflows.set(order_id, "COMPLETED", "done", {"processed": reason is None})

    async def process(self, order_id: str) -> str:
        """Reserve, pay, commit, record: an order that went through."""
        record, _ = await self.records.get(order_id)
        assert await self.reserve(order_id)
        await self.ledger.charge(order_id, record.total_cost)
        await self.stock.commit(order_id, record.item)
        await self.finish(order_id, None)
        return order_id

    async def give_up(self, order_id: str, reason: Reason) -> str:
        """Reserve, release, record: an order that did not go through."""
        record, _ = await self.records.get(order_id)
        assert await self.reserve(order_id)
        await self.stock.release(order_id, record.item)
        await self.finish(order_id, reason)
        return order_id

    def key(self, prefix: str, name: str) -> str:
        return f"{prefix}:{name}"

    def edit(self, key: str, change: Callable[[dict[str, object]], None]) -> None:
        """Change a stored document behind the services' back (the seeded violation)."""
        value, _ = self.store.data[key]
        change(value)


@pytest.fixture
async def shop(store: InMemoryStateStore) -> Shop:
    shop = Shop(store, FakeWorkflowGateway())
    await shop.stock.seed()
    return shop


def found(report: AuditReport, invariant: str) -> list[Violation]:
    return [v for v in report.violations if v.invariant == invariant]


async def every_outcome(shop: Shop) -> None:
    """One order of every kind, and the stock moved every way."""
    await shop.process(await shop.place("small"))
    approved = await shop.place("approved", "cars", 4)
    await shop.orders.approve(approved, True, "alice")
    await shop.process(approved)
    rejected = await shop.place("rejected", "cars", 4)
    await shop.orders.approve(rejected, False, "bob")
    await shop.give_up(rejected, "rejected")
    cancelled = await shop.place("cancelled")
    await shop.orders.cancel(cancelled)
    await shop.give_up(cancelled, "cancelled")
    await shop.give_up(await shop.place("timed-out", "cars", 4), "approval_timeout")
    await shop.stock.restock("computers", 10)
    await shop.finish(await shop.place("too-many", "computers", 500), "insufficient_inventory")
    # Refunded: the stock update failed after payment.
    refunded = await shop.place("refunded")
    assert await shop.reserve(refunded)
    await shop.ledger.charge(refunded, 1000)
    await shop.ledger.refund(refunded)
    await shop.stock.release(refunded, "computers")
    await shop.finish(refunded, "inventory_update_failed")
    # Still waiting for a manager, its stock held; then a reset keeps that hold.
    waiting = await shop.place("waiting", "cars", 4)
    assert await shop.reserve(waiting)
    shop.workflows.set(waiting, "RUNNING", "awaiting_approval")
    await shop.stock.reset()
    await shop.process(await shop.place("after-reset", "paperclip", 7))


async def test_a_store_where_everything_adds_up_passes(shop: Shop) -> None:
    await every_outcome(shop)

    report = await shop.audit()

    assert report.violations == []
    assert report.ok
    assert report.checked["orders"] == 9
    assert report.checked["finished"] == 8
    assert report.checked["in_flight"] == 1
    assert report.checked["processed"] == 3
    assert (report.checked["payments_paid"], report.checked["payments_refunded"]) == (3, 1)
    assert report.checked["holds"] == 1
    assert report.checked["items_sales_unverified"] == 0


async def test_an_empty_store_passes(shop: Shop) -> None:
    report = await shop.audit()

    assert report.ok
    assert report.checked["orders"] == 0


async def test_a_processed_order_without_a_ledger_entry_is_reported(shop: Shop) -> None:
    await every_outcome(shop)
    del shop.store.data["payment:approved"]

    report = await shop.audit()

    assert [(v.order_id, v.detail) for v in found(report, "payment")] == [
        ("approved", "processed, but the ledger has no entry")
    ]
    assert not report.ok


async def test_a_processed_order_whose_payment_was_refunded_is_reported(shop: Shop) -> None:
    await every_outcome(shop)
    await shop.ledger.refund("small")

    report = await shop.audit()

    assert [v.order_id for v in found(report, "payment")] == ["small"]


async def test_a_payment_kept_by_an_order_that_did_not_go_through_is_reported(shop: Shop) -> None:
    await every_outcome(shop)
    await shop.ledger.charge("rejected", 60_000)

    report = await shop.audit()

    assert [(v.order_id, v.detail) for v in found(report, "payment")] == [
        ("rejected", "ended rejected, but its payment was not refunded")
    ]


async def test_a_payment_for_an_order_that_does_not_exist_is_reported(shop: Shop) -> None:
    ghost = await shop.place("ghost")
    await shop.ledger.charge(ghost, 1000)
    await shop.records.delete(ghost)  # a create that undid itself, after its workflow paid

    report = await shop.audit()

    assert [(v.order_id, v.detail) for v in found(report, "payment")] == [
        ("ghost", "paid, but there is no such order")
    ]
    assert report.checked["listed_without_record"] == 1


async def test_a_payment_kept_by_an_order_whose_workflow_failed_is_reported(shop: Shop) -> None:
    order_id = await shop.place("failed-after-payment")
    await shop.ledger.charge(order_id, 1000)
    shop.workflows.set(order_id, "FAILED", "updating_inventory")

    report = await shop.audit()

    assert [(v.order_id, v.detail) for v in found(report, "payment")] == [
        (order_id, "paid, but its workflow ended FAILED without an outcome")
    ]


async def test_a_payment_of_the_wrong_amount_is_reported(shop: Shop) -> None:
    await shop.process(await shop.place("small"))
    shop.edit("payment:small", lambda entry: entry.update(amount=1))

    report = await shop.audit()

    assert [v.order_id for v in found(report, "payment")] == ["small"]


async def test_stock_held_for_a_finished_order_is_reported(shop: Shop) -> None:
    await every_outcome(shop)

    def hold(doc: dict[str, object]) -> None:
        assert isinstance(doc["held"], dict)
        doc["held"]["cancelled"] = 2
        doc.update(quantity=int(str(doc["quantity"])) - 2, reserved=2)

    shop.edit("inventory:computers", hold)

    report = await shop.audit()

    assert [(v.order_id, v.detail) for v in found(report, "stock_hold")] == [
        ("cancelled", "holds 2 computers, but it ended cancelled")
    ]
    assert found(report, "stock_balance") == []


async def test_stock_held_for_an_order_that_does_not_exist_is_reported(shop: Shop) -> None:
    assert await shop.stock.reserve("nobody", "computers", 3)

    report = await shop.audit()

    assert [(v.order_id, v.detail) for v in found(report, "stock_hold")] == [
        ("nobody", "holds 3 computers, but there is no such order")
    ]


async def test_stock_held_by_an_order_whose_workflow_failed_is_reported(shop: Shop) -> None:
    failed = await shop.place("failed")
    assert await shop.reserve(failed)
    shop.workflows.set(failed, "FAILED", "reserving_inventory")

    report = await shop.audit()

    assert [v.order_id for v in found(report, "stock_hold")] == ["failed"]
    assert [v.order_id for v in found(report, "unfinished")] == ["failed"]


async def test_a_hold_of_another_quantity_than_the_order_is_reported(shop: Shop) -> None:
    order_id = await shop.place("holding-more", "computers", 2)
    assert await shop.stock.reserve(order_id, "computers", 5)
    shop.workflows.set(order_id, "RUNNING", "reserving_inventory")

    report = await shop.audit()

    assert [(v.order_id, v.detail) for v in found(report, "stock_hold")] == [
        (order_id, "holds 5 computers, but the order is for 2 computers")
    ]


async def test_a_stock_count_that_does_not_add_up_is_reported(shop: Shop) -> None:
    await every_outcome(shop)
    shop.edit("inventory:paperclip", lambda doc: doc.update(sold=8))

    report = await shop.audit()

    [violation] = found(report, "stock_balance")
    assert violation.order_id is None
    assert violation.detail.startswith("paperclip: available 93 + reserved 0 + sold 8 = 101")


async def test_units_sold_that_no_processed_order_accounts_for_are_reported(shop: Shop) -> None:
    await every_outcome(shop)
    # The stock update of the refunded order did land after all: sold, though not processed.
    shop.edit(
        "inventory:computers",
        lambda doc: doc.update(
            quantity=int(str(doc["quantity"])) - 2,
            sold=int(str(doc["sold"])) + 2,
            sold_total=int(str(doc["sold_total"])) + 2,
        ),
    )

    report = await shop.audit()

    assert [v.detail for v in found(report, "stock_balance")] == [
        "computers: 4 units sold in all, but processed orders account for 2"
    ]


async def test_units_of_an_order_in_flight_may_be_sold_already(shop: Shop) -> None:
    # Committed, outcome not yet recorded: between the last two steps of the workflow.
    order_id = await shop.place("committing")
    assert await shop.reserve(order_id)
    await shop.ledger.charge(order_id, 1000)
    await shop.stock.commit(order_id, "computers")
    shop.workflows.set(order_id, "RUNNING", "done")

    assert (await shop.audit()).ok


async def test_a_cancelled_order_that_was_processed_is_reported(shop: Shop) -> None:
    order_id = await shop.place("paid-after-cancel")
    await shop.orders.cancel(order_id)
    await shop.process(order_id)

    report = await shop.audit()

    [violation] = found(report, "decision")
    assert violation.order_id == order_id
    assert violation.detail.startswith("cancelled by manager at ")
    assert violation.detail.endswith(", but it processed")


async def test_a_cancelled_order_that_reached_payment_is_reported(shop: Shop) -> None:
    order_id = await shop.place("refunded-after-cancel")
    await shop.orders.cancel(order_id)
    await shop.give_up(order_id, "inventory_update_failed")

    report = await shop.audit()

    assert [v.order_id for v in found(report, "decision")] == [order_id]


async def test_a_cancelled_order_that_ran_out_of_stock_first_is_not_reported(shop: Shop) -> None:
    order_id = await shop.place("cancelled-too-late", "computers", 500)
    await shop.orders.cancel(order_id)
    await shop.finish(order_id, "insufficient_inventory")

    assert (await shop.audit()).ok


async def test_an_approved_order_that_timed_out_is_reported(shop: Shop) -> None:
    order_id = await shop.place("approved-late", "cars", 4)
    await shop.orders.approve(order_id, True, "alice")
    await shop.give_up(order_id, "approval_timeout")

    report = await shop.audit()

    assert [v.order_id for v in found(report, "decision")] == [order_id]


async def test_an_order_past_its_deadline_with_no_reason_shown_is_reported(shop: Shop) -> None:
    waiting = await shop.place("stuck", "cars", 4)
    assert await shop.reserve(waiting)
    shop.workflows.set(waiting, "RUNNING", "awaiting_approval")
    shop.now = START + timedelta(seconds=APPROVAL_TIMEOUT + GRACE + 1)

    report = await shop.audit()

    [violation] = found(report, "unfinished")
    assert violation.order_id == "stuck"
    assert "at step awaiting_approval" in violation.detail


async def test_an_order_within_its_approval_wait_and_grace_is_not_late(shop: Shop) -> None:
    waiting = await shop.place("waiting", "cars", 4)
    shop.workflows.set(waiting, "RUNNING", "awaiting_approval")
    shop.now = START + timedelta(seconds=APPROVAL_TIMEOUT + GRACE - 1)

    assert (await shop.audit()).ok


async def test_a_late_order_whose_decision_waits_for_delivery_is_not_reported(
    shop: Shop,
) -> None:
    waiting = await shop.place("queued", "cars", 4)
    shop.workflows.set(waiting, "RUNNING", "awaiting_approval")
    shop.workflows.unavailable = True  # the decision is saved, its event not delivered
    await shop.orders.approve(waiting, True, "alice")
    shop.workflows.unavailable = False
    shop.now = START + timedelta(seconds=APPROVAL_TIMEOUT + GRACE + 1)

    assert (await shop.audit()).ok


async def test_a_late_order_whose_step_is_being_retried_is_not_reported(shop: Shop) -> None:
    stalled = await shop.place("stalled")
    shop.workflows.set(
        stalled,
        "RUNNING",
        "reserving_inventory",
        retrying=Retrying(reason="unavailable", error="NOPERM", attempts=3, since=START),
    )
    shop.now = START + timedelta(seconds=GRACE + 1)

    assert (await shop.audit()).ok
    shop.workflows.set(stalled, "RUNNING", "reserving_inventory")  # no reason shown any more
    assert [v.order_id for v in found(await shop.audit(), "unfinished")] == ["stalled"]


async def test_an_order_waiting_to_start_is_not_late_within_its_deadline(shop: Shop) -> None:
    shop.workflows.unavailable = True  # accepted, PENDING: the start outbox retries its start
    await shop.place("pending")
    shop.now = START + timedelta(seconds=GRACE - 1)

    report = await shop.audit()

    assert report.ok, report.violations
    assert report.checked["waiting_to_start"] == 1


async def test_an_order_waiting_to_start_past_its_deadline_is_late_with_the_reason(
    shop: Shop,
) -> None:
    shop.workflows.unavailable = True
    await shop.place("pending")
    shop.now = START + timedelta(seconds=GRACE + 1)

    [violation] = found(await shop.audit(), "unfinished")

    assert violation.order_id == "pending"
    assert "its workflow has not started" in violation.detail
    assert "start outbox" in violation.detail


async def test_a_late_order_without_a_workflow_nor_a_start_pending_shows_no_reason(
    shop: Shop,
) -> None:
    await shop.place("lost")
    del shop.workflows.snapshots["lost"]  # started, the engine then lost it
    shop.now = START + timedelta(seconds=GRACE + 1)

    [violation] = found(await shop.audit(), "unfinished")

    assert "at no workflow, with no reason shown" in violation.detail


async def test_an_order_whose_workflow_ended_without_an_outcome_is_reported(shop: Shop) -> None:
    order_id = await shop.place("crashed")
    shop.workflows.set(order_id, "FAILED", "processing_payment")

    report = await shop.audit()

    assert [(v.order_id, v.detail) for v in found(report, "unfinished")] == [
        ("crashed", "its workflow ended FAILED without recording an outcome")
    ]


def during_audit(shop: Shop, work: Callable[[], Awaitable[object]]) -> None:
    """Run `work` at the auditor's first engine read: after it read the orders, before the
    stock (what a live store does to an audit)."""
    read = shop.workflows.snapshot
    pending = [work]

    async def snapshot(instance_id: str) -> WorkflowSnapshot | None:
        if pending:
            await pending.pop()()
        return await read(instance_id)

    shop.workflows.snapshot = snapshot  # type: ignore[method-assign]


async def test_an_order_that_finishes_during_the_audit_is_not_reported(shop: Shop) -> None:
    order_id = await shop.place("finishing")
    assert await shop.reserve(order_id)
    shop.workflows.set(order_id, "RUNNING", "reserving_inventory")

    async def go_through() -> None:
        await shop.ledger.charge(order_id, 1000)
        await shop.stock.commit(order_id, "computers")
        await shop.finish(order_id, None)

    during_audit(shop, go_through)

    report = await shop.audit()

    assert report.violations == []


async def test_an_order_placed_during_the_audit_is_not_reported(shop: Shop) -> None:
    await shop.place("first")
    shop.workflows.set("first", "RUNNING", "notifying")

    async def place_and_reserve() -> None:
        await shop.place("newcomer")
        assert await shop.reserve("newcomer")
        await shop.process(await shop.place("quick", "paperclip", 3))

    during_audit(shop, place_and_reserve)

    report = await shop.audit()

    assert report.violations == []
    assert report.checked["arrived_during_audit"] == 2


async def test_the_report_as_json_names_every_violation(shop: Shop) -> None:
    assert await shop.stock.reserve("nobody", "computers", 3)

    report = (await shop.audit()).as_json()

    assert report["ok"] is False
    assert report["violations"] == [
        {
            "invariant": "stock_hold",
            "order_id": "nobody",
            "detail": "holds 3 computers, but there is no such order",
        }
    ]
    assert report["checked"]["holds"] == 1
