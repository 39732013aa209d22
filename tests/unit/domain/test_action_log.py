"""An order's manager actions as a numbered, append-only log (OrderRecord.actions), and the
records written before it: their one decision and the events owed for it read as the log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from app.domain.orders import ManagerDecision, OrderRecord, new_order
from app.workflows.contracts import APPROVAL_EVENT, CANCEL_EVENT, ManagerAction

AT = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def _record() -> OrderRecord:
    return new_order("o1", "cars", 4, 50_000, AT)


def _earlier(**fields: Any) -> dict[str, Any]:
    return {**_record().model_dump(mode="json", exclude={"actions", "delivered"}), **fields}


def test_actions_are_numbered_in_the_order_they_are_appended() -> None:
    record = _record()
    first = record.next_action("approve", "ana", AT)
    record = record.with_action(first)
    second = record.next_action("cancel", "bo", AT + timedelta(seconds=1))
    record = record.with_action(second)

    assert [(a.seq, a.kind, a.by) for a in record.actions] == [
        (1, "approve", "ana"),
        (2, "cancel", "bo"),
    ]
    assert record.actions_after(1) == [second]
    # The decision is the log's first: one per order, whatever comes after it.
    assert record.decision == ManagerDecision(decision="approved", by="ana", at=AT)


def test_the_log_owes_the_workflow_every_action_until_marked_delivered_in_order() -> None:
    record = _record().with_action(_record().next_action("approve", "ana", AT))
    record = record.with_action(record.next_action("cancel", "bo", AT))

    assert [a.seq for a in record.undelivered()] == [1, 2]
    marked = OrderRecord.delivered_through(1)(record)
    assert marked is not None
    assert [a.seq for a in marked.undelivered()] == [2]
    # Marking again what is already marked writes nothing (a replica that raced this one).
    assert OrderRecord.delivered_through(1)(marked) is None


def test_a_stored_log_reads_back_the_same() -> None:
    record = _record().with_action(_record().next_action("reject", "ana", AT))

    stored = OrderRecord.model_validate(record.model_dump(mode="json"))

    assert stored == record


def test_the_decision_is_stored_beside_the_log_for_replicas_from_before_it() -> None:
    """A replica still on the code from before the log (a rolling upgrade) reads `decision`
    and refuses a second one; what it writes back (no `actions`) reads as the same log."""
    record = _record().with_action(_record().next_action("approve", "ana", AT))
    stored = record.model_dump(mode="json")

    assert stored["decision"] == {
        "decision": "approved",
        "by": "ana",
        "at": stored["actions"][0]["at"],
    }
    written_back = {k: v for k, v in stored.items() if k not in ("actions", "delivered")}
    assert OrderRecord.model_validate(written_back).actions == record.actions


def test_a_record_from_before_the_log_with_its_event_owed_reads_as_one_undelivered_action() -> None:
    earlier = _earlier(
        decision={"decision": "approved", "by": "ana", "at": AT.isoformat()},
        pending_events={APPROVAL_EVENT: {"approval": True, "approver": "ana"}},
    )

    record = OrderRecord.model_validate(earlier)

    assert record.actions == [ManagerAction(seq=1, kind="approve", by="ana", at=AT)]
    assert [a.seq for a in record.undelivered()] == [1]


def test_a_record_from_before_the_log_with_its_event_delivered_owes_nothing() -> None:
    earlier = _earlier(
        decision={"decision": "cancelled", "by": "bo", "at": AT.isoformat()}, pending_events={}
    )

    record = OrderRecord.model_validate(earlier)

    assert record.actions == [ManagerAction(seq=1, kind="cancel", by="bo", at=AT)]
    assert record.undelivered() == []


def test_a_record_from_before_decisions_without_one_has_an_empty_log() -> None:
    record = OrderRecord.model_validate(_earlier(decision=None, pending_events={}))

    assert (record.actions, record.decision, record.delivered) == ([], None, 0)


def test_an_action_signals_the_workflow_by_the_event_its_kind_has() -> None:
    approve = ManagerAction(seq=1, kind="approve", by="ana", at=AT)
    cancel = ManagerAction(seq=2, kind="cancel", by="bo", at=AT)

    assert approve.signal() == (APPROVAL_EVENT, {"seq": 1, "approval": True, "approver": "ana"})
    assert cancel.signal() == (CANCEL_EVENT, {"seq": 2})


@pytest.mark.parametrize("entry", [{"seq": 0}, {"kind": "pause"}, {"kind": "approved"}])
def test_an_action_outside_the_closed_set_is_refused(entry: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ManagerAction.model_validate({"seq": 1, "kind": "approve", "by": "a", "at": AT, **entry})
