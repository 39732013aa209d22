"""HTTP request and response models (the public contract shown on /docs)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool

from app.domain.customers import NAME_MAX_LENGTH, name_problem
from app.services.changes import RetryAdvice

OrderId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
ItemName = Annotated[str, Field(min_length=1, max_length=64)]


def _whole_number(value: object) -> object:
    # JSON has one number type: 3.0 is the integer 3 (as JSON Schema says), but "3", true and
    # 3.5 are not quantities. Pydantic's lax mode would take the string and strict mode the float.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a whole number")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("must be a whole number")
        return int(value)
    return value


def _person_name(value: str) -> str:
    # Printable and short (app.domain.customers): a name goes into log lines and the timeline.
    problem = name_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


Quantity = Annotated[int, BeforeValidator(_whole_number), Field(ge=1, le=1_000_000)]
ORDER_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
OrderStatus = Literal["PENDING", "RUNNING", "COMPLETED", "FAILED", "TERMINATED", "SUSPENDED"]


class OrderCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"item": "cars", "quantity": 4, "order_id": "order-42"}]},
    )

    item: ItemName
    quantity: Quantity
    order_id: OrderId | None = None


class OrderResultOut(BaseModel):
    processed: bool
    reason: str | None


class RetryingOut(BaseModel):
    """Why the order's step is being retried: the state store or the sidecar failed it."""

    reason: str = Field(description="The error's name: `unavailable` (store or sidecar away)")
    error: str = Field(description="The last attempt's error")
    attempts: int = Field(description="Retry rounds so far")
    since: datetime = Field(description="When the step first failed")


class OrderOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "order_id": "order-42",
                    "item": "cars",
                    "quantity": 4,
                    "total_cost": 60000,
                    "approval_required": True,
                    "status": "RUNNING",
                    "step": "awaiting_approval",
                    "result": None,
                    "created_at": "2026-11-27T10:00:00Z",
                    "updated_at": "2026-11-27T10:00:01Z",
                    "decision": None,
                    "decided_by": None,
                    "decided_at": None,
                }
            ]
        }
    )

    order_id: str
    item: str
    quantity: int
    total_cost: int
    approval_required: bool
    status: OrderStatus
    step: str | None
    result: OrderResultOut | None
    created_at: datetime
    updated_at: datetime
    decision: Literal["approved", "rejected", "cancelled"] | None = Field(
        description="The manager's decision: one per order, the first recorded wins"
    )
    decided_by: str | None = Field(description="The approver named, or the token's role")
    decided_at: datetime | None
    retrying: RetryingOut | None = Field(
        default=None,
        description="Set while the order waits to try its step again after the state store or "
        "sidecar failed it (it keeps trying for INFRASTRUCTURE_RETRY_HOURS); null otherwise",
    )


class TimelineEntryOut(BaseModel):
    at: datetime
    # OrderEventKind's values, spelled out: the published contract does not carry its docstring
    # (tests/unit/api/test_schemas.py keeps the two equal).
    event: Literal["accepted", "step", "decision", "finished"]
    detail: str


class OrderHistoryOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "order_id": "order-42",
                    "timeline": [
                        {
                            "at": "2026-11-27T10:00:00Z",
                            "event": "accepted",
                            "detail": "4 cars, total 60000",
                        },
                        {"at": "2026-11-27T10:00:00Z", "event": "step", "detail": "notifying"},
                        {
                            "at": "2026-11-27T10:00:02Z",
                            "event": "step",
                            "detail": "awaiting_approval",
                        },
                        {
                            "at": "2026-11-27T10:01:00Z",
                            "event": "decision",
                            "detail": "approved by alice at 2026-11-27T10:01:00+00:00",
                        },
                        {"at": "2026-11-27T10:01:01Z", "event": "finished", "detail": "processed"},
                    ],
                }
            ]
        }
    )

    order_id: str
    timeline: list[TimelineEntryOut]


class OrderList(BaseModel):
    orders: list[OrderOut]
    next_cursor: str | None


class ApprovalIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"approved": True, "approver": "alice"}]},
    )

    approved: StrictBool = True
    approver: (
        Annotated[
            str, Field(min_length=1, max_length=NAME_MAX_LENGTH), AfterValidator(_person_name)
        ]
        | None
    ) = None


class RestockIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"item": "computers", "quantity": 50}]}
    )

    item: ItemName
    quantity: Quantity


class InventoryItemOut(BaseModel):
    item: str
    quantity: int = Field(description="Units still available to order")
    reserved: int = Field(description="Units held by orders in flight")
    per_item_cost: int


class InventoryOut(BaseModel):
    items: list[InventoryItemOut]


class ErrorOut(BaseModel):
    error: str
    detail: str


class UnavailableOut(ErrorOut):
    """A 503: the error shape, plus what a client needs to repeat the request safely."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": "unavailable",
                    "detail": "the Dapr sidecar or its state store did not answer within 2s. "
                    "Order 3f2a... may have been accepted: repeat the create with "
                    '"order_id": "3f2a..." (or the header Idempotency-Key: 3f2a...) to get it, '
                    "never a second one",
                    "may_have_happened": True,
                    "retry": "same_order_id",
                    "order_id": "3f2a...",
                }
            ]
        }
    )

    may_have_happened: bool = Field(
        description="false: nothing was changed (nothing had been written). true: the change "
        "may have been made; `retry` says how to repeat it safely"
    )
    retry: RetryAdvice = Field(
        description='"any": repeat it as it was; "same_order_id": repeat the create with '
        "`order_id` (idempotent: the same order comes back, never a second one); "
        '"same_request": repeat the decision (409 decision_already_made names it if it was '
        'recorded); "read_first": read the stock before repeating a restock (it adds again)'
    )
    order_id: str | None = Field(
        description="The order the change was about, when known (a create without an "
        "order_id: the id it was given)"
    )


class HealthOut(BaseModel):
    status: str
    detail: str | None = None


class ViolationOut(BaseModel):
    invariant: Literal["payment", "stock_hold", "stock_balance", "decision", "unfinished"]
    order_id: str | None = Field(description="The order concerned; null for an item's stock count")
    detail: str


class AuditOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "ok": False,
                    "checked": {"orders": 42, "finished": 40, "in_flight": 2, "holds": 2},
                    "violations": [
                        {
                            "invariant": "payment",
                            "order_id": "order-42",
                            "detail": "processed, but the ledger has no entry",
                        }
                    ],
                }
            ]
        }
    )

    ok: bool = Field(description="No invariant is broken")
    checked: dict[str, int] = Field(description="What was read: orders, payments, items, holds")
    violations: list[ViolationOut]
