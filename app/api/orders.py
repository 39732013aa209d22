from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from app.dependencies import ManagerDep, OrdersDep
from app.schemas import (
    ORDER_ID_PATTERN,
    ApprovalIn,
    ErrorOut,
    OrderCreate,
    OrderList,
    OrderOut,
    OrderStatus,
)
from app.services.orders import Order

router = APIRouter(prefix="/orders", tags=["orders"])
OrderIdPath = Annotated[str, Path(pattern=ORDER_ID_PATTERN, examples=["order-42"])]

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "Unknown order"}
}
_MANAGER: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "Missing or wrong manager token"}
}
_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorOut, "description": "Not possible in the order's current state"}
}
_UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorOut, "description": "Sidecar unreachable; nothing was changed"}
}


def _out(order: Order) -> OrderOut:
    return OrderOut.model_validate(order, from_attributes=True)


@router.post(
    "",
    status_code=202,
    response_model=OrderOut,
    responses={200: {"model": OrderOut, "description": "Same order_id and body: the existing order"},
               **_CONFLICT, 422: {"model": ErrorOut}, **_UNAVAILABLE},
)  # fmt: skip
async def create_order(body: OrderCreate, orders: OrdersDep, response: Response) -> OrderOut:
    """Accept an order and start its workflow; `order_id` makes the call idempotent."""
    order, created = await orders.create(body.item, body.quantity, body.order_id)
    response.status_code = 202 if created else 200
    response.headers["Location"] = f"/orders/{order.order_id}"
    return _out(order)


@router.get("", response_model=OrderList)
async def list_orders(
    orders: OrdersDep,
    status: OrderStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,9}$")] = None,
) -> OrderList:
    """Orders, newest first, optionally filtered by status; follow `next_cursor` for more."""
    page, next_cursor = await orders.list(status, limit, cursor)
    return OrderList(orders=[_out(order) for order in page], next_cursor=next_cursor)


@router.get("/{order_id}", response_model=OrderOut, responses=_NOT_FOUND)
async def get_order(
    order_id: OrderIdPath,
    orders: OrdersDep,
    wait: Annotated[
        int,
        Query(
            ge=0,
            le=30,
            description="Long poll: answer once the order has finished, or after this many seconds",
        ),
    ] = 0,
) -> OrderOut:
    """One order with its workflow's status, current step and result."""
    return _out(await orders.get(order_id, wait))


@router.post(
    "/{order_id}/approve",
    status_code=202,
    response_model=OrderOut,
    dependencies=[ManagerDep],
    responses={**_MANAGER, **_NOT_FOUND, **_CONFLICT, **_UNAVAILABLE},
)
async def approve_order(
    order_id: OrderIdPath, orders: OrdersDep, body: ApprovalIn | None = None
) -> OrderOut:
    """A manager approves (or, with `approved: false`, rejects) an order that needs it."""
    decision = body or ApprovalIn()
    return _out(await orders.approve(order_id, decision.approved, decision.approver))


@router.post(
    "/{order_id}/cancel",
    status_code=202,
    response_model=OrderOut,
    dependencies=[ManagerDep],
    responses={**_MANAGER, **_NOT_FOUND, **_CONFLICT, **_UNAVAILABLE},
)
async def cancel_order(order_id: OrderIdPath, orders: OrdersDep) -> OrderOut:
    """A manager cancels an order before payment; its reservation is released."""
    return _out(await orders.cancel(order_id))
