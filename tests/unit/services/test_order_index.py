"""Order numbers from the shared counter, and the feed of new orders over them."""

from __future__ import annotations

import asyncio

from app.services.order_index import NewOrders, OrderIndex
from tests.fixtures.fakes import InMemoryStateStore


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
