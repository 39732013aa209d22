"""The start outbox: orders accepted whose workflow is not yet known to have started.

Accepting an order needs only the state store; starting its workflow needs the engine as well,
which a placement rebalance or a restarting sidecar can keep from answering for seconds. So the
start is a step of its own, durable and retried until it is done, like the manager-action outbox
(app.services.manager_outbox): an order enters the start outbox before its record is written and
leaves it once its workflow is known to exist (or the order has finished, or was never recorded).
Until then it shows PENDING, and `retry_due_starts` (every replica runs it) starts it.

Each entry holds when the order was accepted and when it may be tried next (`retry_at`). Whoever
tries a start holds the entry until then: the create that wrote it, or the replica whose
compare-and-swap moved `retry_at` on. So replicas do not schedule the same order at once, which
matters because Dapr refuses to schedule an instance id that is running (ALREADY_EXISTS, taken as
started) but *starts a finished one again* (dapr v1.18.2
pkg/actors/targets/workflow/orchestrator/create.go, createIfCompleted): a twin schedule landing
after a quick order finished would run it twice. Before each try the record (an outcome: done)
and the engine (a workflow: done) are read; the hold keeps two tries at least `retry_seconds`
apart, far longer than a schedule takes.

Sharded by order id like the other sets (app.services.sharded); every change is a
compare-and-swap through the state API, and each is idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

from app.domain.orders import OrderRecord
from app.errors import DependencyUnavailable, NotFound
from app.services.order_records import OrderRecords
from app.services.sharded import ShardedOrders, dump_id_map, id_map, without
from app.services.state_store import StateStore
from app.workflows.contracts import WORKFLOW_NAME, OrderInput

if TYPE_CHECKING:
    # Only the protocol: the engine module loads the Dapr SDK's clients, which the auditor's
    # command line (app.audit, which reads the start outbox) imports only once it is ready to.
    from app.services.engine import WorkflowGateway

log = logging.getLogger(__name__)

SHARDS: Final = 16
# An entry whose order has no record this long after it was accepted belongs to a create that
# stopped before writing it (its 503 said nothing was changed): dropped. Far above the time a
# create takes; a create that writes its record later than this puts the entry back itself if
# its own start fails (see OrderStarts.start).
ORPHAN_SECONDS: Final = 60.0
# Starts tried at once by one round of the loop.
_CONCURRENT_STARTS: Final = 8


PREFIX: Final = "orders:starting"


def shard_key(shard: int) -> str:
    return f"{PREFIX}:{shard}"


@dataclass(frozen=True)
class StartEntry:
    accepted_at: datetime
    retry_at: datetime


Listed = dict[str, dict[str, str]]  # order id -> {"accepted_at", "retry_at"} (ISO 8601, UTC)


def _entry(accepted_at: datetime, retry_at: datetime) -> dict[str, str]:
    return {"accepted_at": accepted_at.isoformat(), "retry_at": retry_at.isoformat()}


def _parse(value: dict[str, str]) -> StartEntry:
    return StartEntry(
        datetime.fromisoformat(value["accepted_at"]), datetime.fromisoformat(value["retry_at"])
    )


class StartOutbox:
    """The orders waiting for their workflow to start, in the state store."""

    def __init__(self, store: StateStore) -> None:
        self._shards = ShardedOrders(store, PREFIX, SHARDS, id_map, dump_id_map)

    async def enter(self, order_id: str, accepted_at: datetime, retry_at: datetime) -> bool:
        """List the order, held by the caller until `retry_at`, unless it is listed already
        (a repeated create: whoever listed it holds it). True when this call listed it."""
        listed_now = False

        def change(listed: Listed) -> Listed:
            nonlocal listed_now
            listed_now = order_id not in listed
            return listed if not listed_now else {**listed, order_id: _entry(accepted_at, retry_at)}

        await self._change(order_id, change)
        return listed_now

    async def put_back(self, order_id: str, accepted_at: datetime, retry_at: datetime) -> None:
        """List the order again (listed or not), to be tried from `retry_at`: a start that
        failed leaves it to the loop."""
        await self._change(
            order_id, lambda listed: {**listed, order_id: _entry(accepted_at, retry_at)}
        )

    async def claim(self, order_id: str, now: datetime, until: datetime) -> bool:
        """Hold a listed order whose `retry_at` has passed, until `until`. False when it is not
        listed any more (started) or someone else holds it: leave it to them."""
        claimed = False

        def change(listed: Listed) -> Listed:
            nonlocal claimed
            current = listed.get(order_id)
            claimed = current is not None and _parse(current).retry_at <= now
            if not claimed:
                return listed
            accepted_at = _parse(listed[order_id]).accepted_at
            return {**listed, order_id: _entry(accepted_at, until)}

        await self._change(order_id, change)
        return claimed

    async def remove(self, order_ids: Iterable[str]) -> None:
        await self._shards.change_each(order_ids, without)

    async def _change(self, order_id: str, change: Callable[[Listed], Listed]) -> None:
        await self._shards.change(order_id, change)

    async def entries(self) -> dict[str, StartEntry]:
        """Every order listed, with when it was accepted and may be tried next."""
        return {
            order_id: _parse(value)
            for shard in await self._shards.every_shard()
            for order_id, value in shard.items()
        }

    async def waiting(self) -> int:
        """How many orders wait for their workflow to start."""
        return len(await self.entries())


@dataclass(frozen=True)
class StartHold:
    """A create's hold on its order's start, timed by the create itself: a create slower than
    the hold (a store that answered late) leaves the start to the loop, which may be trying
    it already."""

    until: float  # event-loop time

    def running(self) -> bool:
        return asyncio.get_running_loop().time() < self.until


class OrderStarts:
    """Starting orders' workflows: at once when a create can (a bounded wait), else from the
    start outbox, by `retry_due` in every replica's loop."""

    def __init__(
        self,
        store: StateStore,
        records: OrderRecords,
        workflows: WorkflowGateway,
        order_input: Callable[[OrderRecord], OrderInput],
        clock: Callable[[], datetime],
        *,
        wait_seconds: float,
        retry_seconds: float,
    ) -> None:
        self.outbox = StartOutbox(store)
        self._records = records
        self._workflows = workflows
        self._order_input = order_input
        self._clock = clock
        self._wait = wait_seconds
        self._retry = timedelta(seconds=retry_seconds)

    async def enter(self, order_id: str, accepted_at: datetime) -> StartHold | None:
        """List an order about to be recorded (accepted just now); its hold on the start when
        this call listed it (None: listed already, by whoever holds it)."""
        until = asyncio.get_running_loop().time() + self._retry.total_seconds()
        if await self.outbox.enter(order_id, accepted_at, accepted_at + self._retry):
            return StartHold(until)
        return None

    async def claim(self, order_id: str) -> bool:
        now = self._clock()
        return await self.outbox.claim(order_id, now, now + self._retry)

    async def release(self, order_id: str, accepted_at: datetime) -> None:
        """Give up the hold on a listed order's start (its create failed): due at once. A
        release that fails leaves the hold to run out."""
        with contextlib.suppress(DependencyUnavailable):
            await self.outbox.put_back(order_id, accepted_at, self._clock())

    async def start(self, record: OrderRecord) -> bool:
        """Start the order's workflow, waiting for the engine at most the bounded wait; True
        when it is known to run (scheduled now, or found started by a twin), and the order has
        left the outbox. False: it stays listed and the loop starts it from `retry_at`."""
        try:
            async with asyncio.timeout(self._wait):
                await self._schedule(record)
        except (DependencyUnavailable, TimeoutError) as error:
            if not await self._exists(record.order_id):
                log.warning(
                    "order %s: workflow not started yet (%s); left to the start outbox",
                    record.order_id,
                    error or "no answer in time",
                )
                with contextlib.suppress(DependencyUnavailable):
                    # Still listed, unless the loop dropped it meanwhile as never recorded.
                    await self.outbox.put_back(
                        record.order_id, record.created_at, self._clock() + self._retry
                    )
                return False
        await self.done({record.order_id})
        return True

    async def done(self, order_ids: set[str]) -> None:
        """The orders' workflows run: off the outbox (a failed removal leaves an entry the loop
        drops once it finds the workflow)."""
        with contextlib.suppress(DependencyUnavailable):
            await self.outbox.remove(order_ids)

    async def _schedule(self, record: OrderRecord) -> None:
        in_flight = self._records.in_flight
        # In flight and listed for the managers' feed before the workflow can finish (and
        # unlist it). A repeat is harmless: both are sets.
        if in_flight is not None:
            await in_flight.add(record.order_id)
        if record.approval_required and record.decision is None:
            await self._records.awaiting.add(record.order_id, record.created_at)
        await self._workflows.schedule(WORKFLOW_NAME, record.order_id, self._order_input(record))

    async def _exists(self, order_id: str) -> bool:
        """Whether the engine has the workflow; False when it cannot say either."""
        try:
            async with asyncio.timeout(self._wait):
                return await self._workflows.snapshot(order_id) is not None
        except (DependencyUnavailable, TimeoutError):
            return False

    async def retry_due(self) -> int:
        """Try every listed order whose `retry_at` has passed and that this call can claim;
        returns how many orders were listed and are not known to run yet."""
        listed = await self.outbox.entries()
        now = self._clock()
        due = sorted(
            (entry.accepted_at, order_id)
            for order_id, entry in listed.items()
            if entry.retry_at <= now
        )
        slots = asyncio.Semaphore(_CONCURRENT_STARTS)

        async def settle(order_id: str) -> bool:
            async with slots:
                try:
                    if not await self.claim(order_id):
                        return False  # started meanwhile, or another replica is on it
                    return await self._settle(order_id, listed[order_id], now)
                except DependencyUnavailable as error:
                    log.warning("order %s: start failed, will retry: %s", order_id, error)
                    return False

        settled = await asyncio.gather(*(settle(order_id) for _, order_id in due))
        finished = {order_id for (_, order_id), done in zip(due, settled, strict=True) if done}
        if finished:
            await self.outbox.remove(finished)
        return len(listed) - len(finished)

    async def _settle(self, order_id: str, entry: StartEntry, now: datetime) -> bool:
        """One try at a claimed order; True when it needs no more (started, finished, or never
        recorded)."""
        try:
            record, _ = await self._records.get(order_id)
        except NotFound:
            if (now - entry.accepted_at).total_seconds() < ORPHAN_SECONDS:
                return False  # its create may still be writing the record
            log.info("order %s: never recorded; dropped from the start outbox", order_id)
            return True
        if record.outcome is not None:
            return True
        if await self._workflows.snapshot(order_id) is not None:
            return True
        try:
            # Well inside the hold, so the next try (after it) sees what this one did.
            async with asyncio.timeout(self._retry.total_seconds() / 2):
                await self._schedule(record)
        except TimeoutError:
            log.warning("order %s: start not answered in time, will retry", order_id)
            return False
        log.info("order %s: workflow started from the start outbox", order_id)
        return True


async def retry_due_starts(starts: OrderStarts, interval: float) -> None:
    """Runs for the life of the process: starts the orders whose start is due."""
    while True:
        # DependencyUnavailable: the sidecar is still away; the next round tries again.
        with contextlib.suppress(DependencyUnavailable):
            await starts.retry_due()
        await asyncio.sleep(interval)
