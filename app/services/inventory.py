"""Stock levels in the state store, one key per item, changed only by compare-and-swap.

The arithmetic and its invariant live in app.domain.inventory; this module loads, applies a
transition and saves it guarded by the ETag it read.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any, Final

from app.domain.inventory import CATALOG, StockLevel, known_item, normalize_item
from app.errors import Conflict
from app.services.changes import current_attempt
from app.services.state_store import EtagMismatch, KeyLocks, StateStore, compare_and_swap

log = logging.getLogger(__name__)

_MAX_ATTEMPTS: Final = 50


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
            updated = change(StockLevel.initial(item) if doc is None else StockLevel.from_doc(doc))
            return None if updated is None else updated.to_doc()

        async with self._locks(item):
            stored = await compare_and_swap(
                self._store, self._key(item), apply, error=Conflict, attempts=_MAX_ATTEMPTS
            )
        return StockLevel.initial(item) if stored is None else StockLevel.from_doc(stored)

    async def seed(self) -> None:
        """Create any catalog item that has no document yet (never overwrites)."""
        for item in CATALOG:
            if await self._store.get(self._key(item)) is None:
                # EtagMismatch: another replica seeded it first.
                with contextlib.suppress(EtagMismatch):
                    await self._store.save(self._key(item), StockLevel.initial(item).to_doc(), None)

    async def level(self, item: str) -> StockLevel:
        name = known_item(item)
        entry = await self._store.get(self._key(name))
        return StockLevel.initial(name) if entry is None else StockLevel.from_doc(entry.value)

    async def levels(self) -> list[StockLevel]:
        return [await self.level(item) for item in CATALOG]

    async def reserve(self, order_id: str, item: str, quantity: int) -> bool:
        """Hold `quantity` for the order. False (and nothing held) when too little is available."""
        reserved, _ = await self.hold(order_id, item, quantity)
        return reserved

    async def hold(self, order_id: str, item: str, quantity: int) -> tuple[bool, bool]:
        """`reserve`, also saying whether this call made the hold: (held, made now). False for
        a hold that was there already (an earlier run of the same reserve)."""
        made = False

        def reserve(level: StockLevel) -> StockLevel | None:
            nonlocal made
            updated = level.reserved_for(order_id, quantity)
            made = updated is not None  # the change that is written, on the last round
            return updated

        level = await self._update(item, reserve)
        reserved = order_id in level.held
        log.info(
            "order %s: %s %d %s",
            order_id,
            "reserved" if reserved else "cannot reserve",
            quantity,
            item,
        )
        return reserved, made

    async def release(self, order_id: str, item: str) -> None:
        """Give the order's held units back; a no-op when it holds none (already released)."""
        await self._update(item, lambda level: level.released_for(order_id))
        log.info("order %s: reservation of %s released", order_id, item)

    async def commit(self, order_id: str, item: str) -> None:
        """Turn the order's held units into sold ones; a no-op when already committed."""
        await self._update(item, lambda level: level.committed_for(order_id))
        log.info("order %s: %s committed", order_id, item)

    async def restock(self, item: str, quantity: int) -> StockLevel:
        return await self._update(
            known_item(item), _announced(lambda level: level.restocked(quantity))
        )

    async def reset(self) -> list[StockLevel]:
        """Every item back to its catalog stock; reservations of orders in flight are kept."""
        return [await self._update(item, _announced(StockLevel.reset)) for item in CATALOG]


def _announced(
    change: Callable[[StockLevel], StockLevel | None],
) -> Callable[[StockLevel], StockLevel | None]:
    """`change`, reporting to the request that its write is about to be sent (restocking is
    not idempotent: a 503 from then on says to read the stock before repeating)."""
    attempt = current_attempt()

    def announced(level: StockLevel) -> StockLevel | None:
        updated = change(level)
        if updated is not None:
            attempt.begin_write("read_first")
        return updated

    return announced
