"""One fault at a time on a supervised stack: a component killed with SIGKILL, or frozen with
SIGSTOP for a while and then let go with SIGCONT (unless the watchdog has replaced it by then,
which is its job). Nothing here restarts anything: each fault is healed by the stack's own
supervisor, and its recovery time is how long until the component passes its probe again,
/readyz answers 200 and a fresh order completes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Literal

from devstack.stack import SERVICE_ORDER, Stack
from soak.shop import Shop, Unanswered

log = logging.getLogger(__name__)
Action = Literal["kill", "freeze"]
ACTIONS: tuple[Action, ...] = ("kill", "freeze")
# How often a fault's state is looked at while it lasts or heals.
POLL_SECONDS = 0.25


@dataclass(frozen=True)
class Fault:
    action: Action
    component: str
    freeze_seconds: float = 0.0

    def __str__(self) -> str:
        if self.action == "kill":
            return f"kill -9 {self.component}"
        return f"SIGSTOP {self.component} for {self.freeze_seconds:.1f}s"


@dataclass
class Injected:
    fault: Fault
    at: float  # seconds into the soak
    healed_after: float | None = None  # seconds from the fault to healed; None: never
    replaced: bool = False  # a frozen component the watchdog killed (and the supervisor restarted)
    problem: str | None = None  # what had not healed by the deadline

    @property
    def description(self) -> str:
        replaced = ", replaced by the watchdog" if self.replaced else ""
        return f"{self.fault}{replaced}"


@dataclass
class Chaos:
    """Faults every uniform(`interval`) seconds, each one healed (or its deadline past) before
    the next. `plan` names the faults in order; without one each is drawn from `rng`: a
    component of the stack and an action, a freeze lasting uniform(`freeze`) seconds."""

    stack: Stack
    shop: Shop
    rng: random.Random
    interval: tuple[float, float]
    freeze: tuple[float, float]
    heal_seconds: float
    plan: tuple[Fault, ...] = ()
    started: float = 0.0

    def __post_init__(self) -> None:
        self.injected: list[Injected] = []
        self._probes = 0

    def next_fault(self) -> Fault:
        if self.plan:
            return self.plan[len(self.injected) % len(self.plan)]
        component = self.rng.choice(SERVICE_ORDER)
        action = self.rng.choice(ACTIONS)
        seconds = round(self.rng.uniform(*self.freeze), 1) if action == "freeze" else 0.0
        return Fault(action, component, seconds)

    async def run(self, stop: asyncio.Event, faults: int | None) -> None:
        """Inject until `stop` is set, or exactly `faults` of them if given (going on after
        `stop` until there are that many)."""
        while faults is None or len(self.injected) < faults:
            pause = self.rng.uniform(*self.interval)
            if faults is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), pause)
                if stop.is_set():
                    return
            else:
                await asyncio.sleep(pause)  # the schedule of the faults, not a wait on a state
            await self.inject(self.next_fault())
            if self.stack.supervision_failure is not None:
                return

    async def inject(self, fault: Fault) -> Injected:
        process = await self.running(fault.component)
        record = Injected(fault, at=time.monotonic() - self.started)
        self.injected.append(record)
        if process is None:
            record.problem = f"{fault.component} was not running when its fault was due"
            log.error("fault %d (%s) not injected: %s", len(self.injected), fault, record.problem)
            return record
        since = time.monotonic()
        log.info("fault %d at %.0f s: %s", len(self.injected), record.at, fault)
        if fault.action == "kill":
            process.send_signal(signal.SIGKILL)  # reaped by the supervisor, which restarts it
        else:
            record.replaced = await self.frozen(process, fault.freeze_seconds)
        record.problem = await self.healed(fault.component, since + self.heal_seconds)
        if record.problem is None:
            record.healed_after = time.monotonic() - since
            log.info(
                "fault %d (%s) healed after %.1f s",
                len(self.injected),
                record.description,
                record.healed_after,
            )
        else:
            log.error(
                "fault %d (%s) not healed: %s",
                len(self.injected),
                record.description,
                record.problem,
            )
        return record

    async def running(self, name: str) -> subprocess.Popen[bytes] | None:
        """The component's process once it runs (a fault never hits one still restarting);
        None if it does not within the healing deadline."""
        deadline = time.monotonic() + self.heal_seconds
        while time.monotonic() < deadline:
            process = self.stack.services[name].process
            if process is not None and process.poll() is None:
                return process
            await asyncio.sleep(POLL_SECONDS)
        return None

    @staticmethod
    async def frozen(process: subprocess.Popen[bytes], seconds: float) -> bool:
        """SIGSTOP for `seconds`, then SIGCONT; True if the watchdog killed it meanwhile.
        `Popen.send_signal` sends nothing to a process already reaped (no stray SIGCONT to a
        reused pid)."""
        process.send_signal(signal.SIGSTOP)
        try:
            # Returns early if the watchdog kills it (Popen's waits are safe across threads).
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(process.wait, seconds)
        finally:
            process.send_signal(signal.SIGCONT)
        return process.poll() is not None

    async def healed(self, name: str, deadline: float) -> str | None:
        """None once the component runs and passes its probe, /readyz is 200 and a new order
        has completed; otherwise what was still wrong at `deadline`."""
        probe = self.stack.liveness_probe(name)
        problem: str | None = f"{name} not running"
        while time.monotonic() < deadline:
            process = self.stack.services[name].process
            if process is None or process.poll() is not None:
                problem = f"{name} not running"
            elif (reason := await asyncio.to_thread(probe)) is not None:
                problem = f"{name}: {reason}"
            elif not await self.shop.ready():
                problem = "/readyz not 200"
            else:
                return await self.probe_order(deadline)
            if self.stack.supervision_failure is not None:
                return self.stack.supervision_failure
            await asyncio.sleep(POLL_SECONDS)
        return problem

    async def probe_order(self, deadline: float) -> str | None:
        """A fresh small order placed and followed to its end: the stack works again."""
        self._probes += 1
        order_id = f"soak-probe-{self._probes:03d}"
        try:
            await self.shop.create(order_id, "paperclip", 1, deadline)
            outcome = await self.shop.finished(order_id, deadline)
        except (Unanswered, RuntimeError) as error:
            return f"probe order {order_id}: {error}"
        if outcome is None:
            return f"probe order {order_id} not finished"
        if outcome["result"] != {"processed": True, "reason": None}:
            return f"probe order {order_id} ended {outcome['result']}"
        return None

    @property
    def probe_orders(self) -> list[str]:
        return [f"soak-probe-{number:03d}" for number in range(1, self._probes + 1)]
