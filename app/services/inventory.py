"""Stock levels in the state store, changed only by compare-and-swap on one key per item.

Each item's document holds what is available (`quantity`), what orders in flight hold
(`reserved`, with the per-order amounts in `held`), what was `sold`, and `stock`: the stock at the
last reset plus everything restocked since. Every change keeps
quantity + reserved + sold == stock, and never lets a number go negative.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from app.errors import Conflict, InvalidInput, NotFound
from app.services.state_store import EtagMismatch, KeyLocks, StateStore, compare_and_swap

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CatalogItem:
    per_item_cost: int
    initial_stock: int


# The Dapr quickstart's shop.
CATALOG: Final = {
    "paperclip": CatalogItem(per_item_cost=5, initial_stock=100),
    "cars": CatalogItem(per_item_cost=15_000, initial_stock=100),
    "computers": CatalogItem(per_item_cost=500, initial_stock=100),
}
_MAX_ATTEMPTS: Final = 50


@dataclass(frozen=True)
class StockLevel:
    item: str
    quantity: int
    reserved: int
    sold: int
    stock: int
    per_item_cost: int
    held: dict[str, int]

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> StockLevel:
        return cls(
            item=doc["item"],
            quantity=doc["quantity"],
            reserved=doc["reserved"],
            sold=doc["sold"],
            stock=doc["stock"],
            per_item_cost=doc["per_item_cost"],
            held=dict(doc.get("held", {})),
        )

    def to_doc(self) -> dict[str, Any]:
        return {
            "item": self.item,
            "quantity": self.quantity,
            "reserved": self.reserved,
            "sold": self.sold,
            "stock": self.stock,
            "per_item_cost": self.per_item_cost,
            "held": self.held,
        }

    def replace(self, **changes: Any) -> StockLevel:
        level = StockLevel(**{**self.__dict__, **changes})
        if min(level.quantity, level.reserved, level.sold) < 0 or (
            level.quantity + level.reserved + level.sold != level.stock
        ):
            raise AssertionError(f"inventory invariant would break for {level.item}: {level}")
        return level


def normalize_item(item: str) -> str:
    return item.strip().lower()


def catalog_entry(item: str) -> CatalogItem:
    """The catalog entry for a case-insensitive item name, or InvalidInput naming the known items."""
    entry = CATALOG.get(normalize_item(item))
    if entry is None:
        raise InvalidInput(f"unknown item {item!r}; known items: {', '.join(sorted(CATALOG))}")
    return entry


def _initial(item: str) -> StockLevel:
    entry = CATALOG[item]
    return StockLevel(
        item=item,
        quantity=entry.initial_stock,
        reserved=0,
        sold=0,
        stock=entry.initial_stock,
        per_item_cost=entry.per_item_cost,
        held={},
    )


class InventoryService:
    def __init__(self, store: StateStore) -> None:
        self._store = store
        self._locks = KeyLocks()

    @staticmethod
    def _key(item: str) -> str:
        return f"inventory:{item}"

    async def _update(
        self, item: str, change: Callable[[StockLevel], StockLevel | None]
    ) -> StockLevel:
        """Apply `change` with optimistic concurrency; `None` from it means "nothing to write"."""
        item = normalize_item(item)

        def apply(doc: dict[str, Any] | None) -> dict[str, Any] | None:
            updated = change(_initial(item) if doc is None else StockLevel.from_doc(doc))
            return None if updated is None else updated.to_doc()

        async with self._locks(item):
            stored = await compare_and_swap(
                self._store, self._key(item), apply, error=Conflict, attempts=_MAX_ATTEMPTS
            )
        return _initial(item) if stored is None else StockLevel.from_doc(stored)

    async def seed(self) -> None:
        """Create any catalog item that has no document yet (never overwrites)."""
        for item in CATALOG:
            if await self._store.get(self._key(item)) is None:
                # EtagMismatch: another replica seeded it first.
                with contextlib.suppress(EtagMismatch):
                    await self._store.save(self._key(item), _initial(item).to_doc(), None)

    async def level(self, item: str) -> StockLevel:
        name = normalize_item(item)
        if name not in CATALOG:
            raise NotFound(f"unknown item {item!r}; known items: {', '.join(sorted(CATALOG))}")
        entry = await self._store.get(self._key(name))
        return _initial(name) if entry is None else StockLevel.from_doc(entry.value)

    async def levels(self) -> list[StockLevel]:
        return [await self.level(item) for item in CATALOG]

    async def reserve(self, order_id: str, item: str, quantity: int) -> bool:
        """Hold `quantity` for the order. False (and nothing held) when too little is available."""

        def change(level: StockLevel) -> StockLevel | None:
            if order_id in level.held or level.quantity < quantity:
                return None
            return level.replace(
                quantity=level.quantity - quantity,
                reserved=level.reserved + quantity,
                held={**level.held, order_id: quantity},
            )

        level = await self._update(item, change)
        reserved = order_id in level.held
        log.info(
            "order %s: %s %d %s",
            order_id,
            "reserved" if reserved else "cannot reserve",
            quantity,
            item,
        )
        return reserved

    async def release(self, order_id: str, item: str) -> None:
        """Give the order's held units back; a no-op when it holds none (already released)."""

        def change(level: StockLevel) -> StockLevel | None:
            held = level.held.get(order_id)
            if held is None:
                return None
            return level.replace(
                quantity=level.quantity + held,
                reserved=level.reserved - held,
                held={k: v for k, v in level.held.items() if k != order_id},
            )

        await self._update(item, change)
        log.info("order %s: reservation of %s released", order_id, item)

    async def commit(self, order_id: str, item: str) -> None:
        """Turn the order's held units into sold ones; a no-op when already committed."""

        def change(level: StockLevel) -> StockLevel | None:
            held = level.held.get(order_id)
            if held is None:
                return None
            return level.replace(
                reserved=level.reserved - held,
                sold=level.sold + held,
                held={k: v for k, v in level.held.items() if k != order_id},
            )

        await self._update(item, change)
        log.info("order %s: %s committed", order_id, item)

    async def restock(self, item: str, quantity: int) -> StockLevel:
        name = normalize_item(item)
        if name not in CATALOG:
            raise NotFound(f"unknown item {item!r}; known items: {', '.join(sorted(CATALOG))}")
        return await self._update(
            name,
            lambda level: level.replace(
                quantity=level.quantity + quantity, stock=level.stock + quantity
            ),
        )

    async def reset(self) -> list[StockLevel]:
        """Every item back to its catalog stock, counting what orders in flight still hold.

        Reservations survive a reset, so an order in flight later commits or releases against
        the new baseline without breaking the invariant: available becomes initial - reserved
        (never below zero), sold starts again at zero.
        """

        def reset_level(level: StockLevel) -> StockLevel:
            available = max(0, CATALOG[level.item].initial_stock - level.reserved)
            return level.replace(quantity=available, sold=0, stock=available + level.reserved)

        return [await self._update(item, reset_level) for item in CATALOG]
