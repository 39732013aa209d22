"""The order-processing workflow: notify, reserve, (approve), pay, commit, notify.

Deterministic by construction: no clock, randomness or I/O here; every side effect is an
activity and every wait is a durable timer or an external event, so a replay after a crash takes
exactly the same path. A cancel is honoured at each step boundary before payment, during the
approval wait, and at the payment itself (the activity that starts it refuses if a cancel is
recorded on the order); once the payment has started the order runs to its end.
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import datetime, timedelta
from typing import Any, Protocol

from dapr.ext.workflow import RetryPolicy, TaskFailedError, when_any

from app.errors import DependencyUnavailable
from app.workflows.contracts import (
    APPROVAL_EVENT,
    CANCEL_EVENT,
    DECISION_OF,
    ActionsRequest,
    ActivityName,
    ActivityRequest,
    Completion,
    DecisionsClosing,
    InfrastructureRetry,
    ManagerAction,
    OrderInput,
    OrderOutcome,
    OrderResult,
    Reason,
    Retrying,
    Step,
    StepEntry,
    StepStatus,
)


class Task(Protocol):
    @property
    def is_complete(self) -> bool: ...

    def get_result(self) -> Any: ...


class WorkflowContext(Protocol):
    """The part of DaprWorkflowContext this workflow uses (a fake implements it in unit tests)."""

    @property
    def instance_id(self) -> str: ...

    @property
    def current_utc_datetime(self) -> datetime: ...

    def set_custom_status(self, custom_status: str) -> None: ...

    def call_activity(
        self, activity: str, *, input: Any = None, retry_policy: RetryPolicy | None = None
    ) -> Any: ...

    def wait_for_external_event(self, name: str) -> Any: ...

    def create_timer(self, fire_at: timedelta) -> Any: ...

    def is_patched(self, patch_name: str) -> bool: ...


# Transient state-store or sidecar errors get retried quietly by the SDK; after ~25 s the failure
# reaches the workflow (and, behind RETRY_INFRASTRUCTURE, the workflow's own longer retry).
ACTIVITY_RETRY = RetryPolicy(
    first_retry_interval=timedelta(seconds=1),
    max_number_of_attempts=6,
    backoff_coefficient=2.0,
    max_retry_interval=timedelta(seconds=10),
)

Steps = Generator[Any, Any, OrderResult]

# A manager's recorded decision, as the approval wait's result: None goes on to payment.
DECIDED: dict[str, Reason | None] = {
    "approved": None,
    "rejected": "rejected",
    "cancelled": "cancelled",
}

# Workflow changes that would make an order started before them replay differently go behind a
# patch (the engine records in each instance's history which patches it ran with).
# FINISH_WITH_NOTICE: the completion notice is sent by the activity that records the outcome
# (FINISH_ORDER) instead of a notify activity of its own: one engine round trip less per order.
FINISH_WITH_NOTICE = "finish-with-notice"
# PAY_UNLESS_CANCELLED: payment is the point of no return, and it is one compare-and-swap on the
# order record (PAY_UNLESS_CANCELLED the activity): it charges only if no cancel is recorded, and
# the service records a cancel only if the payment has not started. Without it a cancel recorded
# after the workflow's last check before payment was accepted (202) and the order was paid.
PAY_UNLESS_CANCELLED = "pay-unless-cancelled"
# CLOSE_DECISIONS_BY_RECORD: when the workflow ends the order on its own (the approval timer
# won, too little stock), it does so by one compare-and-swap on the order record too
# (CLOSE_DECISIONS): a decision recorded before is the outcome (its event may not have arrived),
# otherwise the record is closed and the service refuses every decision. Without it an approval
# accepted (202) as the timer fired ended the order approval_timeout, and a cancel accepted as
# the stock ran out ended it insufficient_inventory.
CLOSE_DECISIONS_BY_RECORD = "close-decisions-by-record"
# RETRY_INFRASTRUCTURE: a step whose activity failed because the state store or the sidecar did
# not answer (DependencyUnavailable, once ACTIVITY_RETRY is used up) is tried again after a
# durable timer, with backoff, for the order's retry budget (hours), the order showing its step
# as retrying with the last error meanwhile; and an order that ends because a step failed for
# good is compensated and its outcome recorded first (reason step_failed). Without it ~25 s of
# store outage in any step but payment and stock commit ended the workflow FAILED with its stock
# held and no outcome recorded.
RETRY_INFRASTRUCTURE = "retry-infrastructure-errors"
# MANAGER_ACTION_LOG: a manager's actions are a numbered log on the order record, and a manager's
# event makes the workflow read what is new in it (READ_ACTIONS, after the last action it read)
# instead of asking for the one decision (CHECK_DECISION). The events stay signals, the log is
# what counts, and it has room for actions that come more than once (pause, resume). The log is
# read only when an event has arrived: a read at every step boundary would cost each order an
# engine turn per boundary, for actions that are rare.
MANAGER_ACTION_LOG = "manager-action-log"

# The error kinds a retry can cure: the activity's exception class, as the failure reports it.
INFRASTRUCTURE_ERRORS: dict[str, str] = {
    DependencyUnavailable.__name__: DependencyUnavailable.error
}
# The last error as the order shows it: enough to tell a refused write from a lost connection.
_ERROR_SHOWN_CHARS = 300


class _ActionLog:
    """The order's manager actions as far as the workflow has read them (MANAGER_ACTION_LOG)."""

    def __init__(self) -> None:
        self.read = 0  # the number of the last action read
        self.decision: str | None = None  # the first decision read: it stands

    def take(self, entries: Any) -> None:
        for entry in entries:
            action = ManagerAction.model_validate(entry)
            if action.seq <= self.read:
                continue  # read before (a repeated read after a retry)
            self.read = action.seq
            if self.decision is None and action.kind in DECISION_OF:
                self.decision = DECISION_OF[action.kind]


class _Progress:
    """What the order has done that a failure would have to undo or keep (RETRY_INFRASTRUCTURE)."""

    def __init__(self) -> None:
        # The payment was taken (and not refunded); the stock was sold; the outcome it was
        # ending with when a step failed for good.
        self.charged = False
        self.committed = False
        self.ending: Reason | None = None


def retry_delay(policy: InfrastructureRetry, attempt: int) -> timedelta:
    """The wait before retry round `attempt` (1, 2, ...): doubling, capped."""
    seconds = policy.first_interval_seconds * 2 ** min(attempt - 1, 32)
    return timedelta(seconds=min(seconds, policy.max_interval_seconds))


def order_processing(ctx: WorkflowContext, order: OrderInput) -> Steps:
    # The SDK builds `order` from the stored JSON input (it reads the annotation) and
    # serialises the pydantic models given to activities and returned here: no dump/validate.
    request = ActivityRequest(
        order_id=order.order_id, item=order.item, quantity=order.quantity, amount=order.total_cost
    )
    # Waiting from the start means a cancel raised at any moment is recorded in history and seen
    # at the next step boundary.
    cancel = ctx.wait_for_external_event(CANCEL_EVENT)
    # The steps entered, with the workflow's own clock, kept on the order at the end (timeline).
    entered: list[StepEntry] = []

    current: list[Step] = [Step.NOTIFYING]
    progress = _Progress()

    def enter(step: Step) -> None:
        current[0] = step
        ctx.set_custom_status(step)
        entered.append(StepEntry(step=step, at=ctx.current_utc_datetime))

    # Asked once, first: an order started before a patch takes the old path on every replay.
    finish_with_notice = ctx.is_patched(FINISH_WITH_NOTICE)
    pay_unless_cancelled = ctx.is_patched(PAY_UNLESS_CANCELLED)
    close_decisions_by_record = ctx.is_patched(CLOSE_DECISIONS_BY_RECORD)
    retry_infrastructure = ctx.is_patched(RETRY_INFRASTRUCTURE)
    manager_action_log = ctx.is_patched(MANAGER_ACTION_LOG)
    actions = _ActionLog()
    retry_policy = order.infrastructure_retry or InfrastructureRetry()

    def call(activity: ActivityName, payload: Any) -> Generator[Any, Any, Any]:
        """The activity's result. Behind RETRY_INFRASTRUCTURE: while it fails because the store
        or sidecar is away, wait (a durable timer) and call it again, showing the step as
        retrying, until the order's retry budget is spent."""
        task = ctx.call_activity(activity, input=payload, retry_policy=ACTIVITY_RETRY)
        if not retry_infrastructure:
            return (yield task)
        since: datetime | None = None
        attempts = 0
        while True:
            try:
                return (yield task)
            except TaskFailedError as failure:
                reason = INFRASTRUCTURE_ERRORS.get(failure.details.error_type or "")
                now = ctx.current_utc_datetime
                since = since or now
                budget = timedelta(seconds=retry_policy.budget_seconds)
                if reason is None or now - since >= budget:
                    raise
                attempts += 1
                retrying = Retrying(
                    reason=reason,
                    error=(failure.details.message or "")[:_ERROR_SHOWN_CHARS],
                    attempts=attempts,
                    since=since,
                )
                step = current[0]
                ctx.set_custom_status(StepStatus(step=step, retrying=retrying).encode())
                yield ctx.create_timer(retry_delay(retry_policy, attempts))
                ctx.set_custom_status(step)
                # Each round is one attempt: the backoff is the timer's (and the history grows
                # by four events a round, not by the SDK policy's dozen).
                task = ctx.call_activity(activity, input=payload)

    def run(
        step: Step, activity: ActivityName, payload: ActivityRequest | None = None
    ) -> Generator[Any, Any, Any]:
        enter(step)
        return (yield from call(activity, payload or request))

    def recorded_decision() -> Generator[Any, Any, str | None]:
        # An event is only a signal: what counts is the decision the service recorded on the
        # order (one per order, first wins). A forged or stray event finds none, or another.
        if not manager_action_log:
            decision = yield from call(ActivityName.CHECK_DECISION, request)
            return None if decision is None else str(decision)
        unread = ActionsRequest(order_id=order.order_id, after=actions.read)
        actions.take((yield from call(ActivityName.READ_ACTIONS, unread)))
        return actions.decision

    def cancelled() -> Generator[Any, Any, bool]:
        nonlocal cancel
        if not cancel.is_complete:
            return False
        if (yield from recorded_decision()) == "cancelled":
            return True
        cancel = ctx.wait_for_external_event(CANCEL_EVENT)  # a stray cancel: keep listening
        return False

    def finish(reason: Reason | None, notice: str | None = None) -> Steps:
        progress.ending = reason
        # The outcome goes onto the order record before the workflow ends: the engine purges
        # finished histories (retention policy), the order's answer must not change when it does.
        enter(Step.DONE)
        outcome = OrderOutcome(
            order_id=order.order_id,
            processed=reason is None,
            reason=reason,
            finished_at=ctx.current_utc_datetime,
            steps=entered,
        )
        if finish_with_notice:
            yield from call(ActivityName.FINISH_ORDER, Completion(outcome=outcome, notice=notice))
        else:
            yield from call(ActivityName.RECORD_OUTCOME, outcome)
        return OrderResult(processed=reason is None, reason=reason)

    def closed_to_decisions(reason: Reason) -> Generator[Any, Any, Reason | None]:
        """`reason`, once the order is closed to decisions; or, when a manager's decision was
        recorded first, what that decision says (None: approved, go on)."""
        if not close_decisions_by_record:
            return reason
        decision = yield from call(
            ActivityName.CLOSE_DECISIONS, DecisionsClosing(order_id=order.order_id, reason=reason)
        )
        return reason if decision is None else DECIDED[decision]

    def give_up(reason: Reason) -> Steps:
        progress.ending = reason
        yield from run(Step.RELEASING, ActivityName.RELEASE_INVENTORY)
        return (yield from finish(reason))

    def compensate() -> Steps:
        """After a step failed for good: the order's payment refunded if it was taken and its
        stock not sold, its hold released (both idempotent: no-ops when nothing is owed), and
        its outcome recorded: the outcome it was ending with, or step_failed. A step failing
        here too ends the workflow FAILED (the store has been away for the whole budget)."""
        if progress.committed:
            return (yield from finish(None))
        if progress.charged:
            yield from run(Step.REFUNDING, ActivityName.REFUND_PAYMENT)
        return (yield from give_up(progress.ending or "step_failed"))

    def await_approval() -> Generator[Any, Any, Reason | None]:
        """None when approved; otherwise why not."""
        nonlocal cancel
        enter(Step.AWAITING_APPROVAL)
        approval = ctx.wait_for_external_event(APPROVAL_EVENT)
        timeout = ctx.create_timer(timedelta(seconds=order.approval_timeout_seconds))
        while True:
            winner = yield when_any([approval, timeout, cancel])
            if winner is timeout:
                return (yield from closed_to_decisions("approval_timeout"))
            decision = yield from recorded_decision()
            if decision in DECIDED:
                return DECIDED[decision]
            # No decision recorded: a stray or forged event, ignored (the activity logged it).
            if winner is approval:
                approval = ctx.wait_for_external_event(APPROVAL_EVENT)
            else:
                cancel = ctx.wait_for_external_event(CANCEL_EVENT)

    def steps() -> Steps:
        yield from run(
            Step.NOTIFYING,
            ActivityName.NOTIFY,
            request.model_copy(
                update={"message": f"received order of {order.quantity} {order.item}"}
            ),
        )
        if (yield from cancelled()):
            return (yield from finish("cancelled"))

        reserved = yield from run(Step.RESERVING, ActivityName.RESERVE_INVENTORY)
        if not reserved:
            # Nothing is held. A cancel or rejection recorded first is the outcome; an approval
            # cannot make up for the stock.
            why = yield from closed_to_decisions("insufficient_inventory")
            return (yield from finish(why or "insufficient_inventory"))
        if (yield from cancelled()):
            return (yield from give_up("cancelled"))

        if order.approval_required:
            yield from run(Step.REQUESTING_APPROVAL, ActivityName.REQUEST_APPROVAL)
            refused = yield from await_approval()
            if refused is not None:
                return (yield from give_up(refused))

        payment = (
            ActivityName.PAY_UNLESS_CANCELLED
            if pay_unless_cancelled
            else ActivityName.PROCESS_PAYMENT
        )
        try:
            paid = yield from run(Step.PROCESSING_PAYMENT, payment)
        except TaskFailedError:
            return (yield from give_up("payment_failed"))
        if pay_unless_cancelled and not paid:
            # A cancel was recorded before the payment could start: it is the outcome. (Its event
            # may not have arrived yet; the record is what counts.)
            return (yield from give_up("cancelled"))
        progress.charged = True

        try:
            yield from run(Step.UPDATING_INVENTORY, ActivityName.COMMIT_INVENTORY)
        except TaskFailedError:
            progress.ending = "inventory_update_failed"
            yield from run(Step.REFUNDING, ActivityName.REFUND_PAYMENT)
            progress.charged = False
            return (yield from give_up("inventory_update_failed"))

        progress.committed = True
        completed = f"order of {order.quantity} {order.item} completed"
        if finish_with_notice:
            return (yield from finish(None, notice=completed))
        yield from run(
            Step.NOTIFYING_COMPLETION,
            ActivityName.NOTIFY,
            request.model_copy(update={"message": completed}),
        )
        return (yield from finish(None))

    if not retry_infrastructure:
        return (yield from steps())
    try:
        return (yield from steps())
    except TaskFailedError:
        # A step failed for good. Undo what is still owed, then record how the order ended, so
        # the order neither holds stock nor answers PENDING once the engine purges its history.
        return (yield from compensate())
