"""Orders: accept, look up, list, approve and cancel.

The order service composes the pieces that each do one job: order records (storage), the order
index (numbering and listing), the engine gateway (workflows) and the manager-action outbox. The
rules themselves (pricing, approval, what a manager may do when) live in app.domain.orders.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

from app.config import Settings
from app.domain.customers import EVERYONE, Viewer
from app.domain.orders import (
    DEFAULT_DECIDER,
    Order,
    OrderRecord,
    TimelineEntry,
    check_can_decide,
    check_same_order,
    new_order,
    order_view,
    timeline,
)
from app.errors import AppError, DependencyUnavailable, NotFound
from app.services.awaiting_decision import ManagerFeedOrders
from app.services.changes import (
    ChangeAbandoned,
    ChangeAttempt,
    UnfinishedChanges,
    current_attempt,
)
from app.services.customer_orders import CustomerOrders
from app.services.engine import WorkflowGateway
from app.services.in_flight import InFlightOrders
from app.services.manager_outbox import ManagerOutbox
from app.services.order_index import NewOrders, OrderIndex
from app.services.order_observer import NO_OBSERVER, OrderObserver
from app.services.order_records import OrderRecords
from app.services.order_starts import OrderStarts, StartHold
from app.services.state_store import EtagMismatch, StateStore, contention_backoff
from app.workflows.contracts import (
    DECISION_OF,
    ActionKind,
    DiscardingPublisher,
    InfrastructureRetry,
    OrderEvent,
    OrderEventKind,
    OrderEventPublisher,
    OrderInput,
)

log = logging.getLogger(__name__)

_MAX_ATTEMPTS: Final = 100
_ACCEPTED_CACHE_SIZE: Final = 10_000
# Engine reads at once when counting orders in flight by step (a scrape; see in_flight_by_step).
_IN_FLIGHT_READS: Final = 16


def _now() -> datetime:
    return datetime.now(UTC)


class OrderService:
    def __init__(
        self,
        store: StateStore,
        workflows: WorkflowGateway,
        settings: Settings,
        clock: Callable[[], datetime] = _now,
        observer: OrderObserver = NO_OBSERVER,
        events: OrderEventPublisher | None = None,
    ) -> None:
        self._workflows = workflows
        self._events = events or DiscardingPublisher()
        self._settings = settings
        self._clock = clock
        self._observer = observer
        self._records = OrderRecords(
            store, in_flight=InFlightOrders(store) if settings.observability else None
        )
        self._index = OrderIndex(store)
        self._customers = CustomerOrders(store)
        self.outbox = ManagerOutbox(store, self._records, workflows)
        self.starts = OrderStarts(
            store,
            self._records,
            workflows,
            self._order_input,
            clock,
            # A create waits this long for the engine before it leaves the start to the outbox.
            wait_seconds=settings.request_timeout_seconds / 4,
            retry_seconds=settings.start_retry_seconds,
        )
        self._accepted_cache: OrderedDict[str, OrderRecord] = OrderedDict()
        # Creates and decisions run to completion even when their request's deadline strikes
        # (a create cancelled between its writes would leave a record without a workflow);
        # shutdown waits for them here.
        self.changes = UnfinishedChanges()
        # How long a manager action waits on the engine before it is accepted as queued: well
        # inside the request deadline, so the answer is 202, not a deadline's 503.
        self._engine_wait = settings.request_timeout_seconds / 4

    # -- reading ----------------------------------------------------------------------------

    async def get(self, order_id: str, wait_seconds: int = 0, viewer: Viewer = EVERYONE) -> Order:
        """The order now, or, with `wait_seconds`, once it has finished (or the wait ran out).
        Another customer's order is not found (before any wait)."""
        accepted = _visible(await self._accepted(order_id), viewer)
        if accepted.outcome is not None:
            return order_view(accepted, None)
        if wait_seconds > 0 and await self._workflows.wait_finished(order_id, wait_seconds):
            # The outcome goes onto the record before the workflow ends: no need to read the
            # workflow's state as well (a multi-key read in the engine). A workflow that failed
            # outright has no outcome recorded; its state says how it ended.
            record, _ = await self._records.get(order_id)
            if record.outcome is not None:
                return order_view(self._remember(record), None)
        snapshot = await self._workflows.snapshot(order_id)
        if snapshot is None or snapshot.finished:
            # Finished, or finished and purged by the engine: the record has the outcome.
            record, _ = await self._records.get(order_id)
            if record.outcome is not None:
                return order_view(self._remember(record), None)
        return order_view(accepted, snapshot)

    async def history(self, order_id: str, viewer: Viewer = EVERYONE) -> list[TimelineEntry]:
        """The order's timeline (see domain.orders.timeline); who decided only for those who
        may know."""
        record, _ = await self._records.get(order_id)
        _visible(record, viewer)
        snapshot = None if record.outcome else await self._workflows.snapshot(order_id)
        return timeline(record, snapshot, with_deciders=viewer.sees_deciders)

    async def check_visible(self, order_id: str, viewer: Viewer) -> None:
        """NotFound unless `viewer` may see the order (it exists, and is theirs or they see
        all). The owner never changes, so a cached record answers as well as a fresh one."""
        if not viewer.sees_all:
            _visible(await self._accepted(order_id), viewer)

    async def _accepted(self, order_id: str) -> OrderRecord:
        """The record as a poll shows it: what the client asked for, the manager's decision,
        and how the order ended. Clients poll orders, so a record that can no longer change
        what a poll shows is kept in memory: one with a decision (one per order, it never
        changes) only waits for its outcome, which the workflow's state announces (`get`
        reads the record again once the workflow has finished). A record without a decision is
        read every time: any replica may record a decision on it, and this process would not
        hear of it."""
        cached = self._accepted_cache.get(order_id)
        if cached is None:
            record, _ = await self._records.get(order_id)
            return self._remember(record)
        self._accepted_cache.move_to_end(order_id)
        return cached

    def _remember(self, record: OrderRecord) -> OrderRecord:
        if record.decision is None and record.outcome is None:
            return record  # may still change in another process: not cached (see _accepted)
        self._accepted_cache[record.order_id] = record
        self._accepted_cache.move_to_end(record.order_id)
        if len(self._accepted_cache) > _ACCEPTED_CACHE_SIZE:
            self._accepted_cache.popitem(last=False)
        return record

    async def list(
        self, status: str | None, limit: int, cursor: str | None, viewer: Viewer = EVERYONE
    ) -> tuple[list[Order], str | None]:
        """Newest first. The cursor is the number to continue below: in the shop's index for
        those who see every order, in the customer's own listing for a customer, so that a
        customer's listing costs their orders (a status filter at most all of them), never the
        shop's."""
        if viewer.sees_all:
            top, below = await self._index.top(), self._index.below
            owner = None
        elif viewer.customer is not None:
            customer = viewer.customer
            top = await self._customers.top(customer)
            below = functools.partial(self._customers.below, customer)
            owner = customer
        else:
            return [], None
        position = min(top, int(cursor)) if cursor else top
        page: list[Order] = []
        while position > 0 and len(page) < limit:
            listed = await below(position, limit)
            orders = await asyncio.gather(
                *(self._maybe_get(order_id) for _, order_id in listed if order_id is not None)
            )
            found = iter(orders)
            for number, order_id in listed:
                position = number
                order = next(found) if order_id is not None else None
                if order is None or (status is not None and order.status != status):
                    continue
                # The owner is checked again in a customer's listing: cheap, and an id listed
                # there by mistake must still never show someone else's order.
                if owner is not None and order.customer != owner:
                    continue
                page.append(order)
                if len(page) == limit:
                    break
        return page, (str(position) if position > 0 else None)

    def new_orders(self) -> ManagerFeedOrders:
        """A feed of the orders a manager follows, accepted by this process or any other
        replica: every order awaiting a decision (oldest accepted first), then, round by round,
        each order that starts awaiting one or is accepted."""
        return ManagerFeedOrders(
            self._records.awaiting, self._records.still_awaiting_decision, NewOrders(self._index)
        )

    async def _maybe_get(self, order_id: str) -> Order | None:
        try:
            return await self.get(order_id)
        except NotFound:
            return None

    async def in_flight_by_step(self) -> dict[str, int] | None:
        """How many unfinished orders are at each step, from the store's in-flight sets and the
        engine (so every replica answers the same, and a restart forgets nothing). An order the
        engine reports finished, or that has neither workflow nor record, is dropped from the
        sets (a workflow that failed never records an outcome; a create that crashed left it).
        None when the sets are not kept (observability off)."""
        in_flight = self._records.in_flight
        if in_flight is None:
            return None
        ids = await in_flight.ids()
        reads = asyncio.Semaphore(_IN_FLIGHT_READS)

        async def step_of(order_id: str) -> str | None:
            async with reads:
                snapshot = await self._workflows.snapshot(order_id)
                if snapshot is None:
                    try:
                        record, _ = await self._records.get(order_id)
                    except NotFound:
                        return None
                    # Scheduled any moment now, or finished and purged.
                    return None if record.outcome is not None else "pending"
            if snapshot.finished:
                return None
            return snapshot.step or "pending"

        steps = dict(zip(ids, await asyncio.gather(*map(step_of, ids)), strict=True))
        finished = {order_id for order_id, step in steps.items() if step is None}
        if finished:
            await in_flight.remove(finished)
        return dict(Counter(step for step in steps.values() if step is not None))

    # -- creating ---------------------------------------------------------------------------

    async def create(
        self, item: str, quantity: int, order_id: str | None, customer: str | None = None
    ) -> tuple[Order, bool]:
        """Accept an order and start its workflow. Returns (order, created).

        Accepting needs only the state store: when the engine cannot start the workflow within
        a short wait, the order is accepted all the same, PENDING, and the start outbox
        (app.services.order_starts) starts it. With a client-chosen id the call is idempotent:
        repeating it returns the same order and never starts a second workflow; the same id
        with a different body is a conflict.
        """
        repeatable = order_id is not None
        order_id = order_id or uuid.uuid4().hex
        attempt = current_attempt()
        return await self.changes.run(
            self._create(item, quantity, order_id, attempt, repeatable, customer),
            f"create order {order_id}",
            attempt,
        )

    async def _create(
        self,
        item: str,
        quantity: int,
        order_id: str,
        attempt: ChangeAttempt,
        repeatable: bool,
        customer: str | None,
    ) -> tuple[Order, bool]:
        record = new_order(
            order_id, item, quantity, self._settings.approval_threshold, self._clock(), customer
        )
        numbers: dict[str, int | None] = {"seq": await self._index.next_number()}
        if customer is not None:
            numbers["customer_seq"] = await self._customers.next_number(customer)
        record = record.model_copy(update=numbers)
        # From here on the order may exist: a 503 says so, and names it. Its first write is its
        # entry on the start outbox, then its record; a create whose caller gave up goes on from
        # here to the end (and shutdown waits for it), so the order does exist once it is done.
        try:
            attempt.begin_write("same_order_id", order_id, repeatable=repeatable)
        except ChangeAbandoned:
            log.info("order %s: create given up before it was recorded", order_id)
            raise
        # On the start outbox before the record: a create that stops between the two leaves an
        # entry without a record (dropped later), never a recorded order nobody starts.
        hold = await self.starts.enter(order_id, record.created_at)
        try:
            return await self._record_and_start(record, hold)
        except Exception:
            if hold is not None:  # a retry of this create, or the loop, may start it at once
                await self.starts.release(order_id, record.created_at)
            raise

    async def _record_and_start(
        self, record: OrderRecord, hold: StartHold | None
    ) -> tuple[Order, bool]:
        order_id = record.order_id
        try:
            await self._records.create(record)
            created = True
        except EtagMismatch:
            existing, _ = await self._records.get(order_id)
            check_same_order(existing, record)
            record, created = existing, False
        assert record.seq is not None
        await self._index.add(record.seq, order_id)
        if record.customer is not None and record.customer_seq is not None:
            await self._customers.add(record.customer, record.customer_seq, order_id)
        if created:
            self._observer.order_accepted()
            log.info(
                "order %s: accepted (%d %s, total %d)",
                order_id,
                record.quantity,
                record.item,
                record.total_cost,
            )
        # A record this call created has no workflow yet; only a repeat needs to look.
        snapshot = None
        if not created and record.outcome is None:
            snapshot = await self._workflows.snapshot(order_id)
        if record.outcome is not None or snapshot is not None:
            # A repeat of an order that has started (or finished): listed again by this call.
            if hold is not None:
                await self.starts.done({order_id})
        elif (hold is not None and hold.running()) or await self.starts.claim(order_id):
            # Accepted whether or not the engine answers now: the start outbox starts it
            # otherwise (PENDING until then). Also reached by a repeat of a create that could
            # not start it. Not claimed: the create or replica holding the start is on it.
            await self.starts.start(record)
        if created:
            await self._events.publish(
                OrderEvent(order_id, OrderEventKind.ACCEPTED, record.created_at)
            )
        return order_view(record, snapshot), created

    def _order_input(self, record: OrderRecord) -> OrderInput:
        """The workflow's input: the order, and the settings it runs with (fixed at its start)."""
        return OrderInput(
            order_id=record.order_id,
            item=record.item,
            quantity=record.quantity,
            total_cost=record.total_cost,
            approval_required=record.approval_required,
            approval_timeout_seconds=self._settings.approval_timeout_seconds,
            infrastructure_retry=InfrastructureRetry(
                budget_seconds=self._settings.infrastructure_retry_hours * 3600,
                first_interval_seconds=self._settings.infrastructure_retry_first_interval_seconds,
                max_interval_seconds=self._settings.infrastructure_retry_max_interval_seconds,
            ),
        )

    # -- manager actions --------------------------------------------------------------------

    async def approve(self, order_id: str, approved: bool, approver: str | None) -> Order:
        """Approve or reject an order that waits for a manager (one decision per order)."""
        return await self._decide(order_id, "approve" if approved else "reject", approver)

    async def cancel(
        self, order_id: str, by: str | None = None, viewer: Viewer = EVERYONE
    ) -> Order:
        """Cancel an order before payment (one decision per order); a customer cancels only
        their own (another's is not found, and nothing is written)."""
        await self.check_visible(order_id, viewer)
        return await self._decide(order_id, "cancel", by)

    async def _decide(self, order_id: str, kind: ActionKind, by: str | None) -> Order:
        decision = DECISION_OF[kind]
        who, at = by or DEFAULT_DECIDER, self._clock()
        # Abandoned when the caller stops waiting (the request deadline's 503): a decision not
        # yet written is then not written, so the 503 leaves nothing behind. One whose write had
        # started may still land: it is the order's outcome, and a retry is told so (409).
        attempt = current_attempt()

        async def record() -> Order:
            order = await self._record_action(order_id, kind, who, at, attempt)
            # Inside the shielded change: a caller that gave up does not undo the decision.
            self._observer.order_decided(decision)
            return order

        order = await self.changes.run(record(), f"{decision} on order {order_id}", attempt)
        log.info("order %s: %s by %s", order_id, decision, who)
        await self._events.publish(OrderEvent(order_id, OrderEventKind.DECISION, at))
        return order

    async def _record_action(
        self, order_id: str, kind: ActionKind, by: str, at: datetime, change: ChangeAttempt
    ) -> Order:
        """Append a manager's action to the order's log, then signal it to the workflow.

        The action (numbered next in the log) is written in one ETag-guarded save, so a second,
        racing decision is a 409 naming the first, never a second action.
        An accepted action is never lost: the order is on the outbox before it is saved and
        leaves it only once the workflow has been signalled; if the workflow cannot take the
        signal now (sidecar restarting, worker not connected), the outbox loop delivers it when
        the engine is back. Dapr drops events for finished instances, so finished orders are
        refused.
        """
        queued = False
        for attempt in range(_MAX_ATTEMPTS):
            record, etag = await self._records.get(order_id)
            try:
                async with asyncio.timeout(self._engine_wait):
                    snapshot = await self._workflows.snapshot(order_id)
            except (DependencyUnavailable, TimeoutError):
                # The engine cannot answer while the worker is away (Dapr reports the workflow's
                # actor as unplaced, or takes long to look for it). Accept the action anyway:
                # delivery checks the workflow again, and a finished order never receives it.
                snapshot = None
            check_can_decide(record, DECISION_OF[kind], snapshot)
            if not queued:
                # On the outbox before the action is saved: a crash between the two leaves an
                # entry with nothing pending (dropped on the next round), never a saved action
                # that nobody will deliver.
                await self.outbox.add(order_id)
                queued = True
            action = record.next_action(kind, by, at)
            updated = record.with_action(action)
            try:
                # Repeated, it finds the decision recorded (409 naming it), never a second one.
                change.begin_write("same_request", order_id, repeatable=True)
            except ChangeAbandoned:
                # Its caller got a 503 already. (The outbox entry has nothing pending: dropped.)
                log.info("order %s: %s given up before it was recorded", order_id, kind)
                raise
            try:
                await self._records.replace(updated, etag)
                # Polls answer from the cache: it must show the decision at once. (Other
                # replicas never cache an undecided record, so they read it next time.)
                self._remember(updated)
                break
            except EtagMismatch:
                await contention_backoff(attempt)
        else:
            raise DependencyUnavailable(f"order {order_id}: record too contended; retry")
        delivery = self.changes.track(
            self.outbox.deliver_now(order_id, updated.undelivered()),
            f"{kind} to order {order_id}",
        )
        try:
            async with asyncio.timeout(self._engine_wait):
                delivered = await asyncio.shield(delivery)
        except TimeoutError:
            # Still trying in the background; the outbox loop delivers it otherwise.
            delivered = False
        if not delivered:
            log.warning("order %s: %s not delivered yet; queued for redelivery", order_id, kind)
        if updated.approval_required:  # after the delivery: the workflow waits for that
            try:
                await self._records.awaiting.remove({order_id})
            except AppError as error:
                # The decision stands; the feed drops the entry when it meets it (see
                # app.services.awaiting_decision).
                log.warning("order %s: still listed as awaiting a decision: %s", order_id, error)
        return order_view(updated, snapshot)


def _visible(record: OrderRecord, viewer: Viewer) -> OrderRecord:
    """`record` when `viewer` may see it; otherwise the very NotFound of an unknown order, so
    that another customer's order ids are not told apart from ids never used."""
    if not viewer.may_see(record.customer):
        raise NotFound(f"order {record.order_id!r} not found")
    return record
