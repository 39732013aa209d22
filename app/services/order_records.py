"""Order records in the state store: one key per order, written with ETags."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from app.domain.orders import OrderRecord, approval_wait_seconds
from app.errors import NotFound
from app.services.awaiting_decision import AwaitingDecision
from app.services.in_flight import InFlightOrders
from app.services.order_observer import NO_OBSERVER, OrderObserver
from app.services.state_store import StateStore, compare_and_swap
from app.workflows.contracts import ManagerAction, OrderOutcome, Reason


class OrderRecords:
    def __init__(
        self,
        store: StateStore,
        observer: OrderObserver = NO_OBSERVER,
        in_flight: InFlightOrders | None = None,
    ) -> None:
        self._store = store
        self._observer = observer
        # An order is in flight from before its workflow is scheduled until its outcome is here
        # (kept only with observability on: see Settings.observability).
        self.in_flight = in_flight
        # The orders a manager has yet to decide, for the managers' feed: an order needing
        # approval is there from its acceptance until its decision or outcome is recorded.
        self.awaiting = AwaitingDecision(store)

    @staticmethod
    def key(order_id: str) -> str:
        return f"order:{order_id}"

    async def get(self, order_id: str) -> tuple[OrderRecord, str]:
        """The record and its ETag; NotFound when there is none."""
        entry = await self._store.get(self.key(order_id))
        if entry is None:
            raise NotFound(f"order {order_id!r} not found")
        return OrderRecord.model_validate(entry.value), entry.etag

    async def create(self, record: OrderRecord) -> None:
        """First write only: EtagMismatch when the order already exists."""
        await self._store.save(self.key(record.order_id), record.model_dump(mode="json"), None)

    async def replace(self, record: OrderRecord, etag: str) -> None:
        """Write over the version read with `etag`: EtagMismatch when someone wrote since."""
        await self._store.save(self.key(record.order_id), record.model_dump(mode="json"), etag)

    async def update(
        self, order_id: str, change: Callable[[OrderRecord], OrderRecord | None]
    ) -> OrderRecord:
        """Apply `change` to the current record by compare-and-swap (None from it: nothing to
        write). Returns the record as it now stands."""

        def apply(doc: dict[str, object] | None) -> dict[str, object] | None:
            if doc is None:
                raise NotFound(f"order {order_id!r} not found")
            changed = change(OrderRecord.model_validate(doc))
            return None if changed is None else changed.model_dump(mode="json")

        stored = await compare_and_swap(self._store, self.key(order_id), apply)
        return OrderRecord.model_validate(stored)

    async def record_outcome(self, outcome: OrderOutcome) -> None:
        """Keep how the order ended on its record; the first recording stays (activities may run
        twice). Reported to the observer only by the call that wrote it."""
        wrote = False
        approval_required = False

        def apply(doc: dict[str, object] | None) -> dict[str, object] | None:
            nonlocal wrote, approval_required
            if doc is None:
                raise NotFound(f"order {outcome.order_id!r} not found")
            record = OrderRecord.model_validate(doc)
            wrote = record.outcome is None
            approval_required = record.approval_required
            if not wrote:
                return None
            return record.model_copy(update={"outcome": outcome}).model_dump(mode="json")

        await compare_and_swap(self._store, self.key(outcome.order_id), apply)
        if self.in_flight is not None:
            # Also when a first run of this activity wrote the outcome and died before this.
            await self.in_flight.remove({outcome.order_id})
        if approval_required:
            # Also on a second run (see above). Orders without approval were never listed.
            await self.awaiting.remove({outcome.order_id})
        if wrote:
            self._observer.order_finished(
                "processed" if outcome.processed else outcome.reason or "unknown"
            )
            waited = approval_wait_seconds(outcome)
            if waited is not None:
                self._observer.approval_waited(waited)

    async def start_payment(self, order_id: str) -> bool:
        """The point of no return, one compare-and-swap on the order record: mark the payment
        started unless a cancel is recorded. True when payment may go ahead (marked now, or by an
        earlier run of the same activity), False when a cancel was recorded first (nothing is
        written). The service records a cancel only while the mark is absent, on the same
        record, so one of the two wins and the other sees it."""
        return (await self.update(order_id, OrderRecord.starting_payment)).payment_started

    async def close_decisions(self, order_id: str, reason: Reason) -> str | None:
        """The workflow is ending the order on its own (the approval timer, too little stock):
        one compare-and-swap on the order record that either finds the decision a manager
        recorded first (returned, nothing written: it is the outcome, its event may still be on
        the way) or closes the record to decisions (None), after which the service refuses
        every one. Repeating it finds the record closed and answers None again."""
        record = await self.update(order_id, lambda record: record.closing_decisions(reason))
        return None if record.decision is None else record.decision.decision

    async def still_awaiting_decision(self, order_id: str) -> bool:
        """Whether a manager may still decide the order: it exists, and no decision, closing or
        outcome is recorded on it (each is for good)."""
        try:
            record, _ = await self.get(order_id)
        except NotFound:
            return False
        return (
            record.decision is None and record.decisions_closed is None and record.outcome is None
        )

    async def payment_started(self, order_id: str) -> bool:
        """Whether the order's payment has started (its point of no return); False for an order
        without a record, which has not got that far."""
        try:
            record, _ = await self.get(order_id)
        except NotFound:
            return False
        return record.payment_started

    async def settle_stock(self, order_id: str) -> None:
        """Mark the order's stock as being committed or released (see OrderRecord.stock_settled);
        nothing to mark for an order without a record."""

        def settle(record: OrderRecord) -> OrderRecord | None:
            return (
                None if record.stock_settled else record.model_copy(update={"stock_settled": True})
            )

        with contextlib.suppress(NotFound):
            await self.update(order_id, settle)

    async def stock_settled(self, order_id: str) -> bool:
        """Whether the order's stock was committed or released (False without a record)."""
        try:
            record, _ = await self.get(order_id)
        except NotFound:
            return False
        return record.stock_settled

    async def actions_after(self, order_id: str, seq: int) -> list[ManagerAction]:
        """The order's logged manager actions after the `seq`-th, oldest first."""
        record, _ = await self.get(order_id)
        return record.actions_after(seq)

    async def recorded_decision(self, order_id: str) -> str | None:
        """The manager's decision on the order as recorded (the one the workflow acts on)."""
        record, _ = await self.get(order_id)
        return None if record.decision is None else record.decision.decision

    async def delete(self, order_id: str) -> None:
        await self._store.delete(self.key(order_id))
