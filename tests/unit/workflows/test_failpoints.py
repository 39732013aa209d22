"""The activity deadline and the failpoints the fault matrix arms (app.workflows.failpoints)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app.errors import DependencyUnavailable
from app.workflows.contracts import ActivityName, ActivityRequest, OrderInput, StepStatus
from app.workflows.failpoints import (
    NO_FAILPOINTS,
    FailpointError,
    Failpoints,
    Rule,
    read_hits,
    write_rules,
)
from app.workflows.runtime import run_activity
from tests.fixtures.waiting import eventually
from tests.fixtures.workflow_driver import Script, run_workflow

ORDER = "order-1"
REQUEST = ActivityRequest(order_id=ORDER)


class Recorder:
    """An activity that counts its runs (and can take its time)."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.runs = 0
        self.seconds = seconds

    async def commit_inventory(self, request: ActivityRequest) -> str:
        self.runs += 1
        await asyncio.sleep(self.seconds)
        return f"done {request.order_id}"


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    return tmp_path / "failpoints.json"


def armed(rules_file: Path, *rules: Rule) -> Failpoints:
    write_rules(rules_file, list(rules))
    return Failpoints(rules_file)


async def test_without_failpoints_the_activity_runs_as_it_is() -> None:
    activity = Recorder()
    assert await run_activity(activity.commit_inventory, REQUEST, ORDER, 1.0) == "done order-1"
    assert not NO_FAILPOINTS.enabled


async def test_an_activity_past_its_deadline_fails_as_the_stores_absence() -> None:
    with pytest.raises(DependencyUnavailable, match=r"did not finish within 0\.05 s"):
        await run_activity(Recorder(seconds=10).commit_inventory, REQUEST, ORDER, 0.05)


async def test_a_timeout_of_the_activitys_own_is_not_taken_for_the_deadline() -> None:
    async def times_out(request: ActivityRequest) -> None:
        raise TimeoutError("its own")

    with pytest.raises(TimeoutError, match="its own"):
        await run_activity(times_out, REQUEST, ORDER, 5.0)


async def test_raise_fires_as_many_times_as_asked_then_lets_the_activity_through(
    rules_file: Path,
) -> None:
    activity = Recorder()
    failpoints = armed(
        rules_file, Rule(order_id=ORDER, activity="commit_inventory", action="raise", times=2)
    )
    for _ in range(2):
        with pytest.raises(FailpointError):
            await run_activity(activity.commit_inventory, REQUEST, ORDER, 1.0, failpoints)
    assert await run_activity(activity.commit_inventory, REQUEST, ORDER, 1.0, failpoints)
    assert activity.runs == 1  # raised at the start: the work ran only the third time
    assert [(h.order_id, h.activity, h.action) for h in read_hits(rules_file)] == [
        (ORDER, "commit_inventory", "raise")
    ] * 2


async def test_raise_at_the_end_fails_the_activity_after_its_work(rules_file: Path) -> None:
    activity = Recorder()
    failpoints = armed(
        rules_file,
        Rule(order_id=ORDER, activity="commit_inventory", at="end", action="raise", times=None),
    )
    for _ in range(3):
        with pytest.raises(FailpointError):
            await run_activity(activity.commit_inventory, REQUEST, ORDER, 1.0, failpoints)
    assert activity.runs == 3


async def test_the_count_survives_a_new_process(rules_file: Path) -> None:
    rule = Rule(order_id=ORDER, activity="commit_inventory", action="raise")
    with pytest.raises(FailpointError):
        await run_activity(
            Recorder().commit_inventory, REQUEST, ORDER, 1.0, armed(rules_file, rule)
        )
    # A restarted app reads the same hits file: the once-only rule has fired.
    restarted = Failpoints(rules_file)
    assert await run_activity(Recorder().commit_inventory, REQUEST, ORDER, 1.0, restarted)


async def test_hang_is_cut_short_by_the_deadline_once(rules_file: Path) -> None:
    activity = Recorder()
    failpoints = armed(rules_file, Rule(order_id=ORDER, activity="commit_inventory", action="hang"))
    with pytest.raises(DependencyUnavailable):
        await run_activity(activity.commit_inventory, REQUEST, ORDER, 0.1, failpoints)
    assert activity.runs == 0
    assert await run_activity(activity.commit_inventory, REQUEST, ORDER, 0.1, failpoints)


async def test_other_orders_and_activities_are_untouched(rules_file: Path) -> None:
    failpoints = armed(
        rules_file, Rule(order_id=ORDER, activity="commit_inventory", action="raise", times=None)
    )
    other = ActivityRequest(order_id="order-2")
    assert await run_activity(Recorder().commit_inventory, other, "order-2", 1.0, failpoints)

    async def release_inventory(request: ActivityRequest) -> str:
        return "released"

    assert await run_activity(release_inventory, REQUEST, ORDER, 1.0, failpoints) == "released"
    assert read_hits(rules_file) == []


@pytest.mark.parametrize("at", ["start", "end"])
async def test_pause_holds_past_the_deadline_until_released(rules_file: Path, at: str) -> None:
    activity = Recorder()
    pause = Rule.model_validate(
        {"order_id": ORDER, "activity": "commit_inventory", "at": at, "action": "pause"}
    )
    failpoints = armed(rules_file, pause)
    running = asyncio.create_task(
        run_activity(activity.commit_inventory, REQUEST, ORDER, 0.05, failpoints)
    )
    await eventually(lambda: asyncio.to_thread(read_hits, rules_file), bool, deadline_seconds=5)
    await asyncio.sleep(0.2)  # four deadlines' worth: the pause is not under the deadline
    assert not running.done()
    assert activity.runs == (1 if at == "end" else 0)
    write_rules(rules_file, [])
    async with asyncio.timeout(5):
        assert await running == "done order-1"
    assert activity.runs == 1


async def test_an_activity_cut_short_by_its_deadline_is_retried_by_the_workflow() -> None:
    # The deadline's error, as the activity raises it, reaches the workflow (past the SDK's
    # quick retries) and is retried like the store's absence: the order still completes.
    with pytest.raises(DependencyUnavailable) as cut_short:
        await run_activity(Recorder(seconds=10).commit_inventory, REQUEST, ORDER, 0.01)
    order = OrderInput(
        order_id=ORDER,
        item="computers",
        quantity=1,
        total_cost=500,
        approval_required=False,
        approval_timeout_seconds=200.0,
    ).model_dump()
    commit = ActivityName.COMMIT_INVENTORY

    run = run_workflow(order, Script(failures={commit: [cut_short.value] * 2}))

    assert run.result == {"processed": True, "reason": None}
    assert run.context.activity_names.count(commit) == 3
    shown = [StepStatus.decode(raw).retrying for raw in run.context.steps]
    assert [r.reason for r in shown if r is not None] == ["unavailable"] * 2
