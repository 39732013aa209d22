"""Order numbers from the shared counter, and the feed of new orders over them."""

from __future__ import annotations

import asyncio

import pytest

from app.errors import DependencyUnavailable, StoredStateConflict
from app.services.order_index import NewOrders, OrderIndex
from app.services.state_store import SidecarStateStore
from tests.fixtures.fakes import InMemoryStateStore, RedisStateApi


async def test_replicas_never_hand_out_the_same_number(store: InMemoryStateStore) -> None:
    replicas = [OrderIndex(store) for _ in range(3)]

    numbers = await asyncio.gather(*(replicas[n % 3].next_number() for n in range(300)))

    assert len(set(numbers)) == 300


async def test_the_feed_finds_orders_numbered_from_blocks_reserved_before_it_started(
    store: InMemoryStateStore,
) -> None:
    early, late = OrderIndex(store), OrderIndex(store)
    first = await early.next_number()  # reserves a block before the feed starts
    await early.add(first, "before")
    feed = NewOrders(OrderIndex(store))
    assert await feed.poll() == []  # the start

    from_old_block = await early.next_number()
    await early.add(from_old_block, "old-block")
    from_new_block = await late.next_number()
    await late.add(from_new_block, "new-block")

    assert sorted(await feed.poll()) == ["new-block", "old-block"]
    assert await feed.poll() == []


async def test_the_feed_gives_up_on_a_gap_after_a_while(store: InMemoryStateStore) -> None:
    now = [0.0]
    index = OrderIndex(store)
    feed = NewOrders(OrderIndex(store), gap_seconds=60, clock=lambda: now[0])
    await feed.poll()
    await index.next_number()  # a block of 20, one used, never listed: 20 gaps
    await feed.poll()
    assert len(feed._open) == 20

    now[0] = 61
    await feed.poll()

    assert feed._open == {}


async def test_a_listing_write_the_store_refuses_is_an_error_not_a_listed_order(
    sidecar_store: SidecarStateStore, redis_api: RedisStateApi
) -> None:
    index = OrderIndex(sidecar_store)
    number = await index.next_number()
    redis_api.read_only.add("orders:by-sequence:")

    with pytest.raises(DependencyUnavailable, match="NOPERM"):
        await index.add(number, "o1")

    assert await index.entries([number]) == [(number, None)]


async def test_a_number_that_lists_another_order_is_never_taken_as_listed(
    store: InMemoryStateStore,
) -> None:
    index = OrderIndex(store)
    number = await index.next_number()
    await index.add(number, "o1")

    await index.add(number, "o1")  # a retried create: the same listing
    with pytest.raises(StoredStateConflict, match="already lists"):
        await index.add(number, "o2")

    assert await index.entries([number]) == [(number, "o1")]
