"""Sets of order ids kept in the state store, sharded by order id so that concurrent changes
rarely write the same key (app.services.in_flight, app.services.awaiting_decision)."""

from __future__ import annotations

import zlib
from collections.abc import Iterable


def shard_of(order_id: str, shards: int) -> int:
    # crc32, not hash(): the same shard in every process (str hashes are salted per process).
    return zlib.crc32(order_id.encode()) % shards


def by_shard(order_ids: Iterable[str], shards: int) -> dict[int, set[str]]:
    """`order_ids` grouped by their shard."""
    grouped: dict[int, set[str]] = {}
    for order_id in order_ids:
        grouped.setdefault(shard_of(order_id, shards), set()).add(order_id)
    return grouped
