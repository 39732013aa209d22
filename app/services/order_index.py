"""Order numbering for the listing: every accepted order is listed under a sequence number,
and listing walks the numbers downwards (newest first)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Final

from app.errors import StoredStateConflict
from app.services.state_store import KeyLocks, StateStore, compare_and_swap, create_or_read

SEQUENCE_KEY: Final = "orders:sequence"
_BLOCK: Final = 20
# How far below the counter a new feed looks for numbers still to be filled: blocks that
# replicas reserved before the feed started (20 each, so 8 busy replicas' worth).
_FEED_LOOKBACK: Final = 8 * _BLOCK


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
        """List `order_id` under `number`. A retried create finds it there; a write that failed
        raises, so an accepted order is never left unlisted."""
        listed, _ = await create_or_read(self._store, _entry_key(number), {"order_id": order_id})
        if listed.get("order_id") != order_id:  # numbers are handed out once: never expected
            raise StoredStateConflict(f"order number {number} already lists {listed}")

    async def top(self) -> int:
        """One above the highest number handed out so far."""
        entry = await self._store.get(SEQUENCE_KEY)
        return int(entry.value["next"]) if entry else 0

    async def below(self, position: int, count: int) -> list[tuple[int, str | None]]:
        """The `count` numbers under `position`, highest first, each with its order id (None
        for a gap)."""
        return await self.entries(range(position - 1, max(position - 1 - count, -1), -1))

    async def entries(self, numbers: Sequence[int]) -> list[tuple[int, str | None]]:
        """Each number with its order id (None for a gap), in the order given."""
        found = await asyncio.gather(*(self._store.get(_entry_key(n)) for n in numbers))
        return [
            (number, None if entry is None else str(entry.value["order_id"]))
            for number, entry in zip(numbers, found, strict=True)
        ]


class NewOrders:
    """The orders accepted by any replica from now on, as the shared index lists them.

    Every replica numbers its orders from blocks it reserves on the shared counter, so a new
    order may take a number below the counter's top (a block reserved earlier, still being
    used) and numbers may stay empty for good (a replica stopped before using its block). The
    feed therefore keeps the numbers it has not yet seen filled, and looks at them again each
    round until they fill, or until `gap_seconds` have passed (a gap that old is abandoned).
    """

    def __init__(
        self,
        index: OrderIndex,
        gap_seconds: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._index = index
        self._gap_seconds = gap_seconds
        self._clock = clock
        self._top: int | None = None
        self._open: dict[int, float] = {}  # number -> when it was first seen empty

    async def poll(self) -> list[str]:
        """Order ids listed since the previous call (nothing on the first: it sets the start)."""
        top = await self._index.top()
        now = self._clock()
        if self._top is None:
            self._top = top
            below = await self._index.entries(range(max(top - _FEED_LOOKBACK, 0), top))
            self._open = {number: now for number, order_id in below if order_id is None}
            return []
        self._open.update((number, now) for number in range(self._top, top))
        self._top = max(self._top, top)
        found = await self._index.entries(sorted(self._open))
        new = []
        for number, order_id in found:
            if order_id is not None:
                new.append(order_id)
                del self._open[number]
            elif now - self._open[number] > self._gap_seconds:
                del self._open[number]
        return new
