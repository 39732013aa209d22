"""Each customer's own listing: their orders numbered 1, 2, 3... under keys of their own, so that
GET /orders for a customer reads that customer's orders and nothing of anyone else's.

Like the shared index (app.services.order_index), but with one counter per customer taken one
number at a time: one customer places orders at a person's pace, so the counter is rarely
contended, and a number reserved by a create that then finds its order already recorded (a
repeat) is a gap, which listing skips. A customer's listing costs their own orders' numbers
(plus such gaps), never the shop's."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence

from app.errors import StoredStateConflict
from app.services.state_store import StateStore, compare_and_swap, create_or_read


def _prefix(customer: str) -> str:
    # A digest, not the name: a key is the same whatever characters the identity provider puts
    # in `sub`, and the store's keys do not spell out who the customers are.
    return "customers:" + hashlib.sha256(customer.encode()).hexdigest()[:32]


def _counter_key(customer: str) -> str:
    return f"{_prefix(customer)}:sequence"


def _entry_key(customer: str, number: int) -> str:
    return f"{_prefix(customer)}:order:{number}"


class CustomerOrders:
    def __init__(self, store: StateStore) -> None:
        self._store = store

    async def next_number(self, customer: str) -> int:
        """The customer's next order number (from 0)."""
        stored = await compare_and_swap(
            self._store,
            _counter_key(customer),
            lambda doc: {"next": (int(doc["next"]) if doc else 0) + 1},
        )
        assert stored is not None
        return int(stored["next"]) - 1

    async def add(self, customer: str, number: int, order_id: str) -> None:
        """List `order_id` as the customer's order `number` (a repeat finds it there)."""
        key = _entry_key(customer, number)
        listed, _ = await create_or_read(self._store, key, {"order_id": order_id})
        if listed.get("order_id") != order_id:  # numbers are handed out once: never expected
            raise StoredStateConflict(f"customer order number {number} already lists {listed}")

    async def top(self, customer: str) -> int:
        """One above the customer's highest number so far (0: no orders)."""
        entry = await self._store.get(_counter_key(customer))
        return int(entry.value["next"]) if entry else 0

    async def below(self, customer: str, position: int, count: int) -> list[tuple[int, str | None]]:
        """The customer's `count` numbers under `position`, highest first, each with its order
        id (None for a gap)."""
        numbers: Sequence[int] = range(position - 1, max(position - 1 - count, -1), -1)
        found = await asyncio.gather(*(self._store.get(_entry_key(customer, n)) for n in numbers))
        return [
            (number, None if entry is None else str(entry.value["order_id"]))
            for number, entry in zip(numbers, found, strict=True)
        ]
