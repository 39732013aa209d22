"""The auditor: reads the live store through the service's own keys and checks every invariant.

The state API cannot list keys, so the orders are found as the listing finds them: every number
the order index has handed out, each with its order id. From there each order's record, its
workflow (orders without an outcome), its ledger entry, and then the stock; the judging is
app.domain.audit's. GET /audit and `python -m app.audit` both run this.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final, TypeVar

from app.config import Settings
from app.domain.audit import AuditReport, AuditRules, StoreReading, audit
from app.domain.orders import OrderRecord
from app.errors import NotFound
from app.services.inventory import InventoryService
from app.services.order_index import OrderIndex
from app.services.order_records import OrderRecords
from app.services.order_starts import StartOutbox
from app.services.payments import PaymentLedger
from app.services.state_store import StateStore
from app.workflows.contracts import WorkflowSnapshot

if TYPE_CHECKING:
    # Only the protocol: importing the engine module loads the Dapr SDK's clients, which the
    # command line (app.audit) does only once it has quietened their import-time warning.
    from app.services.engine import WorkflowGateway

T = TypeVar("T")
K = TypeVar("K")
# Reads in flight at once: enough to read a large store quickly, few enough not to crowd out the
# service's own requests on a shared sidecar.
_READS: Final = 32


def _now() -> datetime:
    return datetime.now(UTC)


def audit_rules(settings: Settings) -> AuditRules:
    """The auditor's rules from the service's settings (an order's approval wait is the one
    configured now: orders accepted under another setting are judged by this one)."""
    return AuditRules(
        approval_timeout_seconds=settings.approval_timeout_seconds,
        grace_seconds=settings.audit_grace_seconds,
    )


class Auditor:
    def __init__(
        self,
        store: StateStore,
        workflows: WorkflowGateway,
        rules: AuditRules,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._index = OrderIndex(store)
        self._records = OrderRecords(store)
        self._ledger = PaymentLedger(store)
        self._inventory = InventoryService(store)
        self._starts = StartOutbox(store)
        self._workflows = workflows
        self._rules = rules
        self._clock = clock

    async def _each(self, keys: Iterable[K], read: Callable[[K], Awaitable[T]]) -> dict[K, T]:
        reads = asyncio.Semaphore(_READS)

        async def bounded(key: K) -> T:
            async with reads:
                return await read(key)

        keys = list(dict.fromkeys(keys))
        return dict(zip(keys, await asyncio.gather(*map(bounded, keys)), strict=True))

    async def _record(self, order_id: str) -> OrderRecord | None:
        try:
            record, _ = await self._records.get(order_id)
        except NotFound:
            return None
        return record

    async def _listed(self, numbers: Iterable[int]) -> dict[int, str | None]:
        """Each number with the order id the index lists under it (None: a gap)."""
        return await self._each(numbers, self._index_entry)

    async def _index_entry(self, number: int) -> str | None:
        [(_, order_id)] = await self._index.entries([number])
        return order_id

    async def run(self) -> AuditReport:
        """One reading of the store, in the order StoreReading explains, judged."""
        # First: an order that leaves the outbox has started, so its workflow is read later.
        waiting_to_start = set(await self._starts.entries())
        top = await self._index.top()
        numbers = await self._listed(range(top))
        listed = [order_id for order_id in numbers.values() if order_id is not None]
        found = await self._each(listed, self._record)
        orders = {order_id: r for order_id, r in found.items() if r is not None}
        workflows = await self._workflows_of(orders)
        payments = await self._each(listed, self._ledger.entry)
        stock = await self._inventory.levels()
        # Orders that appeared since are read now: listed under a number that was a gap (numbers
        # are handed out in blocks, below the top) or above the top, or named only by a hold.
        gaps = [number for number, order_id in numbers.items() if order_id is None]
        new_numbers = [*gaps, *range(top, await self._index.top())]
        appeared = [order_id for order_id in (await self._listed(new_numbers)).values() if order_id]
        held = {order_id for level in stock for order_id in level.held}
        late = await self._each([*appeared, *(held - set(orders))], self._record)
        reading = StoreReading(
            orders=orders,
            workflows=workflows,
            payments={k: v for k, v in payments.items() if v is not None},
            stock=stock,
            now=self._clock(),
            listed_without_record={order_id for order_id, r in found.items() if r is None},
            late=late,
            waiting_to_start=waiting_to_start,
        )
        return audit(reading, self._rules)

    async def _workflows_of(
        self, orders: dict[str, OrderRecord]
    ) -> dict[str, WorkflowSnapshot | None]:
        """The engine's view of every order without an outcome. A workflow that has ended had
        its outcome recorded first, unless something went wrong: such records are read again
        (and replaced in `orders`) so that an order finishing during the audit is not taken for
        one that ended without an outcome."""
        unfinished = [order_id for order_id, r in orders.items() if r.outcome is None]
        workflows = await self._each(unfinished, self._workflows.snapshot)
        ended = [order_id for order_id, s in workflows.items() if s is not None and s.finished]
        for order_id, record in (await self._each(ended, self._record)).items():
            if record is not None and record.outcome is not None:
                orders[order_id] = record
                del workflows[order_id]
        return workflows
