"""The order record, the order as clients see it, and the rules for what may happen to an order.

The record (what was asked, when, and what a manager decided) is stored; status, step and result
come from the workflow, so the view of an order never disagrees with the engine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from app.domain.inventory import catalog_entry, normalize_item
from app.errors import Conflict
from app.workflows.contracts import (
    PAST_PAYMENT_STEPS,
    OrderOutcome,
    OrderResult,
    Step,
    WorkflowSnapshot,
)


class ManagerDecision(BaseModel):
    approved: bool
    approver: str | None
    at: datetime


class OrderRecord(BaseModel):
    """The stored order. The first six fields never change once the order is accepted."""

    order_id: str
    item: str
    quantity: int
    total_cost: int
    approval_required: bool
    created_at: datetime
    # Position in the listing (see services.order_index); set before the record is first saved.
    seq: int | None = None
    decision: ManagerDecision | None = None
    cancel_requested: bool = False
    # Events owed to the workflow (name -> payload) until it has them; see services.manager_outbox.
    pending_events: dict[str, Any] = Field(default_factory=dict)
    # Written by the workflow's last activity; from then on the record alone answers for the
    # order (its workflow history is purged after the retention period).
    outcome: OrderOutcome | None = None

    @staticmethod
    def delivered(event: str) -> Callable[[OrderRecord], OrderRecord]:
        """The change that drops `event` from what the workflow is owed."""

        def change(record: OrderRecord) -> OrderRecord:
            pending = {k: v for k, v in record.pending_events.items() if k != event}
            return record.model_copy(update={"pending_events": pending})

        return change

    def with_action(self, event: str, data: Any, **changes: Any) -> OrderRecord:
        """The record with a manager's action (`changes`) saved and its event owed to the
        workflow, in one write."""
        pending = {**self.pending_events, event: data}
        return self.model_copy(update={**changes, "pending_events": pending})

    def accepted(self) -> OrderRecord:
        """Only what the client asked for (all a poll needs from the record)."""
        return OrderRecord(
            order_id=self.order_id,
            item=self.item,
            quantity=self.quantity,
            total_cost=self.total_cost,
            approval_required=self.approval_required,
            created_at=self.created_at,
            seq=self.seq,
            outcome=self.outcome,
        )


def new_order(
    order_id: str, item: str, quantity: int, approval_threshold: int, now: datetime
) -> OrderRecord:
    """A new order for a catalog item (InvalidInput otherwise), priced, with its approval rule."""
    entry = catalog_entry(item)
    total = entry.per_item_cost * quantity
    return OrderRecord(
        order_id=order_id,
        item=normalize_item(item),
        quantity=quantity,
        total_cost=total,
        approval_required=total > approval_threshold,
        created_at=now,
    )


def check_same_order(existing: OrderRecord, requested: OrderRecord) -> None:
    """A repeated create with a client-chosen id must ask for the same thing."""
    if (existing.item, existing.quantity) != (requested.item, requested.quantity):
        raise Conflict(
            f"order {existing.order_id!r} already exists for {existing.quantity} {existing.item}"
        )


def check_unfinished(record: OrderRecord, snapshot: WorkflowSnapshot | None) -> None:
    # Dapr drops events for finished instances, so a manager action on one could never count.
    if record.outcome is not None:
        raise Conflict(f"order {record.order_id!r} has already finished (COMPLETED)")
    if snapshot is not None and snapshot.finished:
        raise Conflict(f"order {record.order_id!r} has already finished ({snapshot.status})")


def check_can_decide(record: OrderRecord) -> None:
    if not record.approval_required:
        raise Conflict(f"order {record.order_id!r} does not need approval")
    if record.decision is not None:
        raise Conflict(f"a decision was already sent for order {record.order_id!r}")


def check_can_cancel(record: OrderRecord, snapshot: WorkflowSnapshot | None) -> None:
    if snapshot is not None and snapshot.step in PAST_PAYMENT_STEPS:
        raise Conflict(f"order {record.order_id!r} is past payment and can no longer be cancelled")


@dataclass(frozen=True)
class Outcome:
    """How a finished order ended: the workflow's own result, or why there is none."""

    processed: bool
    reason: str | None


@dataclass(frozen=True)
class Order:
    """An order as clients see it: the record joined with its workflow's state."""

    order_id: str
    item: str
    quantity: int
    total_cost: int
    approval_required: bool
    status: str
    step: str | None
    result: Outcome | None
    created_at: datetime
    updated_at: datetime


def _outcome(snapshot: WorkflowSnapshot | None) -> Outcome | None:
    if snapshot is None or not snapshot.finished:
        return None
    if snapshot.status == "COMPLETED" and snapshot.output is not None:
        result = OrderResult.model_validate(snapshot.output)
        return Outcome(result.processed, result.reason)
    # A workflow that failed or was terminated did not return a result of its own.
    return Outcome(False, f"workflow_{snapshot.status.lower()}")


def order_view(record: OrderRecord, snapshot: WorkflowSnapshot | None) -> Order:
    """The order from its workflow's state, or from the outcome recorded on it once it has one
    (the same answer either way, before and after the engine purges the history)."""
    if record.outcome is not None:
        snapshot = WorkflowSnapshot(
            status="COMPLETED",
            step=Step.DONE,
            output=OrderResult(
                processed=record.outcome.processed, reason=record.outcome.reason
            ).model_dump(),
            updated_at=record.outcome.finished_at,
        )
    created = record.created_at
    updated = snapshot.updated_at if snapshot and snapshot.updated_at else created
    return Order(
        order_id=record.order_id,
        item=record.item,
        quantity=record.quantity,
        total_cost=record.total_cost,
        approval_required=record.approval_required,
        # Accepted but not yet picked up by the engine is still an order: PENDING, not 404.
        status=snapshot.status if snapshot else "PENDING",
        step=snapshot.step if snapshot else None,
        result=_outcome(snapshot),
        created_at=created,
        updated_at=max(updated, created),
    )
