"""The supervisor's decisions, on fake processes and a fake clock (no sleeps, no real processes)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from devstack.stack.supervisor import Condition, Policy, Supervisor, describe_exit

POLICY = Policy(
    backoff_initial=1.0,
    backoff_max=8.0,
    stable_after=30.0,
    crash_limit=5,
    crash_window=60.0,
    hang_after=10.0,
    start_timeout=90.0,
    condition_grace=20.0,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeComponents:
    """Processes as the supervisor sees them: a return code per name, launches and kills."""

    def __init__(self, names: list[str]) -> None:
        self.codes: dict[str, int | None] = dict.fromkeys(names)
        self.healthy: dict[str, bool] = dict.fromkeys(names, True)
        self.pids = dict.fromkeys(names, 100)
        self.launched: list[str] = []
        self.killed: list[str] = []
        self.fail_launch: set[str] = set()

    def returncode(self, name: str) -> int | None:
        return self.codes[name]

    def launch(self, name: str) -> int:
        if name in self.fail_launch:
            raise FileNotFoundError(f"no such binary: {name}")
        self.launched.append(name)
        self.codes[name] = None
        self.healthy[name] = True
        self.pids[name] += 1
        return self.pids[name]

    def kill(self, name: str) -> None:
        self.killed.append(name)
        self.codes[name] = -9

    def log_path(self, name: str) -> Path:
        return Path(f"/logs/{name}.log")

    def probe(self, name: str) -> str | None:
        return None if self.healthy[name] else f"{name} does not answer"


NAMES = ["redis", "daprd", "app"]


def make(
    conditions: list[Condition] | None = None, policy: Policy = POLICY
) -> tuple[Supervisor, FakeComponents, Clock, list[str]]:
    components = FakeComponents(NAMES)
    clock = Clock()
    lines: list[str] = []
    probes = {name: (lambda n=name: components.probe(n)) for name in NAMES}
    supervisor = Supervisor(
        components, NAMES, probes, policy, lines.append, conditions or [], clock=clock
    )
    return supervisor, components, clock, lines


def run_for(supervisor: Supervisor, clock: Clock, seconds: float, step: float = 1.0) -> None:
    elapsed = 0.0
    while elapsed < seconds:
        supervisor.tick()
        clock.advance(step)
        elapsed += step


def test_exit_status_names_the_signal() -> None:
    assert describe_exit(-9) == "-9 (SIGKILL)"
    assert describe_exit(-15) == "-15 (SIGTERM)"
    assert describe_exit(3) == "3"


def test_a_healthy_stack_is_left_alone() -> None:
    supervisor, components, clock, lines = make()
    run_for(supervisor, clock, 120)
    assert components.launched == []
    assert components.killed == []
    assert lines == []


def test_an_exited_component_is_restarted_after_the_backoff_and_logged() -> None:
    supervisor, components, clock, lines = make()
    supervisor.tick()
    components.codes["daprd"] = -9
    supervisor.tick()
    assert lines == [
        "daprd exited with status -9 (SIGKILL); restarting in 1s"
        " (failure 1 of 5 allowed within 60s)"
    ]
    assert components.launched == []  # not before the delay
    clock.advance(1.0)
    supervisor.tick()
    assert components.launched == ["daprd"]
    assert lines[-1] == "daprd restarted (pid 101)"
    assert supervisor.gave_up is None


def test_backoff_doubles_while_a_component_keeps_failing_and_caps() -> None:
    policy = Policy(backoff_initial=1.0, backoff_max=4.0, crash_limit=100, crash_window=60.0)
    supervisor, components, clock, lines = make(policy=policy)
    delays = []
    for _ in range(5):
        components.codes["redis"] = 1
        supervisor.tick()
        delays.append(lines[-1].split("restarting in ")[1].split("s")[0])
        clock.advance(float(delays[-1]))
        supervisor.tick()  # restarts
    assert delays == ["1", "2", "4", "4", "4"]


def test_backoff_starts_over_after_a_long_healthy_run() -> None:
    supervisor, components, clock, lines = make()
    for _ in range(2):
        components.codes["app"] = 1
        supervisor.tick()
        clock.advance(5)
        supervisor.tick()
    run_for(supervisor, clock, 40)  # healthy for longer than stable_after
    components.codes["app"] = 1
    supervisor.tick()
    assert "restarting in 1s" in lines[-1]


def test_five_failures_within_a_minute_stop_the_stack_naming_the_component_and_its_log() -> None:
    supervisor, components, clock, lines = make()
    for _ in range(4):
        components.codes["daprd"] = 2
        supervisor.tick()
        clock.advance(8)
        supervisor.tick()
    assert supervisor.gave_up is None
    components.codes["daprd"] = 2
    supervisor.tick()
    assert supervisor.gave_up is not None
    assert "daprd failed 5 times within 60s" in supervisor.gave_up
    assert "/logs/daprd.log" in supervisor.gave_up
    assert supervisor.gave_up_on == "daprd"
    assert lines[-1] == supervisor.gave_up
    launched = len(components.launched)
    run_for(supervisor, clock, 30)
    assert len(components.launched) == launched  # nothing is restarted after giving up


def test_failures_spread_over_more_than_the_window_never_give_up() -> None:
    supervisor, components, clock, _ = make()
    for _ in range(10):
        components.codes["redis"] = -9
        supervisor.tick()
        run_for(supervisor, clock, 20)
    assert supervisor.gave_up is None
    assert components.launched == ["redis"] * 10


def test_a_component_that_stops_answering_is_killed_and_restarted_with_the_reason() -> None:
    supervisor, components, clock, lines = make()
    run_for(supervisor, clock, 3)
    components.healthy["daprd"] = False  # e.g. SIGSTOP
    run_for(supervisor, clock, 10)
    assert components.killed == []  # 9 s of silence is not yet a hang
    supervisor.tick()
    assert components.killed == ["daprd"]
    assert lines[0] == (
        "watchdog: daprd hung: daprd does not answer, for 10s; killing daprd (SIGKILL) to restart it"
    )
    assert lines[1].startswith("daprd killed by the watchdog; restarting in 1s")
    clock.advance(1)
    supervisor.tick()
    assert components.launched == ["daprd"]
    assert supervisor.remedies == 1


def test_a_probe_that_recovers_in_time_resets_the_hang_clock() -> None:
    supervisor, components, clock, _ = make()
    supervisor.tick()
    for _ in range(3):
        components.healthy["redis"] = False
        run_for(supervisor, clock, 8)
        components.healthy["redis"] = True
        run_for(supervisor, clock, 1)
    assert components.killed == []


def test_a_restarted_component_gets_the_start_timeout_before_it_counts_as_hung() -> None:
    supervisor, components, clock, lines = make()
    components.codes["app"] = -9
    supervisor.tick()
    clock.advance(1)
    supervisor.tick()  # relaunched
    components.healthy["app"] = False  # still starting
    run_for(supervisor, clock, 89)
    assert components.killed == []
    run_for(supervisor, clock, 2)
    assert components.killed == ["app"]
    assert "app not healthy 90s after it started" in lines[-2]


def test_a_hang_watchdog_of_zero_never_kills() -> None:
    policy = Policy(hang_after=0.0)
    supervisor, components, clock, _ = make(policy=policy)
    supervisor.tick()
    components.healthy["redis"] = False
    run_for(supervisor, clock, 60)
    assert components.killed == []


def test_a_failing_launch_counts_as_a_failure_and_is_retried() -> None:
    supervisor, components, clock, lines = make()
    components.codes["redis"] = 1
    components.fail_launch.add("redis")
    supervisor.tick()
    clock.advance(1)
    supervisor.tick()
    assert "redis could not be started: no such binary: redis; restarting in 2s" in lines[-1]
    components.fail_launch.clear()
    clock.advance(2)
    supervisor.tick()
    assert components.launched == ["redis"]


def test_a_component_started_by_someone_else_meanwhile_is_not_started_twice() -> None:
    supervisor, components, clock, lines = make()
    components.codes["app"] = -9
    supervisor.tick()
    components.codes["app"] = None  # restarted by hand during the backoff
    clock.advance(1)
    supervisor.tick()
    assert components.launched == []
    assert lines[-1] == "app is running again; no restart needed"


class Wedge:
    def __init__(self) -> None:
        self.problem: str | None = None
        self.checks = 0

    def __call__(self) -> str | None:
        self.checks += 1
        return self.problem


def test_a_condition_that_persists_past_the_grace_restarts_its_target() -> None:
    wedge = Wedge()
    supervisor, components, clock, lines = make([Condition("daprd", wedge)])
    run_for(supervisor, clock, 5)
    wedge.problem = "daprd counts no connected workflow worker while the app runs one"
    run_for(supervisor, clock, 20)
    assert components.killed == []
    supervisor.tick()
    assert components.killed == ["daprd"]
    assert lines[0] == (
        "watchdog: daprd counts no connected workflow worker while the app runs one, for 20s;"
        " killing daprd (SIGKILL) to restart it"
    )


def test_a_condition_that_clears_within_the_grace_does_nothing() -> None:
    wedge = Wedge()
    supervisor, components, clock, _ = make([Condition("daprd", wedge)])
    wedge.problem = "no worker"
    run_for(supervisor, clock, 15)  # e.g. the app replacing its worker
    wedge.problem = None
    run_for(supervisor, clock, 1)
    wedge.problem = "no worker"
    run_for(supervisor, clock, 15)
    assert components.killed == []


def test_a_condition_is_not_held_against_daprd_while_another_component_is_down() -> None:
    wedge = Wedge()
    supervisor, components, clock, _ = make([Condition("daprd", wedge)])
    wedge.problem = "no worker"
    components.codes["app"] = -9  # the app is gone: of course no worker is connected
    supervisor.tick()
    checks = wedge.checks
    clock.advance(0.5)
    supervisor.tick()
    assert wedge.checks == checks  # not even asked
    clock.advance(0.5)
    supervisor.tick()
    assert components.launched == ["app"]
    components.healthy["app"] = False  # restarted but not answering yet
    run_for(supervisor, clock, 60)
    assert wedge.checks == checks
    assert "daprd" not in components.killed


def test_a_condition_for_a_component_not_supervised_is_ignored() -> None:
    wedge = Wedge()
    wedge.problem = "anything"
    supervisor, components, clock, _ = make([Condition("placement", wedge)])
    run_for(supervisor, clock, 60)
    assert wedge.checks == 0
    assert components.killed == []


def test_the_thread_stops_acting_on_pause_and_ends_only_when_released() -> None:
    components = FakeComponents(NAMES)
    lines: list[str] = []
    ticked = threading.Event()

    def probe() -> str | None:
        ticked.set()
        return None

    supervisor = Supervisor(components, NAMES, {"redis": probe}, POLICY, lines.append)
    supervisor.start(interval=0.01)
    assert ticked.wait(5)
    supervisor.pause()
    # The loop has ended (idle): a component stopped now by the stack is not restarted.
    assert supervisor._idle.is_set()
    components.codes["redis"] = -9
    assert supervisor._thread is not None
    assert supervisor._thread.is_alive()  # still the parent of what it started
    supervisor.finish()
    assert not supervisor._thread.is_alive()


def test_a_crashing_tick_is_reported_as_giving_up() -> None:
    components = FakeComponents(NAMES)
    reported = threading.Event()

    def broken() -> str | None:
        raise RuntimeError("probe bug")

    supervisor = Supervisor(components, NAMES, {"redis": broken}, POLICY, lambda _: reported.set())
    supervisor.start(interval=0.01)
    assert reported.wait(5)
    supervisor.pause()
    supervisor.finish()
    assert supervisor.gave_up == "the supervisor itself failed: RuntimeError('probe bug')"


@pytest.mark.parametrize("limit", [1, 2])
def test_the_crash_limit_is_a_setting(limit: int) -> None:
    supervisor, components, clock, _ = make(policy=Policy(crash_limit=limit))
    for _ in range(limit):
        components.codes["redis"] = 1
        supervisor.tick()
        clock.advance(1)
        supervisor.tick()
    assert supervisor.gave_up is not None


def test_times_are_read_after_a_slow_probe_answers() -> None:
    """A probe of a frozen process takes its whole timeout: the restart delay starts when the
    remedy is reported, not when the round began."""
    components = FakeComponents(NAMES)
    clock = Clock()
    lines: list[str] = []

    def slow_frozen_probe() -> str | None:
        clock.advance(2.0)  # the probe's timeout
        return "no answer within 2s"

    probes = {"daprd": slow_frozen_probe}
    supervisor = Supervisor(components, NAMES, probes, POLICY, lines.append, clock=clock)
    supervisor._state["daprd"].healthy_seen = True
    killed_at = None
    while not components.killed:
        supervisor.tick()
        killed_at = clock.now
        clock.advance(1.0)
    assert lines[0].startswith("watchdog: daprd hung: no answer within 2s, for 12s")
    assert killed_at is not None
    clock.now = killed_at + 0.99
    supervisor.tick()
    assert components.launched == []
    clock.now = killed_at + 1.0
    supervisor.tick()
    assert components.launched == ["daprd"]
