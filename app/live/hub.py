"""One engine read loop per watched order, fanned out to every stream that watches it.

Clients that follow an order (GET /orders/{id}/events) and managers that follow every order
(GET /events) never read the engine themselves: they subscribe here. The first subscriber of an
order starts a single poller for it, which reads the order every `poll_seconds` (at once when
an event about it is published: accepted or decided by a service, a step entered or the outcome
recorded by the workflow's activities) and hands each change to all subscribers. The poller stops
once the order has finished, or one interval after its last subscriber left. So N watchers of
one order cost one read per interval, as one watcher does: the bound is
`watched orders in flight / poll_seconds` reads per second, plus one per event published about
a watched order (a dozen per order at most), whatever the number of clients.

Managers' streams (GET /events) see every order, whichever replica accepted it: while one is
open, the hub also reads the store every `poll_seconds` (`NewOrderFeed`: the orders awaiting a
decision, kept in a set of their own, and the shared order index) and watches each order found
there, not only those accepted in this process. A stream starts with what is watched, oldest
accepted first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Final, Protocol

from app.domain.orders import Order
from app.errors import AppError, DependencyUnavailable
from app.live.progress import FINISHED, progress
from app.workflows.contracts import OrderEvent, OrderEventKind

log = logging.getLogger(__name__)

OrderReader = Callable[[str], Awaitable[Order]]


class NewOrderFeed(Protocol):
    async def poll(self) -> list[str]:
        """Ids of orders to watch: on the first call those awaiting a decision (oldest accepted
        first); then those that started awaiting one or were accepted (by any process) since
        the previous call."""
        ...


# What a manager's stream may hold unread before the oldest changes are dropped for it.
_FIREHOSE_BACKLOG: Final = 10_000
# The events that make managers' streams follow an order not yet watched (see `publish`).
_FOLLOWED_ONCE_PUBLISHED: Final = frozenset({OrderEventKind.ACCEPTED, OrderEventKind.DECISION})
# How long a manager's stream waits for the first reads of the orders it starts with, so that
# it can send them oldest first (an engine that does not answer delays the stream this much).
_FIRST_READS_WAIT: Final = 5.0


@dataclass(eq=False)
class _Watch:
    """One watched order: its latest state and who is waiting for the next one."""

    order_id: str
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    latest: Order | None = None
    # Each state that moved the order on, in order (one per position: a dozen at most), so a
    # stream slower than the poller still sends every move the poller saw.
    moves: list[Order] = field(default_factory=list)
    error: AppError | None = None
    ended: bool = False
    holders: int = 0
    task: asyncio.Task[None] | None = None

    @property
    def position(self) -> int:
        return -1 if self.latest is None else progress(self.latest)

    def moved_past(self, position: int) -> bool:
        return self.position > position or self.ended


class OrderEventHub:
    """Live order changes for any number of streams, with one poller per watched order."""

    def __init__(
        self,
        read: OrderReader,
        poll_seconds: float,
        new_orders: Callable[[], NewOrderFeed] | None = None,
    ) -> None:
        """`new_orders` starts a feed of the orders every replica accepts; without it managers'
        streams see the orders accepted in this process (`publish`) and those others watch."""
        self._read = read
        self._poll_seconds = poll_seconds
        self._new_orders = new_orders
        self._discovery: asyncio.Task[None] | None = None
        # Set once the running feed has read where it starts: a stream yields nothing before,
        # so an order accepted after a manager saw the first event is never taken as "before".
        self._discovery_started = asyncio.Event()
        self._watches: dict[str, _Watch] = {}
        self._firehoses: set[asyncio.Queue[Order | None]] = set()
        self._closed = False
        # The loop the pollers run on, once there is one: events published from another
        # (the workflow's activities run on the SDK's own, in another thread) are handed to it.
        self._loop: asyncio.AbstractEventLoop | None = None
        self.reads = 0  # engine reads made for all streams together (tests measure the bound)

    # -- following one order ----------------------------------------------------------------

    async def current(self, order_id: str) -> Order:
        """The order as its poller last read it (NotFound and other domain errors raised),
        without a read of its own when the order is already watched."""
        watch = self._watch(order_id)
        watch.holders += 1
        try:
            async with watch.changed:
                await watch.changed.wait_for(lambda: watch.latest is not None or watch.ended)
        finally:
            watch.holders -= 1
        if watch.latest is None:
            raise watch.error or _closed(order_id)
        return watch.latest

    async def follow(self, order_id: str, after: int = -1) -> AsyncGenerator[Order, None]:
        """Every change of the order whose position (see `progress`) is past `after`, its
        current state first, ending with the finished order (or when the hub closes). A stream
        that falls behind the poller still gets each move the poller saw, in order."""
        watch = self._watch(order_id)
        watch.holders += 1
        sent = after
        # From the current state on: the moves before this stream joined are not its to send.
        first = max(len(watch.moves) - 1, 0)
        try:
            while True:
                async with watch.changed:
                    await watch.changed.wait_for(partial(watch.moved_past, sent))
                    unsent = [order for order in watch.moves[first:] if progress(order) > sent]
                    latest = watch.latest
                if unsent and latest is not None and progress(latest) == progress(unsent[-1]):
                    unsent[-1] = latest  # the freshest state of the last move (a decision)
                for order in unsent:
                    sent = progress(order)
                    yield order
                    if sent == FINISHED:
                        return
                if unsent:
                    continue
                if watch.ended:
                    if watch.error is not None:
                        log.warning("order %s: event stream ended: %s", order_id, watch.error)
                    return
        finally:
            watch.holders -= 1

    # -- following every order --------------------------------------------------------------

    async def follow_all(self) -> AsyncGenerator[Order, None]:
        """Every change of every order watched while this stream is open: orders other streams
        follow, and every order accepted or decided meanwhile (see `publish`). Starts with the
        current state of the orders already watched."""
        self._loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Order | None] = asyncio.Queue(_FIREHOSE_BACKLOG)
        for watch in self._watches.values():
            if watch.latest is not None:
                queue.put_nowait(watch.latest)
        self._firehoses.add(queue)
        self._discover()
        try:
            if self._new_orders is not None:
                await self._discovery_started.wait()
            # What it starts with (the orders watched, those awaiting a decision), oldest
            # accepted first, whichever replica accepted them; then each change as it comes.
            for order in _oldest_first(_queued(queue)):
                if order is None:
                    return
                yield order
            while not self._closed and (order := await queue.get()) is not None:
                yield order
        finally:
            self._firehoses.discard(queue)

    def _discover(self) -> None:
        """Start reading the shared index for new orders, unless already reading it."""
        if self._new_orders is None or self._closed:
            return
        if self._discovery is None or self._discovery.done():
            feed = self._new_orders()
            self._discovery_started.clear()
            self._discovery = asyncio.create_task(self._follow_index(feed), name="order-discovery")

    async def _follow_index(self, feed: NewOrderFeed) -> None:
        """While a manager's stream is open: watch every order any replica accepts."""
        try:
            while self._firehoses and not self._closed:
                try:
                    watches = [self._watch(order_id) for order_id in await feed.poll()]
                    if not self._discovery_started.is_set():
                        # The streams start with these: let their first reads land first.
                        await self._first_states(watches)
                except AppError as error:
                    # The store is away (sidecar restarting): the feed keeps its place, so the
                    # next round finds what this one missed.
                    log.warning("new-order discovery failed, will retry: %s", error)
                self._discovery_started.set()
                await asyncio.sleep(self._poll_seconds)
        finally:
            self._discovery_started.set()  # never leave a stream waiting for it

    async def _first_states(self, watches: list[_Watch]) -> None:
        """Until each watch has read its order once (or ended), for at most _FIRST_READS_WAIT."""

        async def first(watch: _Watch) -> None:
            async with watch.changed:
                await watch.changed.wait_for(lambda: watch.latest is not None or watch.ended)

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_FIRST_READS_WAIT):
                await asyncio.gather(*map(first, watches))

    async def publish(self, event: OrderEvent) -> None:
        """An order changed: its poller (if any) reads it now rather than at the next interval.
        What the streams get is what that read finds, whatever the event says (events come at
        least once, and may be late). While a manager's stream is open, an order accepted or
        decided in this process starts being watched: a console that approves an order it
        listed before connecting sees it through to its result. (A step or an outcome does not:
        which replica's activity runs it is chance, and the feed would depend on it.) Safe to
        call from any thread: from another event loop than the hub's, the wake-up is handed to
        the hub's loop."""
        loop = self._loop
        if loop is None or self._closed:
            return  # nothing watched, no manager's stream: nobody to tell
        follow = event.kind in _FOLLOWED_ONCE_PUBLISHED
        if loop is asyncio.get_running_loop():
            self._wake(event.order_id, follow)
        else:
            with contextlib.suppress(RuntimeError):  # the app's loop closed: it has stopped
                loop.call_soon_threadsafe(self._wake, event.order_id, follow)

    def _wake(self, order_id: str, follow: bool) -> None:
        watch = self._watches.get(order_id)
        if watch is None and follow and self._firehoses and not self._closed:
            self._watch(order_id)
        elif watch is not None:
            watch.wake.set()

    # -- the pollers ------------------------------------------------------------------------

    def _watch(self, order_id: str) -> _Watch:
        watch = self._watches.get(order_id)
        if watch is None:
            watch = _Watch(order_id)
            if self._closed:
                watch.ended = True
                return watch
            self._loop = asyncio.get_running_loop()
            self._watches[order_id] = watch
            watch.task = asyncio.create_task(self._poll(watch), name=f"order-events:{order_id}")
        return watch

    def _wanted(self, watch: _Watch) -> bool:
        return watch.holders > 0 or bool(self._firehoses)

    async def _poll(self, watch: _Watch) -> None:
        try:
            while True:
                try:
                    self.reads += 1
                    order = await self._read(watch.order_id)
                except AppError as error:
                    if watch.latest is None:  # unknown order, or unreadable before any state
                        watch.error = error
                        return
                    # A sidecar restart: the streams stay open and the next read catches up.
                    log.warning("order %s: event poll failed: %s", watch.order_id, error)
                else:
                    await self._offer(watch, order)
                    if progress(order) == FINISHED:
                        return
                # Sleeping before the check keeps a stream that is about to subscribe (after
                # `current`) from paying for a second poller.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._poll_seconds):
                        await watch.wake.wait()
                watch.wake.clear()
                if not self._wanted(watch):
                    return
        finally:
            await self._end(watch)

    async def _offer(self, watch: _Watch, order: Order) -> None:
        advanced = progress(order) > watch.position
        async with watch.changed:
            # The freshest state is kept (a decision shows at once to late joiners); streams are
            # woken only when the order moves on.
            watch.latest = order
            if advanced:
                watch.moves.append(order)
                watch.changed.notify_all()
        if advanced:
            for queue in self._firehoses:
                if queue.full():
                    queue.get_nowait()
                queue.put_nowait(order)

    async def _end(self, watch: _Watch) -> None:
        if self._watches.get(watch.order_id) is watch:
            del self._watches[watch.order_id]
        async with watch.changed:
            watch.ended = True
            watch.changed.notify_all()

    async def aclose(self) -> None:
        """Server shutdown: every stream ends (after sending what it already had)."""
        self._closed = True
        if self._discovery is not None:
            self._discovery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._discovery
        watches = list(self._watches.values())
        for watch in watches:
            if watch.task is not None:
                watch.task.cancel()
        await asyncio.gather(*(w.task for w in watches if w.task), return_exceptions=True)
        for watch in watches:
            await self._end(watch)
        for queue in self._firehoses:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(None)

    @property
    def pollers(self) -> int:
        """Orders being read right now (one poller each)."""
        return len(self._watches)


def _queued(queue: asyncio.Queue[Order | None]) -> list[Order | None]:
    """What `queue` holds now, taken out of it."""
    held = []
    while not queue.empty():
        held.append(queue.get_nowait())
    return held


def _oldest_first(orders: list[Order | None]) -> list[Order | None]:
    """By acceptance time (a stable sort: one order's states stay in order); None (the hub
    closed) last."""
    states = sorted((o for o in orders if o is not None), key=lambda o: (o.created_at, o.order_id))
    return [*states, *([None] if any(o is None for o in orders) else [])]


def _closed(order_id: str) -> AppError:
    return DependencyUnavailable(f"order {order_id}: the service is shutting down")
