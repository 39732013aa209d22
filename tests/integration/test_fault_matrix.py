"""The fault matrix on the real engine (issue 19): every activity under every fault.

For each column of tests/fixtures/fault_matrix.COLUMNS and each row (activity), orders of the
row's routes run with a failpoint on that activity (app.workflows.failpoints). A `raise` or
`hang` column is its own fault. A pause column pauses every order of the column inside its
activity, waits until all are there, then applies the fault once to the whole stack (kill -9 the
app; kill -9 daprd; refuse every write for OUTAGE_SECONDS) and releases them. Every order must
reach an outcome its route allows, and the auditor must find nothing; its findings are counted
per cell by order id (an order's violation outlives it: one audit at the end sees them all).
The stack is supervised, as under `make run`: the supervisor restarts what the test kills.

To save time on a 2-core machine the columns overlap where they cannot disturb each other: the
raise and hang columns and the first pause column's orders start together, and each pause column
starts its orders as soon as the previous fault is over and the stack is ready; a fault is applied
only once every order started before it has ended, but for the slow orders started ahead.
The slow orders are those whose stock commit fails for good (the refund row): they reach their
activity only after the SDK's retries of the commit (ACTIVITY_RETRY, ~25 s). Those of the later
pause columns start with the first, and each is held (paused before the commit's work, nothing
done) at its last commit attempt until its column starts: then it fails that attempt and reaches
its refund at once, instead of the column waiting ~25 s for it. While held they are short of
their own activity: an earlier fault finds them paused in a commit that does nothing, or between
its retries. Their own fault rule is armed only when they are let go, so one that got past its
hold early runs its refund without a fault and the cell says "not reached".

FAULT_MATRIX_REPORT=docs/fault-matrix.md writes the table there (`make fault-matrix`).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest

from app.workflows.contracts import PAST_PAYMENT_STEPS, ActivityName
from app.workflows.failpoints import Rule, read_hits, write_rules
from app.workflows.order_processing import ACTIVITY_RETRY
from devstack.stack import Stack
from tests.fixtures.audit import assert_audit_clean, audit_api
from tests.fixtures.fault_matrix import (
    COLUMNS,
    OUTAGE_SECONDS,
    ROWS,
    UNREACHABLE,
    Cell,
    Fault,
    Route,
    table,
)
from tests.fixtures.faults import RECOVERY_SECONDS, retrying, wait_ready, writes_refused
from tests.fixtures.manager import MANAGER
from tests.fixtures.orders import new_id
from tests.fixtures.stack import private_stack
from tests.fixtures.waiting import eventually

# Short, so a hang costs seconds; long enough that a healthy activity on a loaded machine is
# not cut short.
ACTIVITY_TIMEOUT_SECONDS = 3
# The slowest route reaches its activity after the commit's quick retries (~25 s).
STAGED_WITHIN_SECONDS = 90.0
STAGED_POLL_SECONDS = 0.2
DECISION_POLL_SECONDS = 0.2
CANCEL_POLL_SECONDS = 0.1
# A slow order started ahead of its column is held at its last commit attempt: the commit has
# failed this many times (the SDK makes ACTIVITY_RETRY.max_number_of_attempts).
HOLD_AFTER_FAILURES = ACTIVITY_RETRY.max_number_of_attempts - 1
HOLD_POLL_SECONDS = 0.2
# A cancel sent once the order is seen reserving its stock (or later) races the payment: the
# service refuses a cancel once the engine shows the payment step or the payment has started,
# the payment refuses to start once a cancel is recorded. Either may win.
CANCEL_FROM_STEPS = frozenset({"reserving_inventory", *PAST_PAYMENT_STEPS})


@dataclass
class MatrixStack:
    stack: Stack
    rules_file: Path
    started_at: float
    # Seconds from the start until the stack was up.
    start_seconds: float


@pytest.fixture(scope="module")
def matrix_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MatrixStack]:
    started_at = time.monotonic()
    data = tmp_path_factory.mktemp("fault-matrix")
    rules_file = data / "failpoints.json"
    write_rules(rules_file, [])
    app_env = {
        # Nothing times out at approval while a fault is recovered from.
        "APPROVAL_TIMEOUT_SECONDS": "300",
        "ACTIVITY_TIMEOUT_SECONDS": str(ACTIVITY_TIMEOUT_SECONDS),
        "FAILPOINTS_FILE": str(rules_file),
        # The workflow's own retry rounds (after the SDK's ~25 s) come quickly once the store is
        # back, as in tests/integration/test_store_outage.py.
        "INFRASTRUCTURE_RETRY_FIRST_INTERVAL_SECONDS": "1",
        "INFRASTRUCTURE_RETRY_MAX_INTERVAL_SECONDS": "2",
    }
    with private_stack(data, app_env=app_env, supervise=True) as running:
        yield MatrixStack(running, rules_file, started_at, time.monotonic() - started_at)


@dataclass
class MatrixOrder:
    order_id: str
    activity: ActivityName
    route: Route
    fault: Fault
    driver: asyncio.Task[dict[str, Any] | None] | None = None
    # When the driver saw the outcome (or gave up), by the monotonic clock.
    ended_at: float = 0.0
    # A slow order started ahead of its column: "ahead" (failing its commit), "held" (paused at
    # its last commit attempt), "released" (its column has started); None: started with it.
    ahead: Literal["ahead", "held", "released"] | None = None

    @property
    def slow(self) -> bool:
        return self.route.commit_fails

    def rules(self, with_fault: bool = True, held: bool = False) -> list[Rule]:
        rules = []
        if held:
            # Before the commit's work and before its failpoint raises: the commit does nothing.
            rules.append(
                Rule(
                    order_id=self.order_id,
                    activity=ActivityName.COMMIT_INVENTORY,
                    action="pause",
                )
            )
        if self.route.commit_fails:
            # Before its work, every time: the commit fails for good and the payment is refunded.
            rules.append(
                Rule(
                    order_id=self.order_id,
                    activity=ActivityName.COMMIT_INVENTORY,
                    action="raise",
                    times=None,
                )
            )
        if with_fault:
            fault = self.fault
            rules.append(
                Rule(
                    order_id=self.order_id, activity=self.activity, at=fault.at, action=fault.action
                )
            )
        return rules


@dataclass
class Column:
    fault: Fault
    orders: list[MatrixOrder]

    @property
    def slow(self) -> list[MatrixOrder]:
        return [order for order in self.orders if order.slow]

    # What happened when, in seconds since the stack began to start.
    timeline: list[tuple[str, float]] = field(default_factory=list)
    results: dict[str, dict[str, Any] | None] = field(default_factory=dict)


class Matrix:
    """The columns in flight on one stack, the failpoint rules they armed, and the findings."""

    def __init__(self, matrix: MatrixStack, api: httpx.AsyncClient) -> None:
        self.stack = matrix.stack
        self.started_at = matrix.started_at
        self.rules_file = matrix.rules_file
        self.api = api
        self.armed: dict[str, list[Rule]] = {}
        # (invariant, order id) -> detail: the auditor's findings.
        self.violations: dict[tuple[str, str | None], str] = {}
        self.columns: list[Column] = []

    def arm(self) -> None:
        write_rules(self.rules_file, [rule for rules in self.armed.values() for rule in rules])

    def column(self, fault: Fault) -> Column:
        orders = [
            MatrixOrder(new_id(activity.value.replace("_", "-")[:12]), activity, route, fault)
            for activity, routes in ROWS.items()
            for route in routes
        ]
        column = Column(fault, orders)
        self.columns.append(column)
        return column

    async def start(self, columns: list[Column], ahead: list[Column]) -> None:
        """Every order of `columns`, and the slow orders of `ahead` without their fault (to be
        held at their last commit attempt until `release_ahead`), created at once."""
        orders: list[MatrixOrder] = []
        for column in columns:
            fresh = [order for order in column.orders if order.ahead is None]
            for order in fresh:
                self.armed[order.order_id] = order.rules()
            self.mark(column, f"{len(fresh)} orders started")
            orders += fresh
        for column in ahead:
            for order in column.slow:
                order.ahead = "ahead"
                self.armed[order.order_id] = order.rules(with_fault=False)
            self.mark(column, f"{len(column.slow)} slow orders started ahead")
            orders += column.slow
        self.arm()
        await asyncio.gather(*(self.create(order) for order in orders))

    async def hold(self) -> None:
        """Pause each slow order started ahead at its last commit attempt, until let go: run
        beside the columns (its failures come seconds apart, the last two ~10 s)."""
        while ahead := [order for order in self.all_orders() if order.ahead == "ahead"]:
            hits = await asyncio.to_thread(read_hits, self.rules_file)
            failures = Counter(
                hit.order_id
                for hit in hits
                if hit.activity == ActivityName.COMMIT_INVENTORY.value and hit.action == "raise"
            )
            # Checked again after the read: the column may have let an order go meanwhile.
            due = [
                o
                for o in ahead
                if o.ahead == "ahead" and failures[o.order_id] >= HOLD_AFTER_FAILURES
            ]
            for order in due:
                order.ahead = "held"
                self.armed[order.order_id] = order.rules(with_fault=False, held=True)
            if due:
                self.arm()
            await asyncio.sleep(HOLD_POLL_SECONDS)

    def release_ahead(self, column: Column) -> None:
        """The column's slow orders let go, their fault armed: the last commit attempt fails and
        they reach their refund."""
        for order in column.orders:
            if order.ahead is not None:
                order.ahead = "released"
                self.armed[order.order_id] = order.rules()
        self.arm()
        self.mark(column, "slow orders let go")

    def all_orders(self) -> list[MatrixOrder]:
        return [order for column in self.columns for order in column.orders]

    async def create(self, order: MatrixOrder) -> None:
        body = {"item": order.route.item, "quantity": order.route.quantity}
        created = await retrying(
            lambda: self.api.post("/orders", json={**body, "order_id": order.order_id})
        )
        assert created.status_code in (200, 202), created.text
        order.driver = asyncio.create_task(self.follow(order))

    async def follow(self, order: MatrixOrder) -> dict[str, Any] | None:
        result = await drive(self.api, order)
        order.ended_at = time.monotonic()
        return result

    def mark(self, column: Column, what: str, at: float | None = None) -> None:
        column.timeline.append((what, (at or time.monotonic()) - self.started_at))

    async def staged(self, column: Column) -> None:
        """Every order of a pause column is paused inside its activity (or has finished without
        reaching it: a cancel won the race)."""

        def paused() -> set[tuple[str, str]]:
            # In the order's own activity: a held slow order pauses in its commit first.
            return {
                (hit.order_id, hit.activity)
                for hit in read_hits(self.rules_file)
                if hit.action == "pause"
            }

        async def waiting() -> list[str]:
            hits = await asyncio.to_thread(paused)
            return [
                order.order_id
                for order in column.orders
                if (order.order_id, order.activity.value) not in hits
                and not (order.driver and order.driver.done())
            ]

        await eventually(
            waiting,
            lambda left: not left,
            deadline_seconds=STAGED_WITHIN_SECONDS,
            interval=STAGED_POLL_SECONDS,
            what=f"every order of '{column.fault.title}' paused in its activity",
        )
        self.mark(column, "all paused")

    def release(self, column: Column) -> None:
        for order in column.orders:
            self.armed[order.order_id] = order.rules(with_fault=False)
        self.arm()

    async def apply(self, column: Column) -> None:
        """The column's fault, once, to the whole stack; then its orders are released."""
        then = column.fault.then
        self.mark(column, then)
        if then in ("kill app", "kill daprd"):
            os.kill(self.stack.pid(then.removeprefix("kill ")), signal.SIGKILL)
            self.release(column)
        elif then == "refuse writes":
            with writes_refused(self.stack, ""):
                self.release(column)
                # The fault is the duration itself: nothing to wait for but time.
                await asyncio.sleep(OUTAGE_SECONDS)
            self.mark(column, "writes allowed again")
        await wait_ready(self.api)
        self.mark(column, "ready again")

    async def finish(self, column: Column) -> None:
        assert all(order.driver is not None for order in column.orders)
        results = await asyncio.gather(*(order.driver for order in column.orders if order.driver))
        column.results = {
            order.order_id: result for order, result in zip(column.orders, results, strict=True)
        }
        self.mark(column, "every order ended", max(order.ended_at for order in column.orders))

    async def audit(self) -> None:
        """The auditor's findings, to count per cell by order id. Once, at the end: what it
        checks of a finished order (its payment, its hold, the stock it sold) stays as it is."""
        for violation in (await audit_api(self.api))["violations"]:
            key = (violation["invariant"], violation["order_id"])
            self.violations.setdefault(key, violation["detail"])

    def cells(self) -> dict[tuple[ActivityName, str], Cell]:
        hits = {(hit.order_id, hit.activity) for hit in read_hits(self.rules_file)}
        violated = [order_id for _, order_id in self.violations]
        cells: dict[tuple[ActivityName, str], Cell] = {}
        for column in self.columns:
            for activity in ROWS:
                cells[activity, column.fault.title] = Cell()
            for order in column.orders:
                cell = cells[order.activity, column.fault.title]
                cell.orders += 1
                reached = (order.order_id, order.activity.value) in hits
                cell.reached += reached
                if not reached and not order.route.cancel_at_payment:
                    # Only a cancel that won its race may keep an order from its failpoint.
                    cell.unexpected.append(f"{order.order_id} ({order.route.name}): not reached")
                cell.violations += violated.count(order.order_id)
                result = column.results.get(order.order_id)
                if result is None:
                    cell.unfinished += 1
                    cell.unexpected.append(f"{order.order_id} ({order.route.name}): no outcome")
                    continue
                outcome = result["reason"] or "processed"
                cell.outcomes[outcome] += 1
                if outcome not in order.route.outcomes:
                    cell.unexpected.append(f"{order.order_id} ({order.route.name}): {outcome}")
        return cells


async def _get(api: httpx.AsyncClient, order_id: str, wait: int) -> dict[str, Any] | None:
    """The order, or None while the stack cannot answer (a process restarting)."""
    try:
        response = await api.get(f"/orders/{order_id}", params={"wait": wait} if wait else None)
    except httpx.HTTPError:
        return None
    if response.status_code >= 500:
        return None
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def drive(api: httpx.AsyncClient, order: MatrixOrder) -> dict[str, Any] | None:
    """Follow the order to its outcome, deciding it and racing its payment with a cancel as its
    route says; its result, or None if it has none by the deadline."""
    route = order.route
    decide = route.decision is not None
    cancel = route.cancel_at_payment
    deadline = time.monotonic() + RECOVERY_SECONDS + STAGED_WITHIN_SECONDS + OUTAGE_SECONDS
    while time.monotonic() < deadline:
        found = await _get(api, order.order_id, 0 if decide or cancel else 10)
        if found is None:
            await asyncio.sleep(0.5)
            continue
        if found["result"] is not None:
            result: dict[str, Any] = found["result"]
            return result
        step = found["step"]
        if decide and step == "awaiting_approval":
            decide = not await _decided(api, order, order.route.decision == "cancel")
        if cancel and step in CANCEL_FROM_STEPS:
            cancel = not await _decided(api, order, cancelling=True)
        if decide or cancel:
            await asyncio.sleep(CANCEL_POLL_SECONDS if cancel else DECISION_POLL_SECONDS)
    return None


async def _decided(api: httpx.AsyncClient, order: MatrixOrder, cancelling: bool) -> bool:
    """Send the route's decision (or its cancel); False when the stack could not take it (a
    process restarting: sent again). A 409 is an answer too: the payment started first."""
    path = f"/orders/{order.order_id}/" + ("cancel" if cancelling else "approve")
    body = None if cancelling else {"approved": order.route.decision == "approve"}
    try:
        sent = await api.post(path, headers=MANAGER, json=body)
    except httpx.HTTPError:
        return False
    return sent.status_code < 500


def stray_violations(matrix: Matrix) -> list[tuple[str, str | None]]:
    """Findings of the auditor on an item (stock balance) or an order the matrix did not run."""
    ours = {order.order_id for order in matrix.all_orders()}
    return [key for key in matrix.violations if key[1] not in ours]


def report(
    matrix: Matrix,
    cells: dict[tuple[ActivityName, str], Cell],
    start_seconds: float,
    seconds: float,
) -> str:
    orders = sum(len(column.orders) for column in matrix.columns)
    lines = [
        "# Fault matrix",
        "",
        "Every order activity under every fault, on the real engine (daprd, placement, scheduler,",
        "Redis, the app; supervised as under `make run`). Written by",
        "`tests/integration/test_fault_matrix.py` when it runs with",
        "`FAULT_MATRIX_REPORT=docs/fault-matrix.md` (`make fault-matrix`); a unit test checks the",
        "rows and columns against the test's own. Each cell: orders run / violations the auditor",
        "found on them; `(n reached)` when fewer orders got to the activity (a cancel that won its",
        "race keeps an order from its stock commit).",
        "",
        *table(cells),
        "",
        f"Auditor findings on no order of the matrix: {len(stray_violations(matrix))}.",
        "",
        "## The faults",
        "",
        "- **raises**: the activity does its work, then fails (`FailpointError`), once. The SDK's",
        "  retry runs it again: the retry finds the work done.",
        "- **hangs past its deadline**: before its work it sleeps past `ACTIVITY_TIMEOUT_SECONDS`",
        f"  ({ACTIVITY_TIMEOUT_SECONDS} s here, 60 s by default), once; the deadline cuts it short",
        "  as `DependencyUnavailable` and it is retried.",
        "- **kill -9 app / daprd**: every order of the column paused inside the activity after its",
        "  work, before its result reached the engine; then one `kill -9`, the supervisor restarts",
        "  the process, the engine runs the activity again.",
        f"- **store writes refused {OUTAGE_SECONDS} s**: every order paused before the activity's",
        "  work; then a Redis ACL refuses every write to the app's keys (the engine's history too)",
        f"  for {OUTAGE_SECONDS} s while the activities run into it",
        "  (`tests/fixtures/faults.writes_refused`).",
        "",
        "Rows reached only on some paths get orders sent down them: `refund_payment` after a stock",
        "commit that fails every time (the SDK's quick retries, ~25 s, then the refund);",
        "in the later pause columns those orders start with the first column and are held, paused",
        "before the commit's work, at its last attempt until their column starts (so no column",
        "waits the ~25 s): an earlier fault finds them there or between the commit's retries,",
        "short of their own activity, whose fault is armed only when they are let go;",
        "`release_inventory` after a rejection or a cancel; `close_decisions` with too little stock;",
        "`read_actions` for each decision. `notify` and `request_approval` only log: the fault",
        "still applies to the activity around them.",
        "",
        "## Orders per row",
        "",
        "The cancel racing the payment is sent once the order is seen reserving its stock: it wins",
        "(cancelled) or loses (409, processed) as the engine's timing has it, so those counts vary",
        "from run to run.",
        "",
        "| Activity | Routes (every column) | Outcomes (all columns) |",
        "|---|---|---|",
    ]
    for activity, routes in ROWS.items():
        if activity in UNREACHABLE:
            lines.append(f"| `{activity.value}` | none: {UNREACHABLE[activity]} | |")
            continue
        outcomes: dict[str, int] = {}
        for column in matrix.columns:
            for name, count in cells[activity, column.fault.title].outcomes.items():
                outcomes[name] = outcomes.get(name, 0) + count
        shown = ", ".join(f"{name} {count}" for name, count in sorted(outcomes.items()))
        lines.append(
            f"| `{activity.value}` | {'; '.join(route.name for route in routes)} | {shown} |"
        )
    lines += [
        "",
        "## This run",
        "",
        f"{orders} orders; {seconds:.0f} s from the stack's start to the audit on a 2-core",
        f"machine shared with other test runs; the stack was up after {start_seconds:.0f} s. Each",
        "column, in seconds since the stack began to start:",
        "",
        *(
            f"- {column.fault.title}: "
            + ", ".join(f"{what} {at:.0f}" for what, at in column.timeline)
            for column in matrix.columns
        ),
        "",
    ]
    return "\n".join(lines)


async def test_every_activity_under_every_fault_ends_every_order_and_the_audit_is_clean(
    matrix_stack: MatrixStack,
) -> None:
    # Room for every order's long poll at once (three columns run together), beside the creates.
    async with httpx.AsyncClient(
        base_url=matrix_stack.stack.app_url,
        timeout=30.0,
        limits=httpx.Limits(max_connections=200),
    ) as api:
        for item in ("computers", "cars"):
            restocked = await api.post(
                "/inventory/restock", json={"item": item, "quantity": 2000}, headers=MANAGER
            )
            assert restocked.status_code == 200, restocked.text
        matrix = Matrix(matrix_stack, api)
        columns = [matrix.column(fault) for fault in COLUMNS]
        pausing = [column for column in columns if column.fault.pauses]
        # The raise and hang columns and the first pause column; the later pause columns' slow
        # orders ahead of them.
        await matrix.start(
            [column for column in columns if column not in pausing[1:]], ahead=pausing[1:]
        )
        holding = asyncio.create_task(matrix.hold())
        try:
            unfinished = [column for column in columns if column not in pausing]
            for column in pausing:
                if column is not pausing[0]:
                    matrix.release_ahead(column)
                    await matrix.start([column], ahead=[])
                await matrix.staged(column)
                # A fault on the whole stack waits for every order started before it (but the slow
                # orders held ahead of their column, short of their activity).
                for earlier in unfinished:
                    await matrix.finish(earlier)
                unfinished = []
                await matrix.apply(column)
                unfinished.append(column)
            for earlier in unfinished:
                await matrix.finish(earlier)
            await holding
        finally:
            # Done by now unless the test failed early: then it would wait forever.
            holding.cancel()
        await matrix.audit()
        seconds = time.monotonic() - matrix_stack.started_at

        cells = matrix.cells()
        written = report(matrix, cells, matrix_stack.start_seconds, seconds)
        print("\n" + written)
        target = os.environ.get("FAULT_MATRIX_REPORT")
        if target:
            await asyncio.to_thread(Path(target).write_text, written)

        assert [problem for cell in cells.values() for problem in cell.unexpected] == []
        assert matrix.violations == {}
        # Last: the auditor over every order on the stack.
        await assert_audit_clean(api, matrix_stack.stack)
