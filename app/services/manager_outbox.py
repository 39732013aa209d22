"""The manager-action outbox: the signals of logged actions the engine could not take at once.

A manager's action is an entry in the order's log (OrderRecord.actions); the workflow learns of
it by an event (ManagerAction.signal) and then reads the log. Dapr does not buffer an event while
no workflow worker is connected (raise_event fails with "did not find address for actor"), so an
accepted action is never only in flight: the order is on the outbox before its action is saved on
the record, and leaves the outbox once the workflow has been signalled every action the record
holds (`delivered`), in the log's order. `deliver_queued_actions` retries until then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Final

from app.domain.orders import OrderRecord
from app.errors import DependencyUnavailable, NotFound
from app.services.engine import WorkflowGateway
from app.services.order_records import OrderRecords
from app.services.state_store import KeyLocks, StateStore, compare_and_swap
from app.workflows.contracts import ManagerAction

log = logging.getLogger(__name__)

OUTBOX_KEY: Final = "orders:outbox"


class ManagerOutbox:
    def __init__(
        self, store: StateStore, records: OrderRecords, workflows: WorkflowGateway
    ) -> None:
        self._store = store
        self._records = records
        self._workflows = workflows
        self._locks = KeyLocks()

    async def add(self, order_id: str) -> None:
        await self._change(lambda ids: ids | {order_id})

    async def remove(self, order_ids: set[str]) -> None:
        await self._change(lambda ids: ids - order_ids)

    async def _change(self, change: Callable[[set[str]], set[str]]) -> None:
        async with self._locks(OUTBOX_KEY):
            await compare_and_swap(
                self._store,
                OUTBOX_KEY,
                lambda doc: {"order_ids": sorted(change(set(doc["order_ids"]) if doc else set()))},
            )

    async def queued(self) -> set[str]:
        """The orders with a manager action waiting for delivery, as the store holds them."""
        entry = await self._store.get(OUTBOX_KEY)
        return set(entry.value["order_ids"]) if entry else set()

    async def waiting(self) -> int:
        """How many orders have a manager action waiting for delivery."""
        return len(await self.queued())

    async def deliver(self, order_id: str, pending: list[ManagerAction] | None = None) -> bool:
        """Signal the order's undelivered actions to its workflow, oldest first; True when none
        is left. Each is marked delivered once its event is raised, so a failure part way
        resumes at the first one not raised.

        `pending` comes from a caller that saved those actions right after seeing the workflow
        unfinished, so neither the record nor the workflow needs reading again. Otherwise both
        are read, and actions owed to a finished workflow (which Dapr would drop) are marked
        delivered without an event.
        """
        if pending is None:
            record, _ = await self._records.get(order_id)
            pending = record.undelivered()
            if not pending:
                return True
            snapshot = await self._workflows.snapshot(order_id)
            finished = record.outcome is not None or (snapshot is not None and snapshot.finished)
        else:
            finished = False
        for action in pending:
            if not finished:
                event, payload = action.signal()
                try:
                    await self._workflows.raise_event(order_id, event, payload)
                except DependencyUnavailable:
                    return False
            await self._records.update(order_id, OrderRecord.delivered_through(action.seq))
        return True

    async def deliver_now(self, order_id: str, pending: list[ManagerAction]) -> bool:
        """Deliver what was just saved; the order leaves the outbox when all of it arrived."""
        try:
            delivered = await self.deliver(order_id, pending)
        except DependencyUnavailable:
            delivered = False
        if delivered:
            with contextlib.suppress(DependencyUnavailable):
                await self.remove({order_id})
        return delivered

    async def deliver_pending(self) -> int:
        """Deliver what the outbox holds; returns how many orders still wait. Safe to repeat:
        an event is only a signal to read the log, so a duplicate after a crash finds nothing
        new there."""
        waiting = await self.queued()
        delivered = set()
        for order_id in sorted(waiting):
            try:
                if await self.deliver(order_id):
                    delivered.add(order_id)
                    log.info("order %s: queued manager action delivered", order_id)
            except NotFound:
                delivered.add(order_id)
            except DependencyUnavailable as error:
                log.warning("order %s: redelivery failed, will retry: %s", order_id, error)
        if delivered:
            await self.remove(delivered)
        return len(waiting - delivered)


async def deliver_queued_actions(outbox: ManagerOutbox, interval: float) -> None:
    """Runs for the life of the process: re-sends queued actions once the engine is back."""
    while True:
        # DependencyUnavailable: the sidecar is still away; the next round tries again.
        with contextlib.suppress(DependencyUnavailable):
            await outbox.deliver_pending()
        await asyncio.sleep(interval)
