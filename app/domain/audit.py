"""The invariants the auditor checks, as judgements over what it read from the store.

No I/O here: app.services.audit reads the store (in an order that keeps a live store from raising
false alarms, see `StoreReading`) and these functions decide what is wrong, naming the order.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from app.domain.inventory import StockLevel
from app.domain.orders import OrderRecord
from app.workflows.contracts import WorkflowSnapshot

Invariant = Literal["payment", "stock_hold", "stock_balance", "decision", "unfinished"]
INVARIANTS: Final[tuple[Invariant, ...]] = (
    "payment",
    "stock_hold",
    "stock_balance",
    "decision",
    "unfinished",
)

# The outcomes each decision allows (None: processed). Stock may run out before the workflow
# reaches the point where it acts on a decision, and an approved order may still fail at payment;
# a rejected or cancelled order never gets as far as payment.
_OUTCOMES_ALLOWED: Final[dict[str, set[str | None]]] = {
    "approved": {None, "insufficient_inventory", "payment_failed", "inventory_update_failed"},
    "rejected": {"rejected", "insufficient_inventory"},
    "cancelled": {"cancelled", "insufficient_inventory"},
}


@dataclass(frozen=True)
class Violation:
    invariant: Invariant
    # None for a violation of an item rather than an order (stock_balance).
    order_id: str | None
    detail: str


@dataclass(frozen=True)
class AuditRules:
    """When an unfinished order is late: accepted more than its approval wait (if it needs one)
    plus `grace_seconds` ago."""

    approval_timeout_seconds: float
    grace_seconds: float


@dataclass
class StoreReading:
    """What the auditor read, in this order: the orders (listed ones, and the workflows of those
    without an outcome), their ledger entries, then the stock, then whatever appeared meanwhile.

    That order is what makes an audit of a live store trustworthy: an order moves forward only
    (hold, pay, commit, release, outcome last), so stock read after an order's record can only be
    further along than the record says, never behind it. Orders first seen after the stock was
    read (`late`: new in the index, or named only by a hold) cannot be judged against that stock
    and are left to the next audit, except a hold whose order does not exist at all.
    """

    orders: dict[str, OrderRecord]
    # The engine's view of each order without an outcome (None: no workflow).
    workflows: dict[str, WorkflowSnapshot | None]
    # Ledger entries by order id, for every listed order id, with or without a record.
    payments: dict[str, dict[str, Any]]
    stock: list[StockLevel]
    now: datetime
    # Listed in the index, but no record: a create that stopped before writing it (or one that
    # undid itself, before the start outbox).
    listed_without_record: set[str] = field(default_factory=set)
    # Read after the stock; None: no record.
    late: dict[str, OrderRecord | None] = field(default_factory=dict)
    # On the start outbox (read first): accepted, the workflow's start still being retried.
    waiting_to_start: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class AuditReport:
    checked: dict[str, int]
    violations: list[Violation]

    @property
    def ok(self) -> bool:
        return not self.violations

    def as_json(self) -> dict[str, Any]:
        """The report as GET /audit and `python -m app.audit --json` give it."""
        return {
            "ok": self.ok,
            "checked": self.checked,
            "violations": [
                {"invariant": v.invariant, "order_id": v.order_id, "detail": v.detail}
                for v in self.violations
            ],
        }


def _ended(record: OrderRecord) -> str:
    assert record.outcome is not None
    return "processed" if record.outcome.processed else f"ended {record.outcome.reason}"


def _ended_without_outcome(reading: StoreReading, order_id: str) -> str | None:
    """The status the order's workflow ended with, for an order read without an outcome (the
    auditor read such records again after the engine: the outcome is recorded before the end)."""
    snapshot = reading.workflows.get(order_id)
    return snapshot.status if snapshot is not None and snapshot.finished else None


def check_payments(reading: StoreReading) -> Iterator[Violation]:
    """Every processed order has its one ledger entry (the ledger keeps one key per order),
    paid, for the order's total; every paid entry belongs to a processed order, or one still
    in flight, or has been refunded."""
    for order_id, record in reading.orders.items():
        entry = reading.payments.get(order_id)
        status = None if entry is None else entry.get("status")
        if entry is not None and entry.get("amount") != record.total_cost:
            yield Violation(
                "payment",
                order_id,
                f"ledger entry of {entry.get('amount')} for an order totalling {record.total_cost}",
            )
        if record.outcome is not None and record.outcome.processed:
            if entry is None:
                yield Violation("payment", order_id, "processed, but the ledger has no entry")
            elif status != "paid":
                yield Violation("payment", order_id, f"processed, but its payment is {status}")
        elif status == "paid":
            if record.outcome is not None:
                yield Violation(
                    "payment", order_id, f"{_ended(record)}, but its payment was not refunded"
                )
            elif (ended := _ended_without_outcome(reading, order_id)) is not None:
                yield Violation(
                    "payment", order_id, f"paid, but its workflow ended {ended} without an outcome"
                )
    for order_id in sorted(reading.listed_without_record):
        entry = reading.payments.get(order_id)
        if entry is not None and entry.get("status") == "paid":
            yield Violation("payment", order_id, "paid, but there is no such order")


def check_holds(reading: StoreReading) -> Iterator[Violation]:
    """No stock is held for an order that is not in flight, and a hold is the order's own
    quantity of its own item."""
    for level in reading.stock:
        for order_id, quantity in sorted(level.held.items()):
            held = f"holds {quantity} {level.item}"
            record = reading.orders.get(order_id)
            if record is None:
                record = reading.late.get(order_id)
                if record is None:
                    yield Violation("stock_hold", order_id, f"{held}, but there is no such order")
                    continue
            elif record.outcome is not None:
                yield Violation("stock_hold", order_id, f"{held}, but it {_ended(record)}")
                continue
            elif (ended := _ended_without_outcome(reading, order_id)) is not None:
                yield Violation(
                    "stock_hold",
                    order_id,
                    f"{held}, but its workflow ended {ended} without an outcome",
                )
                continue
            if (record.item, record.quantity) != (level.item, quantity):
                yield Violation(
                    "stock_hold",
                    order_id,
                    f"{held}, but the order is for {record.quantity} {record.item}",
                )


def _units(records: Iterator[OrderRecord], item: str) -> int:
    return sum(record.quantity for record in records if record.item == item)


def check_stock(reading: StoreReading) -> Iterator[Violation]:
    """Per item: the stock at the last reset plus the restocks since (`stock`) is what is
    available plus reserved plus sold, nothing is negative, the reserved units are the holds,
    and the units ever sold (`sold_total`) are the processed orders' (give or take the orders
    in flight that hold nothing, which may have committed by the time the stock was read)."""
    for level in reading.stock:
        item = level.item
        if min(level.quantity, level.reserved, level.sold) < 0:
            yield Violation(
                "stock_balance",
                None,
                f"{item}: a negative count (available {level.quantity}, "
                f"reserved {level.reserved}, sold {level.sold})",
            )
        counted = level.quantity + level.reserved + level.sold
        if counted != level.stock:
            yield Violation(
                "stock_balance",
                None,
                f"{item}: available {level.quantity} + reserved {level.reserved} + sold "
                f"{level.sold} = {counted}, but initial stock plus restocks is {level.stock}",
            )
        if sum(level.held.values()) != level.reserved:
            yield Violation(
                "stock_balance",
                None,
                f"{item}: reserved {level.reserved}, but the holds add up to "
                f"{sum(level.held.values())}",
            )
        if level.sold_total is None:
            continue
        processed = _units(
            (r for r in reading.orders.values() if r.outcome is not None and r.outcome.processed),
            item,
        )
        # May have committed by the time the stock was read: orders in flight that hold
        # nothing then, and every order that appeared during the audit (whatever it shows now).
        undecided = _units(
            (
                r
                for r in reading.orders.values()
                if r.outcome is None and r.order_id not in level.held
            ),
            item,
        ) + _units((r for r in reading.late.values() if r and r.order_id not in level.held), item)
        if not processed <= level.sold_total <= processed + undecided:
            in_flight = (
                f" (up to {processed + undecided} with orders in flight)" if undecided else ""
            )
            yield Violation(
                "stock_balance",
                None,
                f"{item}: {level.sold_total} units sold in all, but processed orders account "
                f"for {processed}{in_flight}",
            )


def check_decisions(reading: StoreReading) -> Iterator[Violation]:
    """A recorded decision is the order's outcome: a rejected or cancelled order ends so (or out
    of stock, when that came first) and never reaches payment; an approved one is processed, or
    ends out of stock or at a failed payment, never as another decision or the timeout says."""
    for order_id, record in reading.orders.items():
        if record.decision is None or record.outcome is None:
            continue
        reason = None if record.outcome.processed else record.outcome.reason
        if reason not in _OUTCOMES_ALLOWED[record.decision.decision]:
            yield Violation(
                "decision", order_id, f"{record.decision.describe()}, but it {_ended(record)}"
            )


def visible_reason(record: OrderRecord, snapshot: WorkflowSnapshot | None) -> str | None:
    """Why an unfinished order may rightly be late, as a client or manager can see it."""
    if record.undelivered():
        return "a manager's action waits for delivery"
    if snapshot is not None and snapshot.status == "SUSPENDED":
        return "its workflow is suspended"
    if snapshot is not None and snapshot.retrying is not None:
        # The store or sidecar failed its step; the order shows it (`retrying`) and goes on.
        return f"its step is being retried ({snapshot.retrying.reason})"
    return None


def deadline(record: OrderRecord, rules: AuditRules) -> datetime:
    wait = rules.approval_timeout_seconds if record.approval_required else 0.0
    return record.created_at + timedelta(seconds=wait + rules.grace_seconds)


def check_unfinished(reading: StoreReading, rules: AuditRules) -> Iterator[Violation]:
    """An order without an outcome is in flight: its workflow has not ended, and it is within
    its deadline or shows why not."""
    for order_id, record in reading.orders.items():
        if record.outcome is not None:
            continue
        ended = _ended_without_outcome(reading, order_id)
        if ended is not None:
            yield Violation(
                "unfinished", order_id, f"its workflow ended {ended} without recording an outcome"
            )
            continue
        snapshot = reading.workflows.get(order_id)
        due = deadline(record, rules)
        if reading.now > due and visible_reason(record, snapshot) is None:
            late = (reading.now - due).total_seconds()
            if snapshot is None and order_id in reading.waiting_to_start:
                # Accepted, PENDING, its start retried by every replica: the engine has not
                # taken it for all this time. Late, and this is why.
                why = "its workflow has not started: the engine has not taken the start outbox's tries"
            else:
                where = "no workflow" if snapshot is None else f"step {snapshot.step or 'none'}"
                why = f"at {where}, with no reason shown"
            yield Violation(
                "unfinished",
                order_id,
                f"unfinished {late:.0f}s past its deadline ({due.isoformat()}), {why}",
            )


def _counts(reading: StoreReading) -> dict[str, int]:
    records = reading.orders.values()
    finished = [r for r in records if r.outcome is not None]
    statuses = [entry.get("status") for entry in reading.payments.values()]
    return {
        "orders": len(reading.orders),
        "finished": len(finished),
        "processed": sum(1 for r in finished if r.outcome is not None and r.outcome.processed),
        "in_flight": len(reading.orders) - len(finished),
        "listed_without_record": len(reading.listed_without_record),
        "arrived_during_audit": len(reading.late),
        "waiting_to_start": len(reading.waiting_to_start),
        "payments_paid": statuses.count("paid"),
        "payments_refunded": statuses.count("refunded"),
        "items": len(reading.stock),
        "holds": sum(len(level.held) for level in reading.stock),
        "items_sales_unverified": sum(1 for level in reading.stock if level.sold_total is None),
    }


def audit(reading: StoreReading, rules: AuditRules) -> AuditReport:
    """Every invariant over one reading of the store."""
    violations = [
        *check_payments(reading),
        *check_holds(reading),
        *check_stock(reading),
        *check_decisions(reading),
        *check_unfinished(reading, rules),
    ]
    return AuditReport(_counts(reading), violations)
