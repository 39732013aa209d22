"""What the services report to their OrderObserver, and when."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

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


def outcome(order_id: str, reason: str | None) -> OrderOutcome:
    return OrderOutcome.model_validate(
        {
            "order_id": order_id,
            "processed": reason is None,
            "reason": reason,
            "finished_at": FINISHED_AT,
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
