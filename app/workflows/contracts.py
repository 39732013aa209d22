"""Names and payloads shared by the workflow, its activities and the services that drive it.

This is the one module of app.workflows that the services may import (see the import-linter
contracts in pyproject.toml): they start workflows and raise events by these names, and read the
engine's state as a WorkflowSnapshot, without ever importing the workflow code itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Final, Literal, Protocol

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    ValidationError,
    model_serializer,
    model_validator,
)


def as_utc(moment: datetime) -> datetime:
    # The SDK hands out naive datetimes that are in UTC: the workflow's clock
    # (ctx.current_utc_datetime) and the workflow state's timestamps alike.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# A moment in UTC, as every model here keeps it, whatever the SDK handed over.
UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]

WORKFLOW_NAME: Final = "order_processing"
APPROVAL_EVENT: Final = "manager_approval"
CANCEL_EVENT: Final = "cancel_order"


class Step(StrEnum):
    """Values of the workflow's custom status, shown to clients as the order's `step`."""

    NOTIFYING = "notifying"
    RESERVING = "reserving_inventory"
    REQUESTING_APPROVAL = "requesting_approval"
    AWAITING_APPROVAL = "awaiting_approval"
    PROCESSING_PAYMENT = "processing_payment"
    UPDATING_INVENTORY = "updating_inventory"
    REFUNDING = "refunding_payment"
    RELEASING = "releasing_inventory"
    NOTIFYING_COMPLETION = "notifying_completion"
    DONE = "done"


class ActivityName(StrEnum):
    """The order activities. Each value is also the name of the OrderActivities method that
    implements it, and app.workflows.runtime registers every member in one loop: adding an
    activity is a member here, a method there, and the call in the workflow."""

    NOTIFY = "notify"
    RESERVE_INVENTORY = "reserve_inventory"
    REQUEST_APPROVAL = "request_approval"
    # Orders started before the PAY_UNLESS_CANCELLED patch pay with this one.
    PROCESS_PAYMENT = "process_payment"
    PAY_UNLESS_CANCELLED = "pay_unless_cancelled"
    COMMIT_INVENTORY = "commit_inventory"
    RELEASE_INVENTORY = "release_inventory"
    REFUND_PAYMENT = "refund_payment"
    # Orders started before the FINISH_WITH_NOTICE patch record their outcome with this one.
    RECORD_OUTCOME = "record_outcome"
    FINISH_ORDER = "finish_order"
    # Orders started before the MANAGER_ACTION_LOG patch ask for the decision with this one.
    CHECK_DECISION = "check_decision"
    CLOSE_DECISIONS = "close_decisions"
    READ_ACTIONS = "read_actions"


class OrderEventKind(StrEnum):
    """What happened to an order, as told to whoever shows orders live (app.live's hub). A
    closed set: each member has its publisher."""

    ACCEPTED = "accepted"  # the service accepted the order (OrderService.create)
    DECISION = "decision"  # the service recorded a manager's decision (approve, reject, cancel)
    STEP = "step"  # the workflow entered a step (the step's activity, as it starts)
    FINISHED = "finished"  # the order's outcome is recorded (the activity that records it)


@dataclass(frozen=True)
class OrderEvent:
    """Something happened to an order: a signal to read the order again, never its state (a
    reader reads the order for that). Sent at least once: an activity run twice sends twice."""

    order_id: str
    kind: OrderEventKind
    at: datetime
    # The step entered (STEP events only).
    step: Step | None = None

    def __post_init__(self) -> None:
        OrderEventKind(self.kind)  # a kind outside the set fails here, not in a reader
        if (self.kind == OrderEventKind.STEP) != (self.step is not None):
            raise ValueError(f"only a step event names a step, and it does: {self!r}")


class OrderEventPublisher(Protocol):
    async def publish(self, event: OrderEvent) -> None:
        """Tell whoever follows the order, without waiting on them. Called by the services on
        the app's event loop and by the activities on the SDK's own (in another thread)."""
        ...


class DiscardingPublisher:
    """The publisher where nobody follows orders live (a service or activities built without
    the hub: unit tests, the benchmark): nothing is kept."""

    async def publish(self, event: OrderEvent) -> None:
        return None


# From here on the payment may have been taken: a cancel can no longer stop the order.
PAST_PAYMENT_STEPS: Final = frozenset(
    {
        Step.PROCESSING_PAYMENT,
        Step.UPDATING_INVENTORY,
        Step.REFUNDING,
        Step.NOTIFYING_COMPLETION,
        Step.DONE,
    }
)

Reason = Literal[
    "insufficient_inventory",
    "rejected",
    "approval_timeout",
    "payment_failed",
    "inventory_update_failed",
    "cancelled",
    # A step failed for good (an error that is not the store's or sidecar's absence, or that
    # absence outlasting the retry budget): the order was compensated and ended.
    "step_failed",
]


class InfrastructureRetry(BaseModel):
    """How the workflow retries a step whose activity failed because the state store or the
    sidecar did not answer (DependencyUnavailable): with durable timers, from `first_interval`
    doubling to `max_interval`, for `budget` in all, before it gives the step up. Part of the
    workflow's input, so every replay of an order sees the values it was accepted with."""

    budget_seconds: float = Field(default=24 * 3600.0, gt=0)
    first_interval_seconds: float = Field(default=10.0, gt=0)
    max_interval_seconds: float = Field(default=300.0, gt=0)


class Retrying(BaseModel):
    """Why the order's current step is being retried: shown on the order (`retrying`) while the
    workflow waits to try the step again."""

    # The error's stable name (app.errors: "unavailable" for the store's or sidecar's absence).
    reason: str
    # The last attempt's error, as the activity raised it (cut to a few hundred characters).
    error: str
    # Retry rounds so far (each after the activity's own quick retries were used up).
    attempts: int
    # When the step first failed, by the workflow's clock.
    since: UtcDatetime


class StepStatus(BaseModel):
    """The workflow's custom status: the step alone while all goes well (stored as the bare
    string, as before), the step and why it is retrying (stored as JSON) while it waits."""

    step: str
    retrying: Retrying | None = None

    def encode(self) -> str:
        if self.retrying is None:
            return self.step
        return self.model_dump_json()

    @classmethod
    def decode(cls, raw: str) -> StepStatus:
        if raw.startswith("{"):
            try:
                return cls.model_validate_json(raw)
            except ValidationError:
                pass  # not ours: shown as it is
        return cls(step=raw)


class OrderInput(BaseModel):
    """The workflow's input, fixed when the order is accepted (so replays see the same values)."""

    order_id: str
    item: str
    quantity: int
    total_cost: int
    approval_required: bool
    approval_timeout_seconds: float
    # How long a step the state store or sidecar keeps failing is retried (None: the workflow's
    # defaults; orders accepted before the setting existed have none).
    infrastructure_retry: InfrastructureRetry | None = None


class OrderResult(BaseModel):
    processed: bool
    reason: Reason | None = None


class StepEntry(BaseModel):
    """A step the workflow entered and when. Stored as `[step, epoch milliseconds]`: a finished
    order keeps a dozen of these on its record for good, so their size counts."""

    step: Step
    at: UtcDatetime

    @model_validator(mode="before")
    @classmethod
    def _from_pair(cls, data: Any) -> Any:
        if isinstance(data, list | tuple) and len(data) == 2:
            return {"step": data[0], "at": datetime.fromtimestamp(data[1] / 1000, UTC)}
        return data

    @model_serializer
    def _as_pair(self) -> list[str | int]:
        return [self.step.value, round(self.at.timestamp() * 1000)]


class OrderOutcome(BaseModel):
    """How the order ended, recorded on the order by the workflow's last activity so that it
    outlives the workflow's own history (which the engine purges after the retention period)."""

    order_id: str
    processed: bool
    reason: Reason | None = None
    finished_at: UtcDatetime
    # The steps the workflow entered, in order (the order's timeline; at most a dozen).
    steps: list[StepEntry] = Field(default_factory=list)


class Completion(BaseModel):
    """What the workflow's last activity gets: the outcome to record and, when the order went
    through, the customer's completion notice (sent by the same activity: one engine round trip,
    where a separate notify activity costs one more)."""

    outcome: OrderOutcome
    notice: str | None = None


class DecisionsClosing(BaseModel):
    """What CLOSE_DECISIONS gets: the order the workflow ends on its own, and why."""

    order_id: str
    reason: Reason


class ApprovalDecision(BaseModel):
    """The `manager_approval` event payload, shaped as in the Dapr quickstart."""

    approval: bool
    approver: str | None = None


# What a manager may do to an order. Each is an entry in the order's action log (OrderRecord.actions)
# and a signal to its workflow (ACTION_EVENTS); the workflow reads the log itself (READ_ACTIONS).
# Kinds that may come more than once (pause, resume, rerun) join this set with their event and
# the workflow's branch for them.
ActionKind = Literal["approve", "reject", "cancel"]
# The decision an action is, as the API shows it (`decision`): one per order, the log's first.
DecisionKind = Literal["approved", "rejected", "cancelled"]
DECISION_OF: Final[dict[ActionKind, DecisionKind]] = {
    "approve": "approved",
    "reject": "rejected",
    "cancel": "cancelled",
}
# The event that tells the workflow an action was logged. Approve and reject share the
# quickstart's `manager_approval`, so a workflow started before the log knew them still wakes.
ACTION_EVENTS: Final[dict[ActionKind, str]] = {
    "approve": APPROVAL_EVENT,
    "reject": APPROVAL_EVENT,
    "cancel": CANCEL_EVENT,
}


class ManagerAction(BaseModel):
    """One entry of an order's action log: what a manager did, as the `seq`-th action on the
    order (numbered from 1, in the order they were accepted), who and when."""

    seq: int = Field(ge=1)
    kind: ActionKind
    by: str
    at: UtcDatetime

    @property
    def decision(self) -> DecisionKind:
        return DECISION_OF[self.kind]

    def signal(self) -> tuple[str, dict[str, Any]]:
        """The event to raise on the workflow for this action, and its payload. The payload is
        informative only (the workflow reads the log), shaped as the quickstart's approval."""
        payload: dict[str, Any] = {"seq": self.seq}
        if self.kind in ("approve", "reject"):
            approval = ApprovalDecision(approval=self.kind == "approve", approver=self.by)
            payload |= approval.model_dump()
        return ACTION_EVENTS[self.kind], payload


class ActionsRequest(BaseModel):
    """What READ_ACTIONS gets: the order, and the last action the workflow has read."""

    order_id: str
    after: int = Field(default=0, ge=0)


class ActivityRequest(BaseModel):
    """What every order activity receives: enough to act idempotently on one order."""

    order_id: str
    item: str = ""
    quantity: int = 0
    amount: int = 0
    message: str = ""


FINISHED: Final = frozenset({"COMPLETED", "FAILED", "TERMINATED"})


@dataclass(frozen=True)
class WorkflowSnapshot:
    """One workflow instance as the engine reports it, in the service's terms."""

    status: str
    step: str | None
    output: dict[str, Any] | None
    updated_at: datetime | None
    # Set while the workflow waits to retry its step after the store or sidecar failed it.
    retrying: Retrying | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED
