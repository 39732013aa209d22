"""Orders in flight (accepted, no outcome yet), kept in the state store.

The store is the only place every replica and every restart of the app agrees on, and it cannot
list keys, so the unfinished orders are kept as sets of ids: an order is added before its
workflow is scheduled and removed when its outcome is recorded. The sets are sharded by order id
so that concurrent accepts and finishes rarely write the same key. The metrics read them at
scrape time and ask the engine for each order's step (app.observability.metrics).
"""

from __future__ import annotations

from typing import Final

from app.services.sharded import ShardedOrders, dump_id_set, id_set
from app.services.state_store import StateStore

SHARDS: Final = 16
PREFIX: Final = "orders:in-flight"


def shard_key(shard: int) -> str:
    return f"{PREFIX}:{shard}"


class InFlightOrders:
    def __init__(self, store: StateStore) -> None:
        self._shards = ShardedOrders(store, PREFIX, SHARDS, id_set, dump_id_set)

    async def add(self, order_id: str) -> None:
        await self._shards.change(order_id, lambda ids: ids | {order_id})

    async def remove(self, order_ids: set[str]) -> None:
        await self._shards.change_each(order_ids, lambda ids, gone: ids - gone)

    async def ids(self) -> set[str]:
        """Every order the store holds as in flight."""
        return set().union(*await self._shards.every_shard())
