"""order_processing under the SDK's real orchestration executor, replayed from history.

The executor is what the worker runs for every work item: it replays the stored history through
the registered workflow (our wrapper, with the SDK's pydantic input handling) and returns the
new actions. Here a small loop plays the engine: it records each action as Dapr records it
(taskScheduled, timerCreated), answers activities, raises the manager's event, and hands the
executor the whole history again on each turn, so every turn is a replay of all turns before it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from dapr.ext.workflow._durabletask import worker as durable_worker
from dapr.ext.workflow._durabletask.internal import helpers
from dapr.ext.workflow._durabletask.internal import protos as pb

from app.errors import DependencyUnavailable
from app.workflows.activities import OrderActivities
from app.workflows.contracts import (
    APPROVAL_EVENT,
    WORKFLOW_NAME,
    ActivityName,
    ManagerAction,
    OrderInput,
    Step,
    StepStatus,
)
from app.workflows.order_processing import (
    CLOSE_DECISIONS_BY_RECORD,
    FINISH_WITH_NOTICE,
    MANAGER_ACTION_LOG,
    PAY_UNLESS_CANCELLED,
    RETRY_INFRASTRUCTURE,
)
from app.workflows.runtime import build_runtime

INSTANCE = "order-replay-1"
START = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
_LOG = logging.getLogger("replay-test")


class _NotCalled:
    def __getattr__(self, name: str) -> Any:
        raise AssertionError("the executor only orchestrates; activities run elsewhere")


def _registry() -> Any:
    runtime = build_runtime(
        OrderActivities(_NotCalled(), _NotCalled(), _NotCalled()), "127.0.0.1", 1
    )
    return runtime._WorkflowRuntime__worker._registry  # type: ignore[attr-defined]


def _timer_created(action: pb.WorkflowAction) -> pb.HistoryEvent:
    timer = action.createTimer
    created = pb.TimerCreatedEvent(fireAt=timer.fireAt)
    origin = timer.WhichOneof("origin")
    if origin is not None:
        getattr(created, origin).CopyFrom(getattr(timer, origin))
    return pb.HistoryEvent(eventId=action.id, timerCreated=created)


class Engine:
    """Records history the way daprd does and answers what the workflow asks for."""

    def __init__(
        self,
        order: OrderInput,
        approve: bool | None,
        time_out: bool = False,
        failures: Mapping[ActivityName, int] | None = None,
    ) -> None:
        self.history: list[pb.HistoryEvent] = []
        # Activity name -> how many of its first runs fail because the store is away (keyed by
        # the name the executor schedules, a plain string).
        self.failures = {str(name): count for name, count in (failures or {}).items()}
        # time_out: no manager answers; the approval timer fires instead.
        self.time_out = time_out
        self._timers: list[pb.WorkflowAction] = []
        self.turns: list[int] = []  # where each turn's new events start in the history
        self.scheduled: list[tuple[str, dict[str, Any]]] = []
        self.statuses: list[str] = []
        self.approve = approve
        self._event_sent = False
        self._clock = START
        self._new = [
            helpers.new_workflow_started_event(START),
            helpers.new_execution_started_event(
                WORKFLOW_NAME, INSTANCE, json.dumps(order.model_dump(mode="json"))
            ),
        ]

    def turn(self) -> durable_worker.ExecutionResults:
        executor = durable_worker._OrchestrationExecutor(_registry(), _LOG)
        results = executor.execute(INSTANCE, list(self.history), list(self._new))
        if results.patches:
            # As daprd does: the patches a turn ran with go onto that turn's workflowStarted
            # event, so every later replay takes the same path.
            self._new[0].workflowStarted.version.patches.extend(results.patches)
        self.turns.append(len(self.history))
        self.history.extend(self._new)
        self._clock += timedelta(seconds=1)
        self._new = [helpers.new_workflow_started_event(self._clock)]
        if results.encoded_custom_status:
            self.statuses.append(results.encoded_custom_status)
        return results

    def run(self) -> pb.CompleteWorkflowAction:
        for _ in range(80):
            results = self.turn()
            for action in results.actions:
                if action.HasField("completeWorkflow"):
                    return action.completeWorkflow
                if action.HasField("scheduleTask"):
                    self._answer_activity(action)
                elif action.HasField("createTimer"):
                    self.history.append(_timer_created(action))
                    self._timers.append(action)
                    if self._is_backoff(action):
                        self._fire(action)  # it fires, in the next turn
            if self.statuses[-1] == Step.AWAITING_APPROVAL and not self._event_sent:
                self._event_sent = True
                if self.time_out:
                    timer = self._timers[-1]
                    fired = pb.TimerFiredEvent(fireAt=timer.createTimer.fireAt, timerId=timer.id)
                    self._new.append(pb.HistoryEvent(eventId=-1, timerFired=fired))
                    continue
                assert self.approve is not None, "the workflow waits for an approval"
                payload = {"approval": self.approve, "approver": "alice"}
                self._new.append(
                    helpers.new_event_raised_event(APPROVAL_EVENT, json.dumps(payload))
                )
        raise AssertionError("the workflow did not complete within 80 turns")

    def _is_backoff(self, timer: pb.WorkflowAction) -> bool:
        """A retry's wait: the SDK's (activityRetry) or the workflow's own, created while it
        shows the step retrying. Not an event wait's timer, nor the approval timer."""
        origin = timer.createTimer.WhichOneof("origin")
        return origin == "activityRetry" or (
            origin == "createTimer" and self.statuses[-1].startswith("{")
        )

    def _fire(self, timer: pb.WorkflowAction) -> None:
        fired = pb.TimerFiredEvent(fireAt=timer.createTimer.fireAt, timerId=timer.id)
        self._new.append(pb.HistoryEvent(eventId=-1, timerFired=fired))

    def _answer_activity(self, action: pb.WorkflowAction) -> None:
        task = action.scheduleTask
        request = json.loads(task.input.value)
        self.scheduled.append((task.name, request))
        self.history.append(
            helpers.new_task_scheduled_event(action.id, task.name, task.input.value)
        )
        if self.failures.get(task.name, 0) > 0:
            self.failures[task.name] -= 1
            away = DependencyUnavailable(
                f"state write of {task.name} failed: 500 connection refused"
            )
            self._new.append(helpers.new_task_failed_event(action.id, away))
            return
        result = None
        if task.name in (ActivityName.RESERVE_INVENTORY, ActivityName.PAY_UNLESS_CANCELLED):
            result = json.dumps(True)  # reserved; paid (no cancel recorded)
        elif task.name == ActivityName.CHECK_DECISION:  # what the service recorded
            result = json.dumps("approved" if self.approve else "rejected")
        elif task.name == ActivityName.READ_ACTIONS:  # the same, as the order's action log
            kind = "approve" if self.approve else "reject"
            logged = ManagerAction(seq=1, kind=kind, by="alice", at=START)
            result = json.dumps([logged.model_dump(mode="json")])
        elif task.name == ActivityName.CLOSE_DECISIONS:  # no decision came before
            result = json.dumps(None)
        self._new.append(helpers.new_task_completed_event(action.id, result))


def _order(total: int, approval_required: bool) -> OrderInput:
    return OrderInput(
        order_id=INSTANCE,
        item="cars",
        quantity=total // 15_000,
        total_cost=total,
        approval_required=approval_required,
        approval_timeout_seconds=200.0,
    )


def test_an_approved_order_replays_to_completion_through_the_sdk_executor() -> None:
    engine = Engine(_order(60_000, approval_required=True), approve=True)

    completion = engine.run()

    assert json.loads(completion.result.value) == {"processed": True, "reason": None}
    assert [name for name, _ in engine.scheduled] == [
        ActivityName.NOTIFY,
        ActivityName.RESERVE_INVENTORY,
        ActivityName.REQUEST_APPROVAL,
        ActivityName.READ_ACTIONS,
        ActivityName.PAY_UNLESS_CANCELLED,
        ActivityName.COMMIT_INVENTORY,
        ActivityName.FINISH_ORDER,
    ]
    # Activity inputs travel as the ActivityRequest's JSON form, built by the SDK.
    assert engine.scheduled[1][1] == {
        "order_id": INSTANCE,
        "item": "cars",
        "quantity": 4,
        "amount": 60_000,
        "message": "",
    }
    assert Step.AWAITING_APPROVAL in engine.statuses
    assert engine.statuses[-1] == Step.DONE


def test_a_rejected_order_releases_its_stock_and_reports_why() -> None:
    engine = Engine(_order(60_000, approval_required=True), approve=False)

    completion = engine.run()

    assert json.loads(completion.result.value) == {"processed": False, "reason": "rejected"}
    assert [name for name, _ in engine.scheduled[-2:]] == [
        ActivityName.RELEASE_INVENTORY,
        ActivityName.FINISH_ORDER,
    ]
    assert engine.scheduled[-1][1]["outcome"]["reason"] == "rejected"


def _recorded_without(
    monkeypatch: pytest.MonkeyPatch, engine: Engine, later: set[str]
) -> pb.CompleteWorkflowAction:
    """Run `engine` as a worker from before the `later` patches would have: they stay off and
    out of the history it records."""
    real_is_patched = durable_worker._RuntimeOrchestrationContext.is_patched

    def known_then(self: Any, name: str) -> bool:
        return False if name in later else real_is_patched(self, name)

    monkeypatch.setattr(durable_worker._RuntimeOrchestrationContext, "is_patched", known_then)
    try:
        return engine.run()
    finally:
        monkeypatch.undo()


def _replayed_by_todays_code(engine: Engine) -> durable_worker.ExecutionResults:
    """What a worker that restarted on today's code does: everything but the last turn is old
    history, replayed."""
    last_turn = engine.turns[-1]
    executor = durable_worker._OrchestrationExecutor(_registry(), _LOG)
    return executor.execute(INSTANCE, engine.history[:last_turn], engine.history[last_turn:])


def _completions(results: durable_worker.ExecutionResults) -> list[pb.CompleteWorkflowAction]:
    return [a.completeWorkflow for a in results.actions if a.HasField("completeWorkflow")]


def test_replaying_the_recorded_history_in_one_go_gives_the_same_completion() -> None:
    engine = Engine(_order(15_000, approval_required=False), approve=None)
    completion = engine.run()

    assert _completions(_replayed_by_todays_code(engine)) == [completion]


def test_an_order_started_before_the_patch_replays_on_the_path_it_started(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its history, recorded by a worker without the patch, has no patch on it: replayed by
    today's code it still notifies and records the outcome as it did, and completes."""
    old = Engine(_order(15_000, approval_required=False), approve=None)
    completion = _recorded_without(
        monkeypatch,
        old,
        {
            FINISH_WITH_NOTICE,
            PAY_UNLESS_CANCELLED,
            CLOSE_DECISIONS_BY_RECORD,
            RETRY_INFRASTRUCTURE,
            MANAGER_ACTION_LOG,
        },
    )

    replayed = _replayed_by_todays_code(old)

    assert [name for name, _ in old.scheduled][-2:] == [
        ActivityName.NOTIFY,
        ActivityName.RECORD_OUTCOME,
    ]
    assert _completions(replayed) == [completion]
    assert not replayed.patches


def test_an_order_started_before_pay_unless_cancelled_replays_on_the_path_it_started(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Recorded by a worker that knew finish_order's patch but not the later ones: its history
    holds a process_payment task and only the first patch. Today's code replays it through
    process_payment, the patches it lacks stay off, and it completes the same."""
    old = Engine(_order(15_000, approval_required=False), approve=None)
    completion = _recorded_without(
        monkeypatch,
        old,
        {PAY_UNLESS_CANCELLED, CLOSE_DECISIONS_BY_RECORD, RETRY_INFRASTRUCTURE, MANAGER_ACTION_LOG},
    )

    replayed = _replayed_by_todays_code(old)

    assert [name for name, _ in old.scheduled] == [
        ActivityName.NOTIFY,
        ActivityName.RESERVE_INVENTORY,
        ActivityName.PROCESS_PAYMENT,
        ActivityName.COMMIT_INVENTORY,
        ActivityName.FINISH_ORDER,
    ]
    assert _completions(replayed) == [completion]
    assert json.loads(completion.result.value) == {"processed": True, "reason": None}
    assert replayed.patches == [FINISH_WITH_NOTICE]


def test_a_new_order_records_the_patches_it_started_with() -> None:
    """They go into the first turn's history, so every later replay of the order (after a worker
    restart, say) takes the same paths."""
    engine = Engine(_order(15_000, approval_required=False), approve=None)
    first = engine.turn()

    assert set(first.patches or ()) == {
        FINISH_WITH_NOTICE,
        PAY_UNLESS_CANCELLED,
        CLOSE_DECISIONS_BY_RECORD,
        RETRY_INFRASTRUCTURE,
        MANAGER_ACTION_LOG,
    }


def test_a_timed_out_order_closes_the_wait_on_its_record_through_the_sdk_executor() -> None:
    engine = Engine(_order(60_000, approval_required=True), approve=None, time_out=True)

    completion = engine.run()

    assert json.loads(completion.result.value) == {"processed": False, "reason": "approval_timeout"}
    assert [name for name, _ in engine.scheduled][-4:] == [
        ActivityName.REQUEST_APPROVAL,
        ActivityName.CLOSE_DECISIONS,
        ActivityName.RELEASE_INVENTORY,
        ActivityName.FINISH_ORDER,
    ]


def test_an_order_waiting_before_close_decisions_replays_its_timeout_as_it_started(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Started (and timed out) by a worker without the close-decisions-by-record patch: its
    history goes from the timer straight to the release. Today's code replays it without the
    new activity."""
    old = Engine(_order(60_000, approval_required=True), approve=None, time_out=True)
    completion = _recorded_without(
        monkeypatch, old, {CLOSE_DECISIONS_BY_RECORD, RETRY_INFRASTRUCTURE, MANAGER_ACTION_LOG}
    )

    replayed = _replayed_by_todays_code(old)

    assert ActivityName.CLOSE_DECISIONS not in [name for name, _ in old.scheduled]
    assert _completions(replayed) == [completion]
    assert json.loads(completion.result.value) == {"processed": False, "reason": "approval_timeout"}
    assert set(replayed.patches or ()) == {FINISH_WITH_NOTICE, PAY_UNLESS_CANCELLED}


# ACTIVITY_RETRY's six attempts, then the workflow's own rounds: the first two fail, the third
# reserves.
_OUTAGE = {ActivityName.RESERVE_INVENTORY: 8}


def test_a_store_outage_past_the_quick_retries_is_retried_through_the_sdk_executor() -> None:
    engine = Engine(_order(15_000, approval_required=False), approve=None, failures=_OUTAGE)

    completion = engine.run()

    assert json.loads(completion.result.value) == {"processed": True, "reason": None}
    names = [name for name, _ in engine.scheduled]
    assert names.count(ActivityName.RESERVE_INVENTORY) == 9
    retrying = [StepStatus.decode(status) for status in engine.statuses if status.startswith("{")]
    assert [(s.step, s.retrying and s.retrying.attempts) for s in retrying] == [
        (Step.RESERVING, 1),
        (Step.RESERVING, 2),
        (Step.RESERVING, 3),
    ]
    assert _completions(_replayed_by_todays_code(engine)) == [completion]


def test_an_order_started_before_retry_infrastructure_fails_on_an_outage_as_it_did(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Recorded by a worker without the patch: the outage ends it FAILED after the quick
    retries, and today's code replays that history to the same failure, without a retry round."""
    old = Engine(_order(15_000, approval_required=False), approve=None, failures=_OUTAGE)
    completion = _recorded_without(monkeypatch, old, {RETRY_INFRASTRUCTURE, MANAGER_ACTION_LOG})

    replayed = _replayed_by_todays_code(old)

    assert completion.workflowStatus == pb.ORCHESTRATION_STATUS_FAILED
    assert [name for name, _ in old.scheduled].count(ActivityName.RESERVE_INVENTORY) == 6
    assert _completions(replayed) == [completion]
    assert RETRY_INFRASTRUCTURE not in (replayed.patches or ())


def test_an_order_started_before_the_action_log_replays_its_decision_as_it_started(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Recorded (approved, waiting for payment) by a worker that asked for the decision alone:
    its history holds a check_decision task. Today's code replays it through check_decision,
    without reading the log, and completes the same."""
    old = Engine(_order(60_000, approval_required=True), approve=True)
    completion = _recorded_without(monkeypatch, old, {MANAGER_ACTION_LOG})

    replayed = _replayed_by_todays_code(old)

    names = [name for name, _ in old.scheduled]
    assert ActivityName.CHECK_DECISION in names
    assert ActivityName.READ_ACTIONS not in names
    assert _completions(replayed) == [completion]
    assert json.loads(completion.result.value) == {"processed": True, "reason": None}
    assert MANAGER_ACTION_LOG not in (replayed.patches or ())


def test_a_new_order_reads_the_action_log_after_the_last_action_it_read() -> None:
    """Behind MANAGER_ACTION_LOG the approval's event makes the workflow read the log from
    its start (nothing read yet), and the decision it finds there is the outcome."""
    engine = Engine(_order(60_000, approval_required=True), approve=False)

    completion = engine.run()

    reads = [request for name, request in engine.scheduled if name == ActivityName.READ_ACTIONS]
    assert reads == [{"order_id": INSTANCE, "after": 0}]
    assert json.loads(completion.result.value) == {"processed": False, "reason": "rejected"}
    assert _completions(_replayed_by_todays_code(engine)) == [completion]
