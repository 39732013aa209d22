"""Order numbering for the listing: every accepted order is listed under a sequence number,
and listing walks the numbers downwards (newest first)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Final

from app.services.state_store import EtagMismatch, KeyLocks, StateStore, compare_and_swap

SEQUENCE_KEY: Final = "orders:sequence"
_BLOCK: Final = 20


def _entry_key(number: int) -> str:
    return f"orders:by-sequence:{number}"


class OrderIndex:
    def __init__(self, store: StateStore) -> None:
        self._store = store
        self._locks = KeyLocks()
        self._numbers: list[int] = []

    async def next_number(self) -> int:
        """Hand out an order number. Numbers are reserved from the shared counter in blocks, so
        concurrent creates rarely touch it; numbers left unused when the process stops are
        harmless gaps that listing skips."""
        async with self._locks(SEQUENCE_KEY):
            if not self._numbers:
                start = await self._reserve(_BLOCK)
                self._numbers = list(range(start + _BLOCK - 1, start - 1, -1))
            return self._numbers.pop()

    async def _reserve(self, count: int) -> int:
        stored = await compare_and_swap(
            self._store,
            SEQUENCE_KEY,
            lambda doc: {"next": (int(doc["next"]) if doc else 0) + count},
        )
        assert stored is not None
        return int(stored["next"]) - count

    async def add(self, number: int, order_id: str) -> None:
        """List `order_id` under `number`. First write wins: a retried create finds it there."""
        with contextlib.suppress(EtagMismatch):
            await self._store.save(_entry_key(number), {"order_id": order_id}, None)

    async def top(self) -> int:
        """One above the highest number handed out so far."""
        entry = await self._store.get(SEQUENCE_KEY)
        return int(entry.value["next"]) if entry else 0

    async def below(self, position: int, count: int) -> list[tuple[int, str | None]]:
        """The `count` numbers under `position`, highest first, each with its order id (None
        for a gap)."""
        numbers = list(range(position - 1, max(position - 1 - count, -1), -1))
        found = await asyncio.gather(*(self._store.get(_entry_key(n)) for n in numbers))
        return [
            (number, None if entry is None else str(entry.value["order_id"]))
            for number, entry in zip(numbers, found, strict=True)
        ]
