"""Order ids kept in the state store, sharded by order id so that concurrent changes rarely
write the same key: the in-flight sets (app.services.in_flight), the orders awaiting a decision
(app.services.awaiting_decision) and the start outbox (app.services.order_starts).

The store cannot list keys, and two replicas may change a shard at the same moment: each shard
is one document, changed only by compare-and-swap, and a change that leaves it as it was writes
nothing."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from app.services.state_store import KeyLocks, StateStore, compare_and_swap

Shard = TypeVar("Shard")


def shard_of(order_id: str, shards: int) -> int:
    # crc32, not hash(): the same shard in every process (str hashes are salted per process).
    return zlib.crc32(order_id.encode()) % shards


def by_shard(order_ids: Iterable[str], shards: int) -> dict[int, set[str]]:
    """`order_ids` grouped by their shard."""
    grouped: dict[int, set[str]] = {}
    for order_id in order_ids:
        grouped.setdefault(shard_of(order_id, shards), set()).add(order_id)
    return grouped


class ShardedOrders(Generic[Shard]):
    """`shards` documents under `prefix:N`, each holding a `Shard` (a set or map of order ids):
    `load` reads one from its stored document (None: not written yet), `dump` writes it back."""

    def __init__(
        self,
        store: StateStore,
        prefix: str,
        shards: int,
        load: Callable[[dict[str, Any] | None], Shard],
        dump: Callable[[Shard], dict[str, Any]],
    ) -> None:
        self._store = store
        self._prefix = prefix
        self.shards = shards
        self._load = load
        self._dump = dump
        self._locks = KeyLocks()

    def key(self, shard: int) -> str:
        return f"{self._prefix}:{shard}"

    async def change(self, order_id: str, change: Callable[[Shard], Shard]) -> None:
        """Change the shard that holds `order_id`."""
        await self._change_shard(shard_of(order_id, self.shards), change)

    async def change_each(
        self, order_ids: Iterable[str], change: Callable[[Shard, set[str]], Shard]
    ) -> None:
        """Change every shard holding some of `order_ids`, given those ids (concurrently)."""

        def changing(ids: set[str]) -> Callable[[Shard], Shard]:
            return lambda held: change(held, ids)

        grouped = by_shard(order_ids, self.shards)
        await asyncio.gather(
            *(self._change_shard(shard, changing(ids)) for shard, ids in grouped.items())
        )

    async def _change_shard(self, shard: int, change: Callable[[Shard], Shard]) -> None:
        key = self.key(shard)

        def apply(doc: dict[str, Any] | None) -> dict[str, Any] | None:
            current = self._load(doc)
            updated = change(current)
            return None if updated == current else self._dump(updated)

        async with self._locks(key):
            await compare_and_swap(self._store, key, apply)

    async def every_shard(self) -> list[Shard]:
        """What each shard holds, as the store has it now."""
        docs = await asyncio.gather(*(self._store.get(self.key(s)) for s in range(self.shards)))
        return [self._load(None if doc is None else doc.value) for doc in docs]


def id_set(doc: dict[str, Any] | None) -> set[str]:
    """A shard stored as {"order_ids": [...]}."""
    return set(doc["order_ids"]) if doc else set()


def dump_id_set(ids: set[str]) -> dict[str, Any]:
    return {"order_ids": sorted(ids)}


def id_map(doc: dict[str, Any] | None) -> dict[str, Any]:
    """A shard stored as {"orders": {order id: value}}."""
    return dict(doc["orders"]) if doc else {}


def dump_id_map(orders: dict[str, Any]) -> dict[str, Any]:
    return {"orders": orders}


def without(orders: dict[str, Any], gone: set[str]) -> dict[str, Any]:
    """A map shard less the orders `gone`."""
    return {order_id: value for order_id, value in orders.items() if order_id not in gone}
