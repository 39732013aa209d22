"""The order record, the order as clients see it, and the rules for what may happen to an order.

The record (what was asked, when, and what a manager decided) is stored; status, step and result
come from the workflow, so the view of an order never disagrees with the engine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, computed_field, model_validator

from app.domain.inventory import catalog_entry, normalize_item
from app.errors import Conflict, DecisionAlreadyMade
from app.workflows.contracts import (
    DECISION_OF,
    PAST_PAYMENT_STEPS,
    ActionKind,
    DecisionKind,
    ManagerAction,
    OrderEventKind,
    OrderOutcome,
    OrderResult,
    Reason,
    Retrying,
    Step,
    WorkflowSnapshot,
)

# Who decided, when the manager named nobody: the role the token stands for.
DEFAULT_DECIDER = "manager"


class ManagerDecision(BaseModel):
    """The one decision a manager makes on an order: approve, reject or cancel. A view of the
    order's action log (OrderRecord.decision), and the shape records kept before there was one."""

    decision: DecisionKind
    by: str
    at: datetime

    @model_validator(mode="before")
    @classmethod
    def _from_earlier_records(cls, data: Any) -> Any:
        # Records written before the three were one decision: {"approved": bool, "approver"}.
        if isinstance(data, dict) and "decision" not in data and "approved" in data:
            return {
                "decision": "approved" if data["approved"] else "rejected",
                "by": data.get("approver") or DEFAULT_DECIDER,
                "at": data["at"],
            }
        return data

    def describe(self) -> str:
        return f"{self.decision} by {self.by} at {self.at.isoformat()}"

    @classmethod
    def of(cls, action: ManagerAction) -> ManagerDecision:
        return cls(decision=action.decision, by=action.by, at=action.at)


_ACTION_OF: dict[DecisionKind, ActionKind] = {v: k for k, v in DECISION_OF.items()}


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
    # Whose order it is (the token's `sub` with CUSTOMER_AUTH=jwt): None for an anonymous one
    # (auth off, or the static manager token), and for records written before orders had owners.
    customer: str | None = None
    # Position in its customer's own listing (services.customer_orders), set with `seq`.
    customer_seq: int | None = None
    # What managers did to the order, oldest first, numbered from 1: appended by compare-and-swap
    # on this record, never changed. `decision` is a view of it.
    actions: list[ManagerAction] = Field(default_factory=list)
    # The workflow has been signalled every action up to this number; those after it are owed
    # to it (see services.manager_outbox, which delivers them in order).
    delivered: int = 0
    # The point of no return: set by the workflow's payment activity, by compare-and-swap on this
    # record, before it charges anything, and only while no cancel is recorded. A cancel is
    # recorded (by compare-and-swap too) only while it is unset. So exactly one of the two wins.
    payment_started: bool = False
    # Why the workflow ends the order on its own (the approval timer, too little stock): set by
    # the workflow, by compare-and-swap on this record, only while no decision is recorded; a
    # decision is recorded only while it is unset. So a decision either came first and is the
    # outcome, or it is refused.
    decisions_closed: Reason | None = None
    # Set by the workflow's commit or release of the order's stock, before it changes the stock:
    # a reserve that lands later (Dapr ran the activity again, and the run raced the workflow)
    # and finds it set gives back the hold it made, which nothing would ever take.
    stock_settled: bool = False
    # Written by the workflow's last activity; from then on the record alone answers for the
    # order (its workflow history is purged after the retention period).
    outcome: OrderOutcome | None = None

    @model_validator(mode="before")
    @classmethod
    def _actions_from_earlier_records(cls, data: Any) -> Any:
        # Records written before the log kept one `decision` and the events owed to the workflow
        # (`pending_events`, name -> payload); older ones still, a cancel as a flag of its own.
        if not isinstance(data, dict) or "actions" in data:
            return data
        decision = data.get("decision")
        if decision is None and data.get("cancel_requested"):
            at = data.get("created_at")
            decision = {"decision": "cancelled", "by": DEFAULT_DECIDER, "at": at}
        if decision is None:
            return data
        view = ManagerDecision.model_validate(decision)
        action = ManagerAction(seq=1, kind=_ACTION_OF[view.decision], by=view.by, at=view.at)
        return {**data, "actions": [action], "delivered": 0 if data.get("pending_events") else 1}

    # Stored beside the log, though read from it: a replica still on the code from before the
    # log (a rolling upgrade) reads `decision` to refuse a second one, and never sees `actions`.
    @computed_field  # type: ignore[prop-decorator]
    @property
    def decision(self) -> ManagerDecision | None:
        """The manager's decision: the log's first approve, reject or cancel (one per order)."""
        decisions = (action for action in self.actions if action.kind in DECISION_OF)
        return next((ManagerDecision.of(action) for action in decisions), None)

    def with_action(self, action: ManagerAction) -> OrderRecord:
        """The record with a manager's action appended to its log (owed to the workflow until
        delivered), in one write."""
        return self.model_copy(update={"actions": [*self.actions, action]})

    def next_action(self, kind: ActionKind, by: str, at: datetime) -> ManagerAction:
        """The action `kind`, numbered as the next entry of this record's log."""
        return ManagerAction(seq=len(self.actions) + 1, kind=kind, by=by, at=at)

    def actions_after(self, seq: int) -> list[ManagerAction]:
        """The actions numbered after `seq`, oldest first."""
        return [action for action in self.actions if action.seq > seq]

    def undelivered(self) -> list[ManagerAction]:
        """The actions owed to the workflow, oldest first."""
        return self.actions_after(self.delivered)

    @staticmethod
    def delivered_through(seq: int) -> Callable[[OrderRecord], OrderRecord | None]:
        """The change that marks every action up to `seq` delivered (None: it was already)."""

        def change(record: OrderRecord) -> OrderRecord | None:
            if record.delivered >= seq:
                return None
            return record.model_copy(update={"delivered": seq})

        return change

    def starting_payment(self) -> OrderRecord | None:
        """The record with its payment started; None when there is nothing to write: it already
        has, or a manager stopped the order first (a cancel; a rejection, which an order needing
        approval never gets past anyway)."""
        stopped = self.decision is not None and self.decision.decision != "approved"
        if self.payment_started or stopped:
            return None
        return self.model_copy(update={"payment_started": True})

    def closing_decisions(self, reason: Reason) -> OrderRecord | None:
        """The record closed to decisions, for `reason`; None when there is nothing to write: a
        manager's decision came first (it stands), or it is closed already."""
        if self.decision is not None or self.decisions_closed is not None:
            return None
        return self.model_copy(update={"decisions_closed": reason})


def approval_wait_seconds(outcome: OrderOutcome) -> float | None:
    """How long the order waited for a manager: from entering `awaiting_approval` to the
    workflow's next step (the decision, the timeout or a cancel), by the workflow's own clock.
    None for an order that never waited."""
    steps = outcome.steps
    for index, entry in enumerate(steps):
        if entry.step == Step.AWAITING_APPROVAL:
            ended = steps[index + 1].at if index + 1 < len(steps) else outcome.finished_at
            return max((ended - entry.at).total_seconds(), 0.0)
    return None


def new_order(
    order_id: str,
    item: str,
    quantity: int,
    approval_threshold: int,
    now: datetime,
    customer: str | None = None,
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
        customer=customer,
    )


def check_same_order(existing: OrderRecord, requested: OrderRecord) -> None:
    """A repeated create with a client-chosen id must ask for the same thing, for the same
    customer: another customer's id is taken, and nothing of that order is told."""
    if existing.customer != requested.customer:
        raise Conflict(f"order id {existing.order_id!r} is taken: choose another")
    if (existing.item, existing.quantity) != (requested.item, requested.quantity):
        raise Conflict(
            f"order {existing.order_id!r} already exists for {existing.quantity} {existing.item}"
        )


def _check_unfinished(record: OrderRecord, snapshot: WorkflowSnapshot | None) -> None:
    # Dapr drops events for finished instances, so a manager action on one could never count.
    if record.outcome is not None:
        raise Conflict(f"order {record.order_id!r} has already finished (COMPLETED)")
    if snapshot is not None and snapshot.finished:
        raise Conflict(f"order {record.order_id!r} has already finished ({snapshot.status})")


def check_can_decide(
    record: OrderRecord, decision: DecisionKind, snapshot: WorkflowSnapshot | None
) -> None:
    """One decision per order: nothing once a decision is recorded (the one that won is named to
    whoever comes second, even once the order has finished), nothing on a finished order,
    approve and reject only where approval is needed, cancel only before payment.

    Whether payment has started, or the workflow ends the order on its own, is the record's to say
    (`payment_started`, `decisions_closed`: written by the workflow by compare-and-swap on this
    same record): the engine's step shows either only once the workflow's turn is saved, and may
    not answer at all. The step is a second, earlier reason to refuse, never a reason to
    accept."""
    if record.decision is not None:
        raise DecisionAlreadyMade(record.decision.describe())
    if record.decisions_closed is not None:
        raise Conflict(
            f"order {record.order_id!r} takes no decision any more: {record.decisions_closed}"
        )
    _check_unfinished(record, snapshot)
    if decision != "cancelled" and not record.approval_required:
        raise Conflict(f"order {record.order_id!r} does not need approval")
    if decision == "cancelled" and (
        record.payment_started or (snapshot is not None and snapshot.step in PAST_PAYMENT_STEPS)
    ):
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
    decision: DecisionKind | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    # Whose order it is (OrderRecord.customer): what decides who may see it; never shown.
    customer: str | None = None
    # Set while the workflow waits to try its step again (the store or sidecar failed it).
    retrying: Retrying | None = None


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
        decision=record.decision.decision if record.decision else None,
        decided_by=record.decision.by if record.decision else None,
        decided_at=record.decision.at if record.decision else None,
        retrying=snapshot.retrying if snapshot and not snapshot.finished else None,
        customer=record.customer,
    )


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    event: OrderEventKind
    detail: str


def timeline(
    record: OrderRecord, snapshot: WorkflowSnapshot | None, with_deciders: bool = True
) -> list[TimelineEntry]:
    """What happened to the order, oldest first: accepted, each step the workflow entered (the
    current one while it runs), the manager's decision, and how it finished. All of it comes
    from the record once the order has finished, so it outlives the workflow's history.
    Without `with_deciders` the decision does not name who made it (a customer's view)."""
    entries = [
        TimelineEntry(
            record.created_at,
            OrderEventKind.ACCEPTED,
            f"{record.quantity} {record.item}, total {record.total_cost}",
        )
    ]
    if record.outcome is not None:
        entries += [
            TimelineEntry(step.at, OrderEventKind.STEP, step.step) for step in record.outcome.steps
        ]
    elif snapshot is not None and snapshot.step and snapshot.updated_at:
        entries.append(TimelineEntry(snapshot.updated_at, OrderEventKind.STEP, snapshot.step))
    if record.decision is not None:
        entries.append(
            TimelineEntry(
                record.decision.at,
                OrderEventKind.DECISION,
                record.decision.describe() if with_deciders else record.decision.decision,
            )
        )
    finished: list[TimelineEntry] = []
    if record.outcome is not None:
        reason = record.outcome.reason or "processed"
        finished.append(TimelineEntry(record.outcome.finished_at, OrderEventKind.FINISHED, reason))
    elif snapshot is not None and snapshot.finished and snapshot.updated_at:
        status = snapshot.status.lower()
        finished.append(
            TimelineEntry(snapshot.updated_at, OrderEventKind.FINISHED, f"workflow_{status}")
        )
    # Finishing is last by definition (step times are kept to the millisecond, so the final
    # step may read a fraction of a millisecond after it).
    return sorted(entries, key=lambda entry: entry.at) + finished
