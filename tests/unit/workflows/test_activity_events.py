"""The order events: a closed set of kinds, and the activities' share of them (a step event as each
step's activity starts, finished once the outcome is recorded), which never fails an activity."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from app.workflows.activities import STEP_STARTED_BY, OrderActivities
from app.workflows.contracts import (
    ActionsRequest,
    ActivityName,
    ActivityRequest,
    Completion,
    DecisionsClosing,
    OrderEvent,
    OrderEventKind,
    OrderInput,
    OrderOutcome,
    Step,
)
from tests.fixtures.workflow_driver import Script, ScriptedContext, run_workflow

ORDER_ID = "o1"
REQUEST = ActivityRequest(order_id=ORDER_ID, item="paperclip", quantity=3, amount=15)
OUTCOME = OrderOutcome(order_id=ORDER_ID, processed=True, finished_at=datetime.now(UTC))
# The activities that record the outcome, and those that check a decision within a step.
COMPLETION = Completion(outcome=OUTCOME, notice="order of 3 paperclip completed")
RECORDING_THE_OUTCOME: dict[ActivityName, Any] = {
    ActivityName.RECORD_OUTCOME: OUTCOME,
    ActivityName.FINISH_ORDER: COMPLETION,
}
CHECKING_A_DECISION: dict[ActivityName, Any] = {
    ActivityName.CHECK_DECISION: REQUEST,
    ActivityName.CLOSE_DECISIONS: DecisionsClosing(order_id=ORDER_ID, reason="approval_timeout"),
    ActivityName.READ_ACTIONS: ActionsRequest(order_id=ORDER_ID),
}


class Journal:
    """Stock, payments and order records that do their part and write down each call, and the
    publisher that writes down each event, in one list: what happened, in order."""

    def __init__(self) -> None:
        self.entries: list[str] = []

    def __getattr__(self, name: str) -> Any:
        answers: dict[str, Any] = {
            "hold": (True, True),
            "start_payment": True,
            "payment_started": False,
            "stock_settled": False,
            "recorded_decision": "approved",
            "actions_after": [],
        }

        async def call(*args: Any) -> Any:
            self.entries.append(name)
            return answers.get(name)

        return call

    async def publish(self, event: OrderEvent) -> None:
        self.entries.append(f"{event.kind} {event.step or ''}".strip())

    @property
    def events(self) -> list[str]:
        return [entry for entry in self.entries if entry.split()[0] in set(OrderEventKind)]


class FailingPublisher:
    async def publish(self, event: OrderEvent) -> None:
        raise RuntimeError("the hub is gone")


def activities(journal: Journal, publisher: Any = None) -> OrderActivities:
    return OrderActivities(journal, journal, journal, publisher or journal)


def test_the_event_kinds_are_a_closed_set_of_four() -> None:
    assert {kind.value for kind in OrderEventKind} == {"accepted", "decision", "step", "finished"}


def test_an_event_of_another_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="shipped"):
        OrderEvent(ORDER_ID, "shipped", datetime.now(UTC))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "step"),
    [(OrderEventKind.STEP, None), (OrderEventKind.FINISHED, Step.DONE)],
)
def test_only_a_step_event_names_a_step(kind: OrderEventKind, step: Step | None) -> None:
    with pytest.raises(ValueError, match="only a step event names a step"):
        OrderEvent(ORDER_ID, kind, datetime.now(UTC), step)


def test_every_activity_starts_a_step_records_the_outcome_or_checks_a_decision() -> None:
    kinds = [set(STEP_STARTED_BY), set(RECORDING_THE_OUTCOME), set(CHECKING_A_DECISION)]
    assert set.union(*kinds) == set(ActivityName)
    assert sum(map(len, kinds)) == len(ActivityName)  # each in one of them only


class StepAtEachCall(ScriptedContext):
    """Records the step the workflow is at when it calls each activity."""

    def __init__(self, patched: bool) -> None:
        super().__init__(ORDER_ID, patched=patched)
        self.step_at_call: list[tuple[str, str | None]] = []

    def call_activity(self, activity: str, **options: Any) -> Any:
        self.step_at_call.append((activity, self.step))
        return super().call_activity(activity, **options)


def order(approval_required: bool) -> dict[str, Any]:
    return OrderInput(
        order_id=ORDER_ID,
        item="cars" if approval_required else "paperclip",
        quantity=3,
        total_cost=60_000 if approval_required else 15,
        approval_required=approval_required,
        approval_timeout_seconds=200.0,
    ).model_dump()


@pytest.mark.parametrize("patched", [True, False], ids=["current", "started-before-patches"])
@pytest.mark.parametrize(
    ("approval_required", "script"),
    [
        (False, Script()),
        (True, Script(decision="approved")),
        (True, Script(decision="rejected")),
        (False, Script(results={ActivityName.COMMIT_INVENTORY: RuntimeError("store down")})),
    ],
    ids=["completed", "approved", "rejected", "refunded"],
)
def test_each_activity_starts_the_step_the_workflow_enters_for_it(
    patched: bool, approval_required: bool, script: Script
) -> None:
    ctx = StepAtEachCall(patched)
    run_workflow(order(approval_required), script, ctx)

    announced = [(name, step) for name, step in ctx.step_at_call if name in STEP_STARTED_BY]
    # Orders started before FINISH_WITH_NOTICE notify their completion with NOTIFY (see the
    # table): the one pair where the event's step is not the workflow's.
    own = [pair for pair in announced if pair != (ActivityName.NOTIFY, Step.NOTIFYING_COMPLETION)]
    assert own == [(name, STEP_STARTED_BY[ActivityName(name)]) for name, _ in own]
    assert len(own) >= 3


@pytest.mark.parametrize("name", list(STEP_STARTED_BY))
async def test_a_steps_activity_publishes_its_step_before_its_work(name: ActivityName) -> None:
    journal = Journal()

    await getattr(activities(journal), name.value)(REQUEST)

    assert journal.entries[0] == f"step {STEP_STARTED_BY[name]}"
    assert journal.events == [f"step {STEP_STARTED_BY[name]}"]


@pytest.mark.parametrize("name", list(RECORDING_THE_OUTCOME))
async def test_the_outcome_activity_publishes_finished_once_recorded(name: ActivityName) -> None:
    journal = Journal()

    await getattr(activities(journal), name.value)(RECORDING_THE_OUTCOME[name])

    assert journal.entries == ["record_outcome", "finished"]


@pytest.mark.parametrize("name", list(CHECKING_A_DECISION))
async def test_a_decision_check_publishes_nothing(name: ActivityName) -> None:
    journal = Journal()

    await getattr(activities(journal), name.value)(CHECKING_A_DECISION[name])

    assert journal.events == []


async def test_a_failing_publisher_does_not_fail_a_steps_activity(
    caplog: pytest.LogCaptureFixture,
) -> None:
    journal = Journal()

    held = await activities(journal, FailingPublisher()).reserve_inventory(REQUEST)

    assert held is True
    assert "hold" in journal.entries
    assert f"order {ORDER_ID}: step event not published" in caplog.text


async def test_a_failing_publisher_does_not_fail_the_outcome_activity(
    caplog: pytest.LogCaptureFixture,
) -> None:
    journal = Journal()

    await activities(journal, FailingPublisher()).finish_order(COMPLETION)

    assert journal.entries == ["record_outcome"]
    assert f"order {ORDER_ID}: finished event not published" in caplog.text
