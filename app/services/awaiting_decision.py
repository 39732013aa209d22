"""Orders awaiting a manager's decision, kept in the state store for the managers' feed.

The feed must find every order a manager still has to decide, whichever replica accepted it and
however long ago. Numbers cannot say where those are (each replica numbers its orders from
blocks of the shared counter, so a quiet replica's order can sit far below the counter's top),
and the store cannot list keys; so the orders awaiting a decision are kept as a set of their
own, each with its acceptance time (the feed's order). An order enters when it is accepted with
`approval_required`, before its workflow is scheduled, and leaves when a decision or its outcome
is recorded on it. Every change is a compare-and-swap through the
state API, sharded by order id like the in-flight sets (app.services.in_flight), and each is
idempotent: adding or removing twice changes nothing, so an activity that runs again is
harmless.

The record stays the truth: an entry whose order turns out decided, finished or gone (a write
that raced the decision, a removal that failed) is dropped by the feed when it meets it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Final, Protocol

from app.services.sharded import ShardedOrders, dump_id_map, id_map, without
from app.services.state_store import StateStore

SHARDS: Final = 16
PREFIX: Final = "orders:awaiting-decision"


def shard_key(shard: int) -> str:
    return f"{PREFIX}:{shard}"


class AwaitingDecision:
    """order id -> acceptance time (ISO 8601, UTC), in the store."""

    def __init__(self, store: StateStore) -> None:
        self._shards = ShardedOrders(store, PREFIX, SHARDS, id_map, dump_id_map)

    async def add(self, order_id: str, accepted_at: datetime) -> None:
        at = accepted_at.isoformat()
        await self._shards.change(order_id, lambda listed: {**listed, order_id: at})

    async def remove(self, order_ids: Iterable[str]) -> None:
        await self._shards.change_each(order_ids, without)

    async def oldest_first(self) -> list[str]:
        """Every order listed, by acceptance time (oldest first; order id breaks a tie)."""
        listed = [
            (datetime.fromisoformat(at), order_id)
            for shard in await self._shards.every_shard()
            for order_id, at in shard.items()
        ]
        return [order_id for _, order_id in sorted(listed)]


class NewOrderIds(Protocol):
    async def poll(self) -> list[str]: ...


class ManagerFeedOrders:
    """What the managers' feed watches: first every order awaiting a decision (oldest accepted
    first), then, each round, the orders that started awaiting one and those the index lists as
    newly accepted (`new_orders`). An order is given once per feed."""

    def __init__(
        self,
        awaiting: AwaitingDecision,
        still_awaiting: Callable[[str], Awaitable[bool]],
        new_orders: NewOrderIds,
    ) -> None:
        self._awaiting = awaiting
        self._still_awaiting = still_awaiting
        self._new_orders = new_orders
        self._listed: set[str] = set()  # what the set held last round (each looked at)
        self._given: set[str] = set()  # given from the set: the index may list them later

    async def poll(self) -> list[str]:
        listed = await self._awaiting.oldest_first()
        fresh = [order_id for order_id in listed if order_id not in self._listed]
        checks = await asyncio.gather(*map(self._still_awaiting, fresh))
        stale = {order_id for order_id, awaiting in zip(fresh, checks, strict=True) if not awaiting}
        if stale:
            await self._awaiting.remove(stale)
        self._listed = set(listed) - stale
        given = [order_id for order_id in fresh if order_id not in stale | self._given]
        self._given.update(given)
        new = [
            order_id for order_id in await self._new_orders.poll() if order_id not in self._given
        ]
        return given + new
