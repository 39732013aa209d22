"""The catalog and the stock arithmetic. Every change keeps quantity + reserved + sold == stock and
never lets a number go negative; reservations are keyed by order id, so each change is idempotent."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Final

from app.errors import InvalidInput, NotFound


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


def normalize_item(item: str) -> str:
    return item.strip().lower()


def _unknown(item: str) -> str:
    return f"unknown item {item!r}; known items: {', '.join(sorted(CATALOG))}"


def catalog_entry(item: str) -> CatalogItem:
    """The catalog entry for a case-insensitive item name, or InvalidInput naming the known items."""
    entry = CATALOG.get(normalize_item(item))
    if entry is None:
        raise InvalidInput(_unknown(item))
    return entry


def known_item(item: str) -> str:
    """The normalized name of a catalog item addressed by URL, or NotFound naming the known items."""
    name = normalize_item(item)
    if name not in CATALOG:
        raise NotFound(_unknown(item))
    return name


@dataclass(frozen=True)
class StockLevel:
    """One item's stock: available `quantity`, `reserved` by orders in flight (per order in
    `held`), `sold`, and `stock` (the stock at the last reset plus everything restocked since).

    `sold_total` counts every unit ever committed and is never reset: `sold` starts again at each
    reset, so only this one can be held against the orders that were processed (the auditor does,
    app.domain.audit). None on a document written before it was kept: its past is unknown.
    """

    item: str
    quantity: int
    reserved: int
    sold: int
    stock: int
    per_item_cost: int
    held: dict[str, int]
    sold_total: int | None = None

    @classmethod
    def initial(cls, item: str) -> StockLevel:
        entry = CATALOG[item]
        return cls(
            item=item,
            quantity=entry.initial_stock,
            reserved=0,
            sold=0,
            stock=entry.initial_stock,
            per_item_cost=entry.per_item_cost,
            held={},
            sold_total=0,
        )

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
            sold_total=doc.get("sold_total"),
        )

    def to_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "item": self.item,
            "quantity": self.quantity,
            "reserved": self.reserved,
            "sold": self.sold,
            "stock": self.stock,
            "per_item_cost": self.per_item_cost,
            "held": self.held,
        }
        if self.sold_total is not None:
            doc["sold_total"] = self.sold_total
        return doc

    def replace(self, **changes: Any) -> StockLevel:
        level = replace(self, **changes)
        if min(level.quantity, level.reserved, level.sold) < 0 or (
            level.quantity + level.reserved + level.sold != level.stock
        ):
            raise AssertionError(f"inventory invariant would break for {level.item}: {level}")
        return level

    # Each transition returns the new level, or None for "nothing to change" (already done, or
    # not possible), which is what makes the activities that call them safe to repeat.

    def reserved_for(self, order_id: str, quantity: int) -> StockLevel | None:
        """Hold `quantity` for the order; None when it already holds some or too little is left."""
        if order_id in self.held or self.quantity < quantity:
            return None
        return self.replace(
            quantity=self.quantity - quantity,
            reserved=self.reserved + quantity,
            held={**self.held, order_id: quantity},
        )

    def released_for(self, order_id: str) -> StockLevel | None:
        """Give the order's held units back; None when it holds none (already released)."""
        held = self.held.get(order_id)
        if held is None:
            return None
        return self.replace(
            quantity=self.quantity + held,
            reserved=self.reserved - held,
            held={k: v for k, v in self.held.items() if k != order_id},
        )

    def committed_for(self, order_id: str) -> StockLevel | None:
        """Turn the order's held units into sold ones; None when already committed."""
        held = self.held.get(order_id)
        if held is None:
            return None
        return self.replace(
            reserved=self.reserved - held,
            sold=self.sold + held,
            held={k: v for k, v in self.held.items() if k != order_id},
            sold_total=None if self.sold_total is None else self.sold_total + held,
        )

    def restocked(self, quantity: int) -> StockLevel:
        return self.replace(quantity=self.quantity + quantity, stock=self.stock + quantity)

    def reset(self) -> StockLevel:
        """Back to the catalog stock, counting what orders in flight still hold.

        Reservations survive a reset, so an order in flight later commits or releases against
        the new baseline without breaking the invariant: available becomes initial - reserved
        (never below zero), sold starts again at zero.
        """
        available = max(0, CATALOG[self.item].initial_stock - self.reserved)
        return self.replace(quantity=available, sold=0, stock=available + self.reserved)
