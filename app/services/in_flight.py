"""Orders in flight (accepted, no outcome yet), kept in the state store.

The store is the only place every replica and every restart of the app agrees on, and it cannot
list keys, so the unfinished orders are kept as sets of ids: an order is added before its
workflow is scheduled and removed when its outcome is recorded. The sets are sharded by order id
so that concurrent accepts and finishes rarely write the same key. The metrics read them at
scrape time and ask the engine for each order's step (app.observability.metrics).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Final

from app.services.sharded import by_shard, shard_of
from app.services.state_store import KeyLocks, StateStore, compare_and_swap

SHARDS: Final = 16


def shard_key(shard: int) -> str:
    return f"orders:in-flight:{shard}"


class InFlightOrders:
    def __init__(self, store: StateStore) -> None:
        self._store = store
        self._locks = KeyLocks()

    async def add(self, order_id: str) -> None:
        await self._change(shard_of(order_id, SHARDS), lambda ids: ids | {order_id})

    async def remove(self, order_ids: set[str]) -> None:
        grouped = by_shard(order_ids, SHARDS)
        await asyncio.gather(*(self._drop(shard, ids) for shard, ids in grouped.items()))

    async def _drop(self, shard: int, order_ids: set[str]) -> None:
        await self._change(shard, lambda ids: ids - order_ids)

    async def _change(self, shard: int, change: Callable[[set[str]], set[str]]) -> None:
        key = shard_key(shard)

        def apply(doc: dict[str, Any] | None) -> dict[str, Any] | None:
            current = set(doc["order_ids"]) if doc else set()
            updated = change(current)
            return None if updated == current else {"order_ids": sorted(updated)}

        async with self._locks(key):
            await compare_and_swap(self._store, key, apply)

    async def ids(self) -> set[str]:
        """Every order the store holds as in flight."""
        entries = await asyncio.gather(*(self._store.get(shard_key(s)) for s in range(SHARDS)))
        return {
            order_id
            for entry in entries
            if entry is not None
            for order_id in entry.value["order_ids"]
        }
