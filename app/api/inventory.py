from __future__ import annotations

from fastapi import APIRouter

from app.api.dependencies import InventoryDep, ManagerDep
from app.api.errors import Forbidden, Unauthorized, error_responses
from app.api.schemas import InventoryItemOut, InventoryOut, RestockIn
from app.domain.inventory import StockLevel
from app.errors import InvalidInput, NotFound

# /restock is declared before /{item} so "restock" is never taken for an item name.
router = APIRouter(prefix="/inventory", tags=["inventory"])

_UNKNOWN_ITEM = (NotFound, "Unknown item")


def _out(level: StockLevel) -> InventoryItemOut:
    return InventoryItemOut(
        item=level.item,
        quantity=level.quantity,
        reserved=level.reserved,
        per_item_cost=level.per_item_cost,
    )


@router.get("", response_model=InventoryOut)
async def list_inventory(inventory: InventoryDep) -> InventoryOut:
    """Every item: units available, units held by orders in flight, and price."""
    return InventoryOut(items=[_out(level) for level in await inventory.levels()])


@router.post(
    "/restock",
    response_model=InventoryOut,
    dependencies=[ManagerDep],
    responses=error_responses(Unauthorized, Forbidden, _UNKNOWN_ITEM, InvalidInput),
)
async def restock(inventory: InventoryDep, body: RestockIn | None = None) -> InventoryOut:
    """No body: every item back to the quickstart's stock. With a body: add to one item."""
    if body is None:
        await inventory.reset()
    else:
        await inventory.restock(body.item, body.quantity)
    return InventoryOut(items=[_out(level) for level in await inventory.levels()])


@router.get("/{item}", response_model=InventoryItemOut, responses=error_responses(_UNKNOWN_ITEM))
async def get_inventory_item(item: str, inventory: InventoryDep) -> InventoryItemOut:
    """One item (names are case-insensitive)."""
    return _out(await inventory.level(item))
