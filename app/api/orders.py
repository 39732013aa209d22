from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Response

from app.api.dependencies import ManagerViewerDep, OrdersDep, ViewerDep
from app.api.errors import Forbidden, Unauthorized, error_responses
from app.api.schemas import (
    ORDER_ID_PATTERN,
    ApprovalIn,
    OrderCreate,
    OrderHistoryOut,
    OrderList,
    OrderOut,
    OrderStatus,
    TimelineEntryOut,
)
from app.domain.customers import Viewer, seen_by
from app.domain.orders import Order
from app.errors import Conflict, DependencyUnavailable, InvalidInput, NotFound, SidecarUnreachable

router = APIRouter(prefix="/orders", tags=["orders"])
# The longest long poll GET /orders/{id}?wait= accepts (the request deadline allows for it).
MAX_WAIT_SECONDS = 30
OrderIdPath = Annotated[str, Path(pattern=ORDER_ID_PATTERN, examples=["order-42"])]
# The standard header (IETF httpapi-idempotency-key-header) for clients that cannot choose an
# order id: its value is the order id, so it is validated like one (a UUID fits).
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=ORDER_ID_PATTERN,
        description="Used as the order id when the body has none (1-64 of A-Z a-z 0-9 _ -): "
        "repeating the create with the same key returns the same order",
        examples=["6f1c2a7e-93b4-4f55-8d0e-2b7c1a9e4d10"],
    ),
]

# The proxy's id of one client request (nginx's $request_id), the same on every replica it
# tries: the order id of a create that names none, so that a create the proxy repeats on another
# replica finds the order the first one may have recorded instead of making a second.
RequestIdHeader = Annotated[
    str | None,
    Header(
        alias="X-Request-Id",
        description="Used as the order id only when neither order_id nor Idempotency-Key is "
        "given (the proxy sets it per client request); ignored unless it is a valid order id",
    ),
]
_REQUEST_ID = re.compile(ORDER_ID_PATTERN)

_UNKNOWN_ORDER = (NotFound, "Unknown order")
_WRONG_STATE = (Conflict, "Not possible in the order's current state")
_DECIDED = (
    Conflict,
    "Not possible in the order's current state, or another decision was recorded first "
    '(`error`: "decision_already_made", `detail`: "cancelled by alice at ...")',
)


def order_out(order: Order, viewer: Viewer) -> OrderOut:
    """The order as `viewer` may see it (a customer is not told who decided it)."""
    return OrderOut.model_validate(seen_by(order, viewer), from_attributes=True)


@router.post(
    "",
    status_code=202,
    response_model=OrderOut,
    responses={
        200: {
            "model": OrderOut,
            "description": "Same order_id (or Idempotency-Key) and body: the existing order",
        },
        **error_responses(
            (Conflict, "Same order_id (or Idempotency-Key), another body"),
            (InvalidInput, "Invalid input, or an order_id and an Idempotency-Key that differ"),
            (Unauthorized, "CUSTOMER_AUTH=jwt: no valid customer token"),
            DependencyUnavailable,
            SidecarUnreachable,
        ),
    },
)
async def create_order(
    body: OrderCreate,
    orders: OrdersDep,
    response: Response,
    viewer: ViewerDep,
    idempotency_key: IdempotencyKeyHeader = None,
    request_id: RequestIdHeader = None,
) -> OrderOut:
    """Accept an order (202, PENDING until its workflow starts); `order_id` (or the
    `Idempotency-Key` header) makes the call idempotent."""
    if body.order_id and idempotency_key and body.order_id != idempotency_key:
        raise InvalidInput(
            f"order_id {body.order_id!r} and Idempotency-Key {idempotency_key!r} differ: the key "
            "is the order id, so send one of them, or the same value in both"
        )
    if request_id is not None and not _REQUEST_ID.fullmatch(request_id):
        request_id = None
    order_id = body.order_id or idempotency_key or request_id
    order, created = await orders.create(body.item, body.quantity, order_id, viewer.customer)
    response.status_code = 202 if created else 200
    response.headers["Location"] = f"/orders/{order.order_id}"
    return order_out(order, viewer)


_CUSTOMER_TOKEN = (Unauthorized, "CUSTOMER_AUTH=jwt: no valid token")


@router.get("", response_model=OrderList, responses=error_responses(_CUSTOMER_TOKEN))
async def list_orders(
    orders: OrdersDep,
    viewer: ViewerDep,
    status: OrderStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,9}$")] = None,
) -> OrderList:
    """Orders, newest first, optionally filtered by status; follow `next_cursor` for more.
    A customer (CUSTOMER_AUTH=jwt) lists their own orders only."""
    page, next_cursor = await orders.list(status, limit, cursor, viewer)
    return OrderList(orders=[order_out(order, viewer) for order in page], next_cursor=next_cursor)


_UNKNOWN_OR_OTHERS = (NotFound, "Unknown order, or (CUSTOMER_AUTH=jwt) another customer's")


@router.get(
    "/{order_id}",
    response_model=OrderOut,
    responses=error_responses(_UNKNOWN_OR_OTHERS, _CUSTOMER_TOKEN),
)
async def get_order(
    order_id: OrderIdPath,
    orders: OrdersDep,
    viewer: ViewerDep,
    wait: Annotated[
        int,
        Query(
            ge=0,
            le=MAX_WAIT_SECONDS,
            description="Long poll: answer once the order has finished, or after this many seconds",
        ),
    ] = 0,
) -> OrderOut:
    """One order with its workflow's status, current step and result."""
    return order_out(await orders.get(order_id, wait, viewer), viewer)


_MANAGER_ACTION = error_responses(
    Unauthorized, Forbidden, _UNKNOWN_ORDER, _WRONG_STATE, DependencyUnavailable, SidecarUnreachable
)


@router.get(
    "/{order_id}/history",
    response_model=OrderHistoryOut,
    responses=error_responses(_UNKNOWN_OR_OTHERS, _CUSTOMER_TOKEN),
)
async def order_history(
    order_id: OrderIdPath, orders: OrdersDep, viewer: ViewerDep
) -> OrderHistoryOut:
    """What happened to the order, oldest first: accepted, steps, decision, finished."""
    entries = await orders.history(order_id, viewer)
    return OrderHistoryOut(
        order_id=order_id,
        timeline=[TimelineEntryOut.model_validate(e, from_attributes=True) for e in entries],
    )


@router.post(
    "/{order_id}/approve",
    status_code=202,
    response_model=OrderOut,
    responses=_MANAGER_ACTION,
)
async def approve_order(
    order_id: OrderIdPath,
    orders: OrdersDep,
    manager: ManagerViewerDep,
    body: ApprovalIn | None = None,
) -> OrderOut:
    """A manager approves (or, with `approved: false`, rejects) an order that waits for it: a
    202 means the order goes on (or ends rejected) as decided, even if the timer fires now."""
    decision = body or ApprovalIn()
    # Unnamed, the approver is the manager the JWT names (the static token names nobody).
    approver = decision.approver or manager.customer
    return order_out(await orders.approve(order_id, decision.approved, approver), manager)


@router.post(
    "/{order_id}/cancel",
    status_code=202,
    response_model=OrderOut,
    responses=error_responses(
        Unauthorized, _UNKNOWN_OR_OTHERS, _WRONG_STATE, DependencyUnavailable, SidecarUnreachable
    ),
)
async def cancel_order(order_id: OrderIdPath, orders: OrdersDep, viewer: ViewerDep) -> OrderOut:
    """A manager, or (CUSTOMER_AUTH=jwt) the order's own customer, cancels an order before its
    payment starts: a 202 means it ends cancelled, nothing paid, its reservation released."""
    if not viewer.manager and viewer.customer is None:
        # Auth off and no manager token: nobody to cancel as.
        raise Unauthorized(
            "cancelling needs 'Authorization: Bearer <MANAGER_TOKEN>' (or, with "
            "CUSTOMER_AUTH=jwt, the customer's own token)"
        )
    return order_out(await orders.cancel(order_id, viewer.customer, viewer), viewer)
