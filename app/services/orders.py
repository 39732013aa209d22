"""Orders: accept, look up, list, approve and cancel, over the workflow engine and the state store.

The order record (what was asked, when, and what a manager decided) lives in the state store;
status, step and result come from the workflow itself, so they never disagree with the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from app.config import Settings
from app.errors import Conflict, DependencyUnavailable, NotFound
from app.services.inventory import catalog_entry, normalize_item
from app.services.state_store import (
    EtagMismatch,
    KeyLocks,
    StateStore,
    compare_and_swap,
    contention_backoff,
)
from app.services.workflows import WorkflowGateway, WorkflowSnapshot
from app.workflows.contracts import (
    APPROVAL_EVENT,
    CANCEL_EVENT,
    PAST_PAYMENT_STEPS,
    WORKFLOW_NAME,
    ApprovalDecision,
    OrderInput,
)

log = logging.getLogger(__name__)

SEQUENCE_KEY: Final = "orders:sequence"
OUTBOX_KEY: Final = "orders:outbox"
_MAX_ATTEMPTS: Final = 100
_SEQUENCE_BLOCK: Final = 20
_ACCEPTED_FIELDS: Final = (
    "order_id",
    "item",
    "quantity",
    "total_cost",
    "approval_required",
    "created_at",
)
_ACCEPTED_CACHE_SIZE: Final = 10_000


@dataclass(frozen=True)
class Order:
    order_id: str
    item: str
    quantity: int
    total_cost: int
    approval_required: bool
    status: str
    step: str | None
    result: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime


def _sequence_key(number: int) -> str:
    return f"orders:by-sequence:{number}"


def _now() -> datetime:
    return datetime.now(UTC)


class OrderService:
    def __init__(
        self,
        store: StateStore,
        workflows: WorkflowGateway,
        settings: Settings,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._store = store
        self._workflows = workflows
        self._settings = settings
        self._clock = clock
        self._locks = KeyLocks()
        self._numbers: list[int] = []
        self._accepted_cache: OrderedDict[str, dict[str, Any]] = OrderedDict()

    @staticmethod
    def _key(order_id: str) -> str:
        return f"order:{order_id}"

    # -- reading ----------------------------------------------------------------------------

    async def _record(self, order_id: str) -> tuple[dict[str, Any], str]:
        entry = await self._store.get(self._key(order_id))
        if entry is None:
            raise NotFound(f"order {order_id!r} not found")
        return entry.value, entry.etag

    def _view(self, record: dict[str, Any], snapshot: WorkflowSnapshot | None) -> Order:
        created = datetime.fromisoformat(record["created_at"])
        result = None
        if snapshot is not None and snapshot.finished:
            if snapshot.status == "COMPLETED" and snapshot.output is not None:
                result = {
                    "processed": bool(snapshot.output.get("processed")),
                    "reason": snapshot.output.get("reason"),
                }
            else:
                result = {"processed": False, "reason": f"workflow_{snapshot.status.lower()}"}
        updated = snapshot.updated_at if snapshot and snapshot.updated_at else created
        return Order(
            order_id=record["order_id"],
            item=record["item"],
            quantity=record["quantity"],
            total_cost=record["total_cost"],
            approval_required=record["approval_required"],
            # Accepted but not yet picked up by the engine is still an order: PENDING, not 404.
            status=snapshot.status if snapshot else "PENDING",
            step=snapshot.step if snapshot else None,
            result=result,
            created_at=created,
            updated_at=max(updated, created),
        )

    async def get(self, order_id: str, wait_seconds: int = 0) -> Order:
        """The order now, or, with `wait_seconds`, once it has finished (or the wait ran out)."""
        accepted = await self._accepted(order_id)
        if wait_seconds > 0:
            await self._workflows.wait_finished(order_id, wait_seconds)
        return self._view(accepted, await self._workflows.snapshot(order_id))

    async def _accepted(self, order_id: str) -> dict[str, Any]:
        """What the client asked for, which never changes once accepted: clients poll orders,
        so these fields are kept in memory and each poll reads only the workflow's state."""
        cached = self._accepted_cache.get(order_id)
        if cached is None:
            record, _ = await self._record(order_id)
            cached = {field: record[field] for field in _ACCEPTED_FIELDS}
            self._accepted_cache[order_id] = cached
            if len(self._accepted_cache) > _ACCEPTED_CACHE_SIZE:
                self._accepted_cache.popitem(last=False)
        else:
            self._accepted_cache.move_to_end(order_id)
        return cached

    async def list(
        self, status: str | None, limit: int, cursor: str | None
    ) -> tuple[list[Order], str | None]:
        """Newest first. The cursor is the sequence number to continue below."""
        entry = await self._store.get(SEQUENCE_KEY)
        position = int(entry.value["next"]) if entry else 0
        if cursor:
            position = min(position, int(cursor))
        page: list[Order] = []
        while position > 0 and len(page) < limit:
            numbers = list(range(position - 1, max(position - 1 - limit, -1), -1))
            found = await asyncio.gather(*(self._store.get(_sequence_key(n)) for n in numbers))
            orders = await asyncio.gather(
                *(self._maybe_get(item.value["order_id"]) for item in found if item is not None)
            )
            ids = iter(orders)
            for number, item in zip(numbers, found, strict=True):
                position = number
                order = next(ids) if item is not None else None
                if order is not None and (status is None or order.status == status):
                    page.append(order)
                    if len(page) == limit:
                        break
        return page, (str(position) if position > 0 else None)

    async def _maybe_get(self, order_id: str) -> Order | None:
        try:
            return await self.get(order_id)
        except NotFound:
            return None

    # -- creating ---------------------------------------------------------------------------

    async def create(self, item: str, quantity: int, order_id: str | None) -> tuple[Order, bool]:
        """Accept an order and start its workflow. Returns (order, created).

        With a client-chosen id the call is idempotent: repeating it returns the same order and
        never starts a second workflow; the same id with a different body is a conflict.
        """
        name = normalize_item(item)
        entry = catalog_entry(name)
        order_id = order_id or uuid.uuid4().hex
        total = entry.per_item_cost * quantity
        record: dict[str, Any] = {
            "order_id": order_id,
            "item": name,
            "quantity": quantity,
            "total_cost": total,
            "approval_required": total > self._settings.approval_threshold,
            "created_at": self._clock().isoformat(),
            "decision": None,
            "cancel_requested": False,
            "pending_events": {},
        }
        try:
            record["seq"] = await self._next_sequence()
            await self._store.save(self._key(order_id), record, None)
            created = True
        except EtagMismatch:
            record, _ = await self._record(order_id)
            if (record["item"], record["quantity"]) != (name, quantity):
                raise Conflict(
                    f"order {order_id!r} already exists for {record['quantity']} {record['item']}"
                ) from None
            created = False
        await self._list_under(record["seq"], order_id)
        # A record this call created has no workflow yet; only a repeat needs to look.
        snapshot = None if created else await self._workflows.snapshot(order_id)
        if snapshot is None:
            # Also reached by a retry after a create whose scheduling failed: finish that job.
            payload = OrderInput(
                order_id=order_id,
                item=record["item"],
                quantity=record["quantity"],
                total_cost=record["total_cost"],
                approval_required=record["approval_required"],
                approval_timeout_seconds=self._settings.approval_timeout_seconds,
            ).model_dump()
            try:
                await self._workflows.schedule(WORKFLOW_NAME, order_id, payload)
            except DependencyUnavailable:
                snapshot = await self._workflows.snapshot(order_id)
                if (
                    snapshot is None
                ):  # not a racing twin request that won: undo, nothing half-written
                    if created:
                        self._accepted_cache.pop(order_id, None)
                        await self._store.delete(self._key(order_id))
                    raise
            log.info("order %s: accepted (%d %s, total %d)", order_id, quantity, name, total)
        return self._view(record, snapshot), created

    async def _next_sequence(self) -> int:
        """Hand out order numbers (the listing order). Numbers are reserved from the shared
        counter in blocks, so concurrent creates rarely touch it; numbers left unused when the
        process stops are harmless gaps that listing skips."""
        async with self._locks(SEQUENCE_KEY):
            if not self._numbers:
                start = await self._reserve_numbers(_SEQUENCE_BLOCK)
                self._numbers = list(range(start + _SEQUENCE_BLOCK - 1, start - 1, -1))
            return self._numbers.pop()

    async def _reserve_numbers(self, count: int) -> int:
        stored = await compare_and_swap(
            self._store,
            SEQUENCE_KEY,
            lambda doc: {"next": (int(doc["next"]) if doc else 0) + count},
        )
        assert stored is not None
        return int(stored["next"]) - count

    async def _list_under(self, number: int, order_id: str) -> None:
        # First-write: a retried create finds the entry already there.
        with contextlib.suppress(EtagMismatch):
            await self._store.save(_sequence_key(number), {"order_id": order_id}, None)

    # -- manager actions --------------------------------------------------------------------

    async def approve(self, order_id: str, approved: bool, approver: str | None) -> Order:
        decision = {"approved": approved, "approver": approver, "at": self._clock().isoformat()}

        def check(record: dict[str, Any], snapshot: WorkflowSnapshot | None) -> None:
            if not record["approval_required"]:
                raise Conflict(f"order {order_id!r} does not need approval")
            if record["decision"] is not None:
                raise Conflict(f"a decision was already sent for order {order_id!r}")

        event = ApprovalDecision(approval=approved, approver=approver).model_dump()
        order = await self._send(order_id, "decision", decision, check, APPROVAL_EVENT, event)
        log.info(
            "order %s: %s by %s",
            order_id,
            "approved" if approved else "rejected",
            approver or "manager",
        )
        return order

    async def cancel(self, order_id: str) -> Order:
        def check(record: dict[str, Any], snapshot: WorkflowSnapshot | None) -> None:
            if snapshot is not None and snapshot.step in PAST_PAYMENT_STEPS:
                raise Conflict(f"order {order_id!r} is past payment and can no longer be cancelled")

        order = await self._send(order_id, "cancel_requested", True, check, CANCEL_EVENT, {})
        log.info("order %s: cancel requested", order_id)
        return order

    async def _send(
        self,
        order_id: str,
        field: str,
        value: Any,
        check: Callable[[dict[str, Any], WorkflowSnapshot | None], None],
        event: str,
        data: Any,
    ) -> Order:
        """Record a manager's action on the order, then deliver it to the workflow.

        The action and the event it owes the workflow are written in one ETag-guarded save, so a
        second, racing action is a 409 instead of an event the workflow would silently ignore.
        An accepted action is never lost: the order is on the outbox before the action is saved
        and leaves it only once the workflow has the event; if the workflow cannot take it now
        (sidecar restarting, worker not connected, which Dapr answers with an error rather than
        buffering), the outbox loop delivers it when the engine is back. Dapr drops events for
        finished instances, so finished orders are refused up front.
        """
        queued = False
        for attempt in range(_MAX_ATTEMPTS):
            record, etag = await self._record(order_id)
            try:
                snapshot = await self._workflows.snapshot(order_id)
            except DependencyUnavailable:
                # The engine cannot answer while the worker is away (Dapr reports the workflow's
                # actor as unplaced). Accept the action anyway: delivery checks the workflow
                # again, and a finished order simply never receives it.
                snapshot = None
            if snapshot is not None and snapshot.finished:
                raise Conflict(f"order {order_id!r} has already finished ({snapshot.status})")
            check(record, snapshot)
            if not queued:
                # On the outbox before the action is saved: a crash between the two leaves an
                # entry with nothing pending (dropped on the next round), never a saved action
                # that nobody will deliver.
                await self._update_outbox(lambda ids: ids | {order_id})
                queued = True
            pending = {**record.get("pending_events", {}), event: data}
            updated = {**record, field: value, "pending_events": pending}
            try:
                await self._store.save(self._key(order_id), updated, etag)
                break
            except EtagMismatch:
                await contention_backoff(attempt)
        else:
            raise DependencyUnavailable(f"order {order_id}: record too contended; retry")
        try:
            delivered = await self._deliver(order_id, pending)
        except DependencyUnavailable:
            delivered = False
        if delivered:
            with contextlib.suppress(DependencyUnavailable):
                await self._update_outbox(lambda ids: ids - {order_id})
        else:
            log.warning("order %s: %s not delivered yet; queued for redelivery", order_id, event)
        return self._view(updated, snapshot)

    async def _deliver(self, order_id: str, pending: dict[str, Any] | None = None) -> bool:
        """Raise the order's pending events; True when none is left.

        `pending` comes from a caller that saved those events right after seeing the workflow
        unfinished, so neither the record nor the workflow needs reading again. Otherwise both
        are read, and events owed to a finished workflow (which Dapr would drop) are cleared.
        """
        if pending is None:
            record, _ = await self._record(order_id)
            pending = dict(record.get("pending_events", {}))
            snapshot = await self._workflows.snapshot(order_id)
            finished = snapshot is not None and snapshot.finished
        else:
            finished = False
        for event, data in pending.items():
            if not finished:
                try:
                    await self._workflows.raise_event(order_id, event, data)
                except DependencyUnavailable:
                    return False
            await self._clear_pending(order_id, event)
        return True

    async def _clear_pending(self, order_id: str, event: str) -> None:
        def without_event(record: dict[str, Any] | None) -> dict[str, Any]:
            if record is None:
                raise NotFound(f"order {order_id!r} not found")
            pending = {k: v for k, v in record.get("pending_events", {}).items() if k != event}
            return {**record, "pending_events": pending}

        await compare_and_swap(self._store, self._key(order_id), without_event)

    async def _update_outbox(self, change: Callable[[set[str]], set[str]]) -> None:
        async with self._locks(OUTBOX_KEY):
            await compare_and_swap(
                self._store,
                OUTBOX_KEY,
                lambda doc: {"order_ids": sorted(change(set(doc["order_ids"]) if doc else set()))},
            )

    async def deliver_pending(self) -> int:
        """Deliver what the outbox holds; returns how many orders still wait. Safe to repeat:
        a workflow consumes one event per wait, so a duplicate after a crash is ignored."""
        entry = await self._store.get(OUTBOX_KEY)
        waiting = set(entry.value["order_ids"]) if entry else set()
        delivered = set()
        for order_id in sorted(waiting):
            try:
                if await self._deliver(order_id):
                    delivered.add(order_id)
                    log.info("order %s: queued manager action delivered", order_id)
            except NotFound:
                delivered.add(order_id)
            except DependencyUnavailable as error:
                log.warning("order %s: redelivery failed, will retry: %s", order_id, error)
        if delivered:
            await self._update_outbox(lambda ids: ids - delivered)
        return len(waiting - delivered)
