"""What the services report to their OrderObserver, and when."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.services.in_flight import InFlightOrders
from app.services.order_records import OrderRecords
from app.workflows.contracts import OrderOutcome
from tests.fixtures.fakes import InMemoryStateStore

FINISHED_AT = datetime(2026, 1, 1, tzinfo=UTC)


class RecordingObserver:
    def __init__(self) -> None:
        self.reports: list[tuple[str, str]] = []

    def order_accepted(self) -> None:
        self.reports.append(("accepted", ""))

    def order_decided(self, decision: str) -> None:
        self.reports.append(("decided", decision))

    def order_finished(self, outcome: str) -> None:
        self.reports.append(("finished", outcome))

    def approval_waited(self, seconds: float) -> None:
        self.reports.append(("approval waited", f"{seconds:g}"))

    def worker_replaced(self) -> None:
        self.reports.append(("worker replaced", ""))

    def sidecar_restart_requested(self) -> None:
        self.reports.append(("sidecar restart requested", ""))


async def stored_order(store: InMemoryStateStore, order_id: str) -> None:
    await store.save(
        OrderRecords.key(order_id),
        {
            "order_id": order_id,
            "item": "cars",
            "quantity": 1,
            "total_cost": 15_000,
            "approval_required": False,
            "created_at": FINISHED_AT.isoformat(),
        },
        None,
    )


def outcome(
    order_id: str, reason: str | None, steps: list[tuple[str, datetime]] | None = None
) -> OrderOutcome:
    return OrderOutcome.model_validate(
        {
            "order_id": order_id,
            "processed": reason is None,
            "reason": reason,
            "finished_at": FINISHED_AT,
            "steps": [{"step": step, "at": at} for step, at in steps or []],
        }
    )


@pytest.mark.parametrize(
    ("reason", "reported"), [(None, "processed"), ("payment_failed", "payment_failed")]
)
async def test_a_recorded_outcome_is_reported_by_its_outcome(
    store: InMemoryStateStore, reason: str | None, reported: str
) -> None:
    observer = RecordingObserver()
    await stored_order(store, "o1")

    await OrderRecords(store, observer).record_outcome(outcome("o1", reason))

    assert observer.reports == [("finished", reported)]


async def test_an_outcome_recorded_twice_is_reported_once(store: InMemoryStateStore) -> None:
    observer = RecordingObserver()
    await stored_order(store, "o1")
    records = OrderRecords(store, observer)

    # The activity may run twice; the second run writes nothing, and a differing outcome is not
    # what the order ended with.
    await records.record_outcome(outcome("o1", None))
    await records.record_outcome(outcome("o1", "rejected"))

    assert observer.reports == [("finished", "processed")]


async def test_an_outcome_that_lost_a_race_is_reported_by_the_writer_only(
    store: InMemoryStateStore,
) -> None:
    observer = RecordingObserver()
    await stored_order(store, "o1")
    racing = OrderRecords(store)

    async def twin_writes_first() -> None:
        await racing.record_outcome(outcome("o1", None))

    store.before_next_save = twin_writes_first
    await OrderRecords(store, observer).record_outcome(outcome("o1", None))

    assert observer.reports == []


async def test_the_approval_wait_is_reported_from_the_workflows_step_times(
    store: InMemoryStateStore,
) -> None:
    observer = RecordingObserver()
    await stored_order(store, "o1")
    waited_from = FINISHED_AT - timedelta(seconds=100)
    steps = [
        ("reserving_inventory", waited_from - timedelta(seconds=1)),
        ("awaiting_approval", waited_from),
        ("processing_payment", waited_from + timedelta(seconds=42)),
    ]

    await OrderRecords(store, observer).record_outcome(outcome("o1", None, steps))

    assert observer.reports == [("finished", "processed"), ("approval waited", "42")]


async def test_an_approval_timeout_waited_until_the_order_finished(
    store: InMemoryStateStore,
) -> None:
    observer = RecordingObserver()
    await stored_order(store, "o1")
    steps = [("awaiting_approval", FINISHED_AT - timedelta(seconds=200))]

    await OrderRecords(store, observer).record_outcome(outcome("o1", "approval_timeout", steps))

    assert ("approval waited", "200") in observer.reports


async def test_a_recorded_outcome_takes_the_order_out_of_flight(
    store: InMemoryStateStore,
) -> None:
    await stored_order(store, "o1")
    in_flight = InFlightOrders(store)
    await in_flight.add("o1")
    await in_flight.add("o2")

    await OrderRecords(store, in_flight=in_flight).record_outcome(outcome("o1", None))

    assert await in_flight.ids() == {"o2"}
