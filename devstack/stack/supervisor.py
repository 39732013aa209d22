"""Keep the local stack serving: restart what exits, replace what hangs, give up on a crash loop.

`make run` is what a developer starts first, so it behaves like compose's
`restart: unless-stopped` plus the health checks compose would run: a component that exits is
started again after a growing delay, one that is up but not answering its health probe within a
deadline (frozen with SIGSTOP, deadlocked) is killed with SIGKILL and started again, and daprd is
replaced when it stops routing work to the app's workflow worker (the Dapr 1.18.2 wedge, see the
README). Only a component failing `crash_limit` times within `crash_window` seconds stops the
stack, because restarting it again would only hide a broken configuration.

The supervisor knows the stack only through `Components` and plain probe callables, and reads
time from an injected clock, so its decisions are unit-tested without processes or sleeps.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

# A health probe answers None when the component is fine, otherwise why it is not. It must
# return within its own deadline: the supervisor runs probes one after the other.
Probe = Callable[[], "str | None"]


class Components(Protocol):
    """What the supervisor needs from the stack (devstack.stack.Stack provides it)."""

    def returncode(self, name: str) -> int | None:
        """None while the component's process runs, its exit status once it has ended (reaped)."""

    def launch(self, name: str) -> int:
        """Start the component's process without waiting for it to be healthy; its pid."""

    def kill(self, name: str) -> None:
        """SIGKILL the component's process and reap it (works on a SIGSTOPped process too)."""

    def log_path(self, name: str) -> Path: ...


@dataclass(frozen=True)
class Policy:
    """Thresholds, all in seconds except `crash_limit` (StackSettings sets them from env vars)."""

    backoff_initial: float = 1.0
    backoff_max: float = 30.0
    # A component that ran healthy this long before failing starts again from backoff_initial.
    stable_after: float = 30.0
    crash_limit: int = 5
    crash_window: float = 60.0
    # Healthy once, then failing its probe continuously this long: hung. 0 turns this off.
    hang_after: float = 10.0
    # Never healthy this long after a (re)start: hung while starting.
    start_timeout: float = 90.0
    # A `Condition` observed continuously this long while everything else is healthy. 0: off.
    condition_grace: float = 20.0


@dataclass(frozen=True)
class Condition:
    """A symptom that only a restart of `target` clears, checked while the whole stack is healthy
    (so a component that is merely restarting elsewhere is not mistaken for it)."""

    target: str
    check: Probe


def describe_exit(code: int) -> str:
    """`-9 (SIGKILL)` for a signal, the plain number for an exit code."""
    if code < 0:
        try:
            return f"{code} ({signal.Signals(-code).name})"
        except ValueError:
            return str(code)
    return str(code)


@dataclass
class _Component:
    launched_at: float
    healthy_seen: bool = False
    failing_since: float | None = None
    restart_at: float | None = None
    delay: float = 0.0
    failures: deque[float] = field(default_factory=deque)


class Supervisor:
    def __init__(
        self,
        components: Components,
        names: Sequence[str],
        probes: Mapping[str, Probe],
        policy: Policy,
        report: Callable[[str], None],
        conditions: Sequence[Condition] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._components = components
        self._names = tuple(names)
        self._probes = dict(probes)
        self._policy = policy
        self._report = report
        self._conditions = tuple(c for c in conditions if c.target in self._names)
        self._clock = clock
        now = clock()
        self._state = {name: _Component(launched_at=now) for name in self._names}
        self._condition_since: dict[int, float] = {}
        self.gave_up: str | None = None
        self.gave_up_on: str | None = None  # the component that failed too often
        self.remedies = 0
        self.restarts: Counter[str] = Counter()  # by component, for the launcher's metrics
        # run() in a thread: stop asks it to stop acting, idle says it has, release lets it end.
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._release = threading.Event()
        self._thread: threading.Thread | None = None

    # -- decisions --------------------------------------------------------------------------

    def tick(self) -> None:
        """One round: start what is due, notice exits, probe health, check conditions."""
        if self.gave_up is not None:
            return
        healthy = True
        for name in self._names:
            if not self._check(name):
                healthy = False
            if self.gave_up is not None:
                return
        self._check_conditions(stack_healthy=healthy)

    def _check(self, name: str) -> bool:
        """Handle one component; True when it is running and answered its probe this round."""
        # The clock is read afresh at each step: a probe of a frozen process takes its whole
        # timeout, and delays and durations are reported from when things happened.
        now = self._clock()
        state = self._state[name]
        policy = self._policy
        if state.restart_at is not None:
            if now < state.restart_at:
                return False
            state.restart_at = None
            if self._components.returncode(name) is None:
                # Started by someone else meanwhile (a test or a human): leave it be.
                self._report(f"{name} is running again; no restart needed")
            else:
                try:
                    pid = self._components.launch(name)
                except OSError as error:
                    self._failed(name, now, f"{name} could not be started: {error}")
                    return False
                self.restarts[name] += 1
                self._report(f"{name} restarted (pid {pid})")
            self._reset(state, now)
            return False
        code = self._components.returncode(name)
        if code is not None:
            self._failed(name, now, f"{name} exited with status {describe_exit(code)}")
            return False
        probe = self._probes.get(name)
        if probe is None:
            return True
        reason = probe()
        now = self._clock()
        if reason is None:
            state.healthy_seen = True
            state.failing_since = None
            return True
        if not state.healthy_seen:
            if now - state.launched_at >= policy.start_timeout:
                self._remedy(
                    name,
                    now,
                    f"{name} not healthy {policy.start_timeout:.0f}s after it started ({reason})",
                )
            return False
        if state.failing_since is None:
            state.failing_since = now
        if policy.hang_after > 0 and now - state.failing_since >= policy.hang_after:
            self._remedy(name, now, f"{name} hung: {reason}, for {now - state.failing_since:.0f}s")
        return False

    def _check_conditions(self, stack_healthy: bool) -> None:
        grace = self._policy.condition_grace
        for index, condition in enumerate(self._conditions):
            reason = condition.check() if stack_healthy and grace > 0 else None
            now = self._clock()
            if reason is None:
                self._condition_since.pop(index, None)
                continue
            since = self._condition_since.setdefault(index, now)
            if now - since >= grace:
                del self._condition_since[index]
                self._remedy(condition.target, now, f"{reason}, for {now - since:.0f}s")
                if self.gave_up is not None:
                    return

    def _remedy(self, name: str, now: float, reason: str) -> None:
        self.remedies += 1
        self._report(f"watchdog: {reason}; killing {name} (SIGKILL) to restart it")
        self._components.kill(name)
        self._failed(name, now, f"{name} killed by the watchdog")

    def _failed(self, name: str, now: float, what: str) -> None:
        state = self._state[name]
        policy = self._policy
        state.failures.append(now)
        while state.failures and now - state.failures[0] > policy.crash_window:
            state.failures.popleft()
        count = len(state.failures)
        if count >= policy.crash_limit:
            self.gave_up_on = name
            self.gave_up = (
                f"{what}: {name} failed {count} times within {policy.crash_window:.0f}s, so it is"
                f" not restarted again; stopping the stack. See its log: {self._components.log_path(name)}"
            )
            self._report(self.gave_up)
            return
        if state.healthy_seen and now - state.launched_at >= policy.stable_after:
            state.delay = policy.backoff_initial
        else:
            state.delay = min(max(state.delay * 2, policy.backoff_initial), policy.backoff_max)
        state.restart_at = now + state.delay
        self._report(
            f"{what}; restarting in {state.delay:.0f}s"
            f" (failure {count} of {policy.crash_limit} allowed within {policy.crash_window:.0f}s)"
        )

    @staticmethod
    def _reset(state: _Component, now: float) -> None:
        state.launched_at = now
        state.healthy_seen = False
        state.failing_since = None

    # -- running in a thread ----------------------------------------------------------------

    def start(self, interval: float = 1.0) -> None:
        self._thread = threading.Thread(
            target=self._run, args=(interval,), name="devstack-supervisor", daemon=True
        )
        self._thread.start()

    def _run(self, interval: float) -> None:
        try:
            while not self._stop.is_set() and self.gave_up is None:
                self.tick()
                self._stop.wait(interval)
        except Exception as error:
            # A supervisor that dies silently would leave `make run` looking healthy while
            # nothing restarts any more: say so and let the launcher stop the stack.
            self.gave_up = f"the supervisor itself failed: {error!r}"
            self._report(self.gave_up)
        finally:
            self._idle.set()
            # Stay alive until the stack has stopped what this thread started: the kernel sends
            # a child's parent-death signal (PR_SET_PDEATHSIG) when the *thread* that forked it
            # ends, and the stack stops components in order, app first, not all at once.
            self._release.wait()

    def pause(self) -> None:
        """Stop acting and wait until no restart is in progress (before the stack stops)."""
        self._stop.set()
        if self._thread is not None:
            self._idle.wait()

    def finish(self) -> None:
        """Let the thread end, once the components it started have been stopped."""
        self._stop.set()
        self._release.set()
        if self._thread is not None:
            self._thread.join()
