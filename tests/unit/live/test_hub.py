"""The live-event hub over the real OrderService and the fakes: one engine read loop per watched
order, however many streams watch it.

The poll interval is an hour here, so the pollers read only when a change is published (`publish`
wakes them): every read is counted and the counts are exact, not timing-dependent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import pytest

from app.config import Settings
from app.domain.orders import Order
from app.errors import NotFound
from app.live.hub import OrderEventHub
from app.live.progress import FINISHED, progress
from app.services.orders import OrderService
from app.workflows.contracts import OrderEvent, OrderEventKind, Step
from tests.fixtures.fakes import FakeWorkflowGateway, InMemoryStateStore
from tests.fixtures.waiting import eventually

STEPS = [Step.NOTIFYING, Step.RESERVING, Step.PROCESSING_PAYMENT, Step.UPDATING_INVENTORY]
PROCESSED = {"processed": True, "reason": None}
AN_HOUR = 3600.0


@pytest.fixture
def gateway() -> FakeWorkflowGateway:
    return FakeWorkflowGateway()


@pytest.fixture
async def orders(store: InMemoryStateStore, gateway: FakeWorkflowGateway) -> OrderService:
    return OrderService(store, gateway, Settings(manager_token="t"))


@pytest.fixture
async def hub(orders: OrderService) -> AsyncIterator[OrderEventHub]:
    hub = OrderEventHub(orders.get, poll_seconds=AN_HOUR)
    yield hub
    await hub.aclose()


async def place(orders: OrderService, count: int) -> list[str]:
    return [(await orders.create("paperclip", 1, f"order-{n}"))[0].order_id for n in range(count)]


async def until(condition: Callable[[], bool], what: str) -> None:
    async def holds() -> bool:
        return condition()

    await eventually(holds, bool, deadline_seconds=10, interval=0.001, what=what)


async def read_after(hub: OrderEventHub, change: Awaitable[None], what: str) -> None:
    """Make `change` and wait until the poller has read the order after it."""
    target = hub.reads + 1
    await change
    await until(lambda: hub.reads >= target, f"the poller's read after {what}")


async def watch(hub: OrderEventHub, order_id: str, seen: list[Order], after: int = -1) -> None:
    async for order in hub.follow(order_id, after):
        seen.append(order)


async def watched_order(
    hub: OrderEventHub, orders: OrderService
) -> tuple[str, list[Order], asyncio.Task[None]]:
    """A new order, followed from its first state: its id, what the stream has seen, the
    stream (to cancel)."""
    [order_id] = await place(orders, 1)
    seen: list[Order] = []
    stream = asyncio.create_task(watch(hub, order_id, seen))
    await until(lambda: len(seen) == 1, "the first state")
    return order_id, seen, stream


async def move(hub: OrderEventHub, gateway: FakeWorkflowGateway, order_id: str, step: Step) -> None:
    gateway.set(order_id, "RUNNING", step)
    await hub.publish(OrderEvent(order_id, OrderEventKind.STEP, datetime.now(UTC), step))


async def finish(hub: OrderEventHub, gateway: FakeWorkflowGateway, order_id: str) -> None:
    gateway.set(order_id, "COMPLETED", Step.DONE, PROCESSED)
    await hub.publish(OrderEvent(order_id, OrderEventKind.FINISHED, datetime.now(UTC)))


async def run_orders(
    hub: OrderEventHub, gateway: FakeWorkflowGateway, order_ids: list[str], watchers: int
) -> tuple[list[list[Order]], int, int]:
    """Every order through STEPS to its result, `watchers` streams on each. Returns what each
    stream saw, the engine reads made, and the most pollers running at once."""
    reads_before = gateway.reads
    seen: list[list[Order]] = [[] for _ in range(watchers * len(order_ids))]
    streams = [
        asyncio.create_task(watch(hub, order_id, seen[n * len(order_ids) + i]))
        for n in range(watchers)
        for i, order_id in enumerate(order_ids)
    ]

    def each_saw(count: int) -> Callable[[], bool]:
        return lambda: all(len(s) >= count for s in seen)

    most_pollers = 0
    for position, step in enumerate([None, *STEPS, Step.DONE], start=1):
        if step is not None:
            for order_id in order_ids:
                if step == Step.DONE:
                    await finish(hub, gateway, order_id)
                else:
                    await move(hub, gateway, order_id, step)
        await until(each_saw(position), f"{position} events each")
        most_pollers = max(most_pollers, hub.pollers)
    await asyncio.wait_for(asyncio.gather(*streams), 10)
    return seen, gateway.reads - reads_before, most_pollers


@pytest.mark.parametrize("watchers", [1, 100])
async def test_watchers_of_one_order_share_one_read_loop(
    hub: OrderEventHub, orders: OrderService, gateway: FakeWorkflowGateway, watchers: int
) -> None:
    [order_id] = await place(orders, 1)

    seen, reads, most_pollers = await run_orders(hub, gateway, [order_id], watchers)

    # One read for the first state, one per change: 6 for 1 watcher and for 100 alike.
    print(f"\n1 order, {watchers} watchers: {reads} engine reads, {most_pollers} poller")
    assert reads == 1 + len(STEPS) + 1 == hub.reads
    assert most_pollers == 1
    steps = [[order.step for order in stream] for stream in seen]
    assert steps == [[None, *STEPS, Step.DONE]] * watchers
    assert hub.pollers == 0  # the poller stopped with the order


async def test_watchers_of_many_orders_cost_one_read_loop_per_order(
    hub: OrderEventHub, orders: OrderService, gateway: FakeWorkflowGateway
) -> None:
    order_ids = await place(orders, 100)

    seen, reads, most_pollers = await run_orders(hub, gateway, order_ids, 1)

    print(f"\n100 orders, 1 watcher each: {reads} engine reads, {most_pollers} pollers")
    assert reads == 100 * (1 + len(STEPS) + 1)
    assert most_pollers == 100
    assert all(stream[-1].result is not None for stream in seen)
    assert hub.pollers == 0


async def test_a_late_watcher_gets_the_current_state_without_a_read(
    hub: OrderEventHub, orders: OrderService, gateway: FakeWorkflowGateway
) -> None:
    order_id, early, stream = await watched_order(hub, orders)
    await move(hub, gateway, order_id, Step.RESERVING)
    await until(lambda: [o.step for o in early] == [None, Step.RESERVING], "reserving seen")
    reads = gateway.reads

    late = await hub.current(order_id)

    assert late.step == Step.RESERVING
    assert gateway.reads == reads
    stream.cancel()


async def test_an_event_published_from_another_threads_loop_wakes_the_poller(
    hub: OrderEventHub, orders: OrderService, gateway: FakeWorkflowGateway
) -> None:
    # The workflow's activities publish from the SDK's own event loop, in another thread.
    order_id, seen, stream = await watched_order(hub, orders)
    gateway.set(order_id, "RUNNING", Step.RESERVING)
    event = OrderEvent(order_id, OrderEventKind.STEP, datetime.now(UTC), Step.RESERVING)

    await asyncio.to_thread(asyncio.run, hub.publish(event))

    await until(lambda: [o.step for o in seen] == [None, Step.RESERVING], "reserving seen")
    stream.cancel()


async def test_streams_get_the_order_as_read_not_what_the_event_says(
    hub: OrderEventHub, orders: OrderService, gateway: FakeWorkflowGateway
) -> None:
    # A late or repeated event (an activity run again) names a step the order has left.
    order_id, seen, stream = await watched_order(hub, orders)
    gateway.set(order_id, "RUNNING", Step.PROCESSING_PAYMENT)
    stale = OrderEvent(order_id, OrderEventKind.STEP, datetime.now(UTC), Step.RESERVING)

    await read_after(hub, hub.publish(stale), "a stale step event")

    await until(lambda: len(seen) == 2, "the order's move")
    assert seen[-1].step == Step.PROCESSING_PAYMENT
    stream.cancel()


async def test_resuming_after_an_id_skips_what_was_seen(
    hub: OrderEventHub, orders: OrderService, gateway: FakeWorkflowGateway
) -> None:
    [order_id] = await place(orders, 1)
    await move(hub, gateway, order_id, Step.PROCESSING_PAYMENT)
    paying = progress(await hub.current(order_id))
    resumed: list[Order] = []
    stream = asyncio.create_task(watch(hub, order_id, resumed, after=paying))
    await asyncio.sleep(0.01)
    assert resumed == []  # nothing past what the client has

    await finish(hub, gateway, order_id)
    await asyncio.wait_for(stream, 10)

    assert [progress(order) for order in resumed] == [FINISHED]


async def test_an_unknown_order_is_not_found_and_leaves_no_poller(hub: OrderEventHub) -> None:
    with pytest.raises(NotFound):
        await hub.current("no-such-order")
    assert hub.pollers == 0


async def test_closing_the_hub_ends_every_stream(
    hub: OrderEventHub, orders: OrderService, gateway: FakeWorkflowGateway
) -> None:
    order_ids = await place(orders, 3)
    seen: list[Order] = []
    streams = [asyncio.create_task(watch(hub, order_id, seen)) for order_id in order_ids]
    everything: list[Order] = []

    async def manager() -> None:
        async for order in hub.follow_all():
            everything.append(order)

    feed = asyncio.create_task(manager())
    await until(lambda: len(seen) == 3 and len(everything) == 3, "first states")

    await hub.aclose()

    await asyncio.wait_for(asyncio.gather(*streams, feed), 5)
    assert hub.pollers == 0


@contextlib.asynccontextmanager
async def manager_feed(hub: OrderEventHub) -> AsyncIterator[list[Order]]:
    """A manager's stream (follow_all) read in the background: yields what it has received."""
    everything: list[Order] = []

    async def read() -> None:
        async for order in hub.follow_all():
            everything.append(order)

    feed = asyncio.create_task(read())
    await asyncio.sleep(0)  # subscribed before the caller changes anything
    try:
        yield everything
    finally:
        await hub.aclose()
        await asyncio.wait_for(feed, 5)


async def test_the_manager_feed_follows_orders_accepted_while_connected(
    store: InMemoryStateStore, gateway: FakeWorkflowGateway
) -> None:
    hub = OrderEventHub(lambda order_id: service.get(order_id), poll_seconds=AN_HOUR)
    service = OrderService(store, gateway, Settings(manager_token="t"), events=hub)

    async with manager_feed(hub) as everything:
        [order_id] = await place(service, 1)
        await until(lambda: len(everything) == 1, "the new order")
        await finish(hub, gateway, order_id)
        await until(lambda: len(everything) == 2, "its result")

    assert [order.result is not None for order in everything] == [False, True]


async def test_a_step_of_an_order_accepted_before_the_manager_connected_is_not_followed(
    hub: OrderEventHub, orders: OrderService, gateway: FakeWorkflowGateway
) -> None:
    # Which replica's activity runs a step is chance: the feed must not depend on it.
    [order_id] = await place(orders, 1)

    async with manager_feed(hub) as everything:
        await move(hub, gateway, order_id, Step.RESERVING)  # on the hub's loop: handled at once

        assert (everything, hub.pollers) == ([], 0)


async def test_the_manager_feed_follows_an_order_decided_while_connected(
    store: InMemoryStateStore, gateway: FakeWorkflowGateway
) -> None:
    # Placed before the feed opened (a console lists it from GET /orders): the decision taken
    # while the feed is open is what makes the feed follow it to its result.
    hub = OrderEventHub(lambda order_id: service.get(order_id), poll_seconds=AN_HOUR)
    service = OrderService(store, gateway, Settings(manager_token="t"), events=hub)
    order_id = (await service.create("cars", 4, "big-order"))[0].order_id
    gateway.set(order_id, "RUNNING", Step.AWAITING_APPROVAL)

    async with manager_feed(hub) as everything:
        await service.approve(order_id, True, "alice")
        await until(lambda: len(everything) == 1, "the decided order")
        await finish(hub, gateway, order_id)
        await until(lambda: len(everything) == 2, "its result")

    assert [order.decision for order in everything] == ["approved", "approved"]
    assert [order.result is not None for order in everything] == [False, True]


async def test_the_manager_feed_sees_orders_another_replica_accepted(
    store: InMemoryStateStore, gateway: FakeWorkflowGateway
) -> None:
    # Two replicas over one store: the manager is connected to `here`, the order goes `there`.
    here = OrderService(store, gateway, Settings(manager_token="t"))
    there = OrderService(store, gateway, Settings(manager_token="t"))
    hub = OrderEventHub(here.get, poll_seconds=0.01, new_orders=here.new_orders)
    everything: list[Order] = []

    async def manager() -> None:
        async for order in hub.follow_all():
            everything.append(order)

    feed = asyncio.create_task(manager())
    await until(hub._discovery_started.is_set, "the feed's first round, where it starts")
    [order_id] = await place(there, 1)
    await until(lambda: len(everything) == 1, "the order accepted by the other replica")
    gateway.set(order_id, "COMPLETED", Step.DONE, PROCESSED)
    await until(lambda: len(everything) == 2, "its result")

    assert [order.order_id for order in everything] == [order_id, order_id]
    await hub.aclose()
    await asyncio.wait_for(feed, 5)


async def test_a_stream_slower_than_the_poller_still_gets_every_move_it_saw(
    hub: OrderEventHub, orders: OrderService, gateway: FakeWorkflowGateway
) -> None:
    [order_id] = await place(orders, 1)
    stream = hub.follow(order_id)
    first = await anext(stream)  # joined; then the stream reads nothing while the order moves
    for step in STEPS:
        await read_after(hub, move(hub, gateway, order_id, step), step)
    await finish(hub, gateway, order_id)

    rest = [order async for order in stream]

    assert first.step is None
    assert [order.step for order in rest] == [*STEPS, Step.DONE]
    assert rest[-1].result is not None
    assert rest[-1].result.processed


async def test_the_manager_feed_shows_a_quiet_replicas_order_awaiting_approval(
    store: InMemoryStateStore, gateway: FakeWorkflowGateway
) -> None:
    # Issue 19: replicas number orders from blocks of 20 they reserve on one counter. `quiet`
    # reserved its block early; `busy` then took 200 numbers. The one order `quiet` accepts next
    # is numbered from its old block, far below the counter's top, and waits for a manager.
    busy = OrderService(store, gateway, Settings(manager_token="t"))
    quiet = OrderService(store, gateway, Settings(manager_token="t"))
    await place(quiet, 1)
    for n in range(200):
        await busy.create("paperclip", 1, f"busy-{n}")
    hub = OrderEventHub(busy.get, poll_seconds=0.01, new_orders=busy.new_orders)

    async with manager_feed(hub) as everything:
        await until(hub._discovery_started.is_set, "the feed's first round, where it starts")
        waiting = (await quiet.create("cars", 4, "quiet-big"))[0].order_id
        gateway.set(waiting, "RUNNING", Step.AWAITING_APPROVAL)

        await until(
            lambda: any(
                o.order_id == waiting and o.step == "awaiting_approval" for o in everything
            ),
            "the quiet replica's order, awaiting approval",
        )


async def test_the_manager_feed_starts_with_every_order_awaiting_a_decision_oldest_first(
    store: InMemoryStateStore, gateway: FakeWorkflowGateway
) -> None:
    # Accepted before the feed opened, on two replicas: `quiet` numbers its order from a block it
    # reserved before `busy` took the next, so numbers and acceptance times run the other way.
    def at(second: int) -> Callable[[], datetime]:
        return lambda: datetime(2026, 12, 1, 12, 0, second, tzinfo=UTC)

    busy = OrderService(store, gateway, Settings(manager_token="t"), clock=at(2))
    quiet = OrderService(store, gateway, Settings(manager_token="t"), clock=at(3))
    await place(quiet, 1)
    first = (await busy.create("cars", 4, "accepted-first"))[0].order_id
    second = (await quiet.create("cars", 4, "accepted-second"))[0].order_id
    for order_id in (first, second):
        gateway.set(order_id, "RUNNING", Step.AWAITING_APPROVAL)
    second_read = asyncio.Event()

    async def read(order_id: str) -> Order:
        # The older order's first read answers last: the feed still sends it first.
        order = await busy.get(order_id)
        if order_id == first:
            await second_read.wait()
        else:
            second_read.set()
        return order

    hub = OrderEventHub(read, poll_seconds=0.01, new_orders=busy.new_orders)

    async with manager_feed(hub) as everything:
        await until(lambda: len(everything) >= 2, "the orders awaiting a decision")

    assert [order.order_id for order in everything] == [first, second]
