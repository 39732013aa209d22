"""Runs the order workflow generator without Dapr, the way the durabletask executor does.

`ScriptedContext` implements the `WorkflowContext` protocol with real durabletask tasks
(`CompletableTask`, `WhenAnyTask`) and records what the workflow asked for. `run_workflow`
drives the generator like the executor's `resume()`: send a completed task's result in, throw a
failed task's `TaskFailedError` in, until `StopIteration` carries the workflow's output. A
`Script` says how each activity ends and how the approval wait is decided.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from dapr.ext.workflow import RetryPolicy
from dapr.ext.workflow._durabletask import task as durable
from dapr.ext.workflow._durabletask.internal import helpers

from app.workflows.contracts import APPROVAL_EVENT, CANCEL_EVENT, ActivityName
from app.workflows.order_processing import order_processing

# How the approval wait ends: the manager's event (approved or rejected), the timer, a cancel,
# or an approval with a cancel arriving in the same batch of history events.
Decision = Literal["approved", "rejected", "timeout", "cancel", "approved_and_cancelled"]

_MAX_YIELDS = 100


def _new_task() -> durable.CompletableTask[Any]:
    return durable.CompletableTask()  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class ActivityCall:
    name: str
    input: Any
    retry_policy: RetryPolicy | None


@dataclass
class Script:
    """How the world answers the workflow.

    `results`: activity name -> value it returns, or an Exception instance meaning the activity
    failed for good (retries exhausted). Unlisted activities return None; reserve_inventory
    returns True unless told otherwise.
    `decision`: how the approval wait ends (None: the test expects no approval wait).
    `cancel_while`: the cancel event arrives while this activity runs (its first call), so it is
    in history before the activity's completion and `cancel.is_complete` at the next boundary.
    """

    results: Mapping[str, Any] = field(default_factory=dict)
    decision: Decision | None = None
    cancel_while: str | None = None

    def outcome(self, activity: str) -> Any:
        defaults: dict[str, Any] = {ActivityName.RESERVE_INVENTORY: True}
        return {**defaults, **self.results}.get(activity)


class ScriptedContext:
    """The WorkflowContext the workflow sees; every request it makes is recorded."""

    def __init__(self, instance_id: str = "order-1") -> None:
        self._instance_id = instance_id
        self.calls: list[ActivityCall] = []
        self.steps: list[str] = []
        self.timers: list[tuple[timedelta, durable.CompletableTask[Any]]] = []
        self.waited_events: list[str] = []
        # Keyed by id() but holding the task too: a freed task's id could be reused by another.
        self._activity_tasks: dict[int, tuple[durable.CompletableTask[Any], str]] = {}
        self._pending_events: dict[str, list[durable.CompletableTask[Any]]] = {}
        self._buffered_events: dict[str, list[Any]] = {}

    # -- the WorkflowContext protocol --------------------------------------------------------

    @property
    def instance_id(self) -> str:
        return self._instance_id

    def set_custom_status(self, custom_status: str) -> None:
        self.steps.append(custom_status)

    def call_activity(
        self, activity: str, *, input: Any = None, retry_policy: RetryPolicy | None = None
    ) -> durable.CompletableTask[Any]:
        task = _new_task()
        self.calls.append(ActivityCall(activity, input, retry_policy))
        self._activity_tasks[id(task)] = (task, activity)
        return task

    def wait_for_external_event(self, name: str) -> durable.CompletableTask[Any]:
        self.waited_events.append(name)
        task = _new_task()
        buffered = self._buffered_events.get(name)
        if buffered:
            task.complete(buffered.pop(0))
        else:
            self._pending_events.setdefault(name, []).append(task)
        return task

    def create_timer(self, fire_at: timedelta) -> durable.CompletableTask[Any]:
        task = _new_task()
        self.timers.append((fire_at, task))
        return task

    # -- what the test (playing the engine) does ---------------------------------------------

    def raise_event(self, name: str, data: Any) -> None:
        """Deliver an external event: the oldest waiter gets it, else it is buffered (as Dapr)."""
        waiting = self._pending_events.get(name)
        if waiting:
            waiting.pop(0).complete(data)
        else:
            self._buffered_events.setdefault(name, []).append(data)

    def activity_name(self, task: object) -> str | None:
        found = self._activity_tasks.get(id(task))
        return found[1] if found is not None and found[0] is task else None

    @property
    def activity_names(self) -> list[str]:
        return [call.name for call in self.calls]

    @property
    def step(self) -> str | None:
        return self.steps[-1] if self.steps else None


@dataclass(frozen=True)
class WorkflowRun:
    result: dict[str, Any]
    context: ScriptedContext
    # The custom status at the moment the workflow blocked on each when_any.
    steps_while_waiting: list[str]


def _fail(task: durable.CompletableTask[Any], error: Exception, instance_id: str) -> None:
    # As the executor does for a TaskFailed history event: a real TaskFailedError with details.
    details = helpers.new_failure_details(error)
    task.fail(f"{instance_id}: Activity task failed: {error}", details)


class _Engine:
    """Plays the Dapr engine for one run: completes what the workflow waits on, per the script."""

    def __init__(self, ctx: ScriptedContext, script: Script) -> None:
        self.ctx = ctx
        self.script = script
        self.cancel_sent = False
        self.steps_while_waiting: list[str] = []

    def cancel(self) -> None:
        if not self.cancel_sent:
            self.cancel_sent = True
            self.ctx.raise_event(CANCEL_EVENT, {})

    def settle(self, task: durable.Task[Any]) -> None:
        if isinstance(task, durable.WhenAnyTask):
            self.steps_while_waiting.append(self.ctx.step or "")
        if task.is_complete:
            return
        name = self.ctx.activity_name(task)
        if name is not None:
            assert isinstance(task, durable.CompletableTask)
            self._settle_activity(task, name)
        elif isinstance(task, durable.WhenAnyTask):
            self._settle_approval_wait()
        else:
            raise AssertionError(f"the workflow waits on a task nobody completes: {task!r}")

    def _settle_activity(self, task: durable.CompletableTask[Any], name: str) -> None:
        if self.script.cancel_while == name:
            self.cancel()
        outcome = self.script.outcome(name)
        if isinstance(outcome, Exception):
            _fail(task, outcome, self.ctx.instance_id)
        else:
            task.complete(outcome)

    def _settle_approval_wait(self) -> None:
        decision = self.script.decision
        if decision is None:
            raise AssertionError(
                f"the workflow waits for approval (step {self.ctx.step!r}) "
                "but the script has no decision"
            )
        if decision in ("approved", "approved_and_cancelled"):
            self.ctx.raise_event(APPROVAL_EVENT, {"approval": True, "approver": "alice"})
        elif decision == "rejected":
            self.ctx.raise_event(APPROVAL_EVENT, {"approval": False, "approver": "alice"})
        elif decision == "timeout":
            self.ctx.timers[-1][1].complete(None)
        if decision in ("cancel", "approved_and_cancelled"):
            self.cancel()


def run_workflow(
    order_input: dict[str, Any], script: Script, ctx: ScriptedContext | None = None
) -> WorkflowRun:
    ctx = ctx or ScriptedContext(order_input.get("order_id", "order-1"))
    engine = _Engine(ctx, script)
    generator = order_processing(ctx, order_input)
    try:
        task = next(generator)
        for _ in range(_MAX_YIELDS):
            if not isinstance(task, durable.Task):
                raise AssertionError(f"the workflow yielded a non-task: {task!r}")
            engine.settle(task)
            # The executor's resume(): a failed task is thrown in, a completed one's result sent.
            if task.is_failed:
                task = generator.throw(task.get_exception())
            else:
                task = generator.send(task.get_result())
        raise AssertionError(f"the workflow did not finish within {_MAX_YIELDS} yields")
    except StopIteration as stop:
        result: dict[str, Any] = stop.value
        return WorkflowRun(result, ctx, engine.steps_while_waiting)
