"""A state store or sidecar that stays away past the activities' quick retries (~25 s): the
workflow keeps the order, retrying the step with durable timers and showing it, for the order's
retry budget; an order that ends because a step failed for good is compensated and its outcome
recorded first. Driven without Dapr by tests.fixtures.workflow_driver."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from dapr.ext.workflow import TaskFailedError

from app.errors import DependencyUnavailable, StoredStateConflict
from app.services.order_records import OrderRecords
from app.workflows.contracts import (
    ActivityName,
    InfrastructureRetry,
    OrderInput,
    Step,
    StepStatus,
)
from app.workflows.order_processing import (
    ACTIVITY_RETRY,
    CLOSE_DECISIONS_BY_RECORD,
    FINISH_WITH_NOTICE,
    PAY_UNLESS_CANCELLED,
)
from tests.fixtures.fakes import InMemoryStateStore
from tests.fixtures.shop import ORDER_ID, Shop
from tests.fixtures.workflow_driver import (
    ActivityCall,
    Script,
    ScriptedContext,
    WorkflowRun,
    run_with_activities,
    run_workflow,
)

NOTIFY = ActivityName.NOTIFY
RESERVE = ActivityName.RESERVE_INVENTORY
PAY = ActivityName.PAY_UNLESS_CANCELLED
COMMIT = ActivityName.COMMIT_INVENTORY
RELEASE = ActivityName.RELEASE_INVENTORY
REFUND = ActivityName.REFUND_PAYMENT
FINISH = ActivityName.FINISH_ORDER
CHECK = ActivityName.READ_ACTIONS

STORE_DOWN = DependencyUnavailable(
    "state store unreachable through the sidecar: ClientConnectorError('connection refused')"
)
# A short budget, so a run of the driver spends it: rounds wait 10, 20, 30 s (60 s in all).
SHORT = InfrastructureRetry(budget_seconds=60, first_interval_seconds=10, max_interval_seconds=30)


def order(retry: InfrastructureRetry | None = None) -> dict[str, Any]:
    return OrderInput(
        order_id="order-9",
        item="paperclip",
        quantity=3,
        total_cost=15,
        approval_required=False,
        approval_timeout_seconds=200.0,
        infrastructure_retry=retry,
    ).model_dump()


def retrying_statuses(run: WorkflowRun) -> list[StepStatus]:
    statuses = [StepStatus.decode(raw) for raw in run.context.steps]
    return [status for status in statuses if status.retrying is not None]


def outcome_reason(run: WorkflowRun) -> Any:
    finish = [call for call in run.context.calls if call.name == FINISH]
    assert finish, "no outcome recorded"
    return finish[-1].input["outcome"]["reason"]


def test_a_reserve_the_store_fails_past_its_quick_retries_is_tried_again_and_the_order_completes() -> (
    None
):
    run = run_workflow(order(), Script(failures={RESERVE: [STORE_DOWN] * 3}))

    assert run.result == {"processed": True, "reason": None}
    assert run.context.activity_names == [
        NOTIFY,
        RESERVE,
        RESERVE,
        RESERVE,
        RESERVE,
        PAY,
        COMMIT,
        FINISH,
    ]


def test_retry_rounds_wait_on_durable_timers_that_double_from_the_default_interval() -> None:
    run = run_workflow(order(), Script(failures={RESERVE: [STORE_DOWN] * 3}))

    assert run.context.timer_lengths == [timedelta(seconds=s) for s in (10, 20, 40)]


def test_the_first_call_keeps_the_quick_retries_and_each_later_round_is_one_attempt() -> None:
    run = run_workflow(order(), Script(failures={RESERVE: [STORE_DOWN] * 2}))

    reserves = [call.retry_policy for call in run.context.calls if call.name == RESERVE]
    assert reserves == [ACTIVITY_RETRY, None, None]


def test_while_it_waits_the_order_shows_its_step_retrying_with_the_last_error() -> None:
    run = run_workflow(order(), Script(failures={RESERVE: [STORE_DOWN] * 2}))

    shown = retrying_statuses(run)
    assert [status.step for status in shown] == [Step.RESERVING, Step.RESERVING]
    assert [status.retrying.attempts for status in shown if status.retrying] == [1, 2]
    last = shown[-1].retrying
    assert last is not None
    assert last.reason == "unavailable"
    assert "connection refused" in last.error
    # Back on the plain step once the retry goes out: the step is what it was.
    assert run.context.steps[run.context.steps.index(shown[-1].encode()) + 1] == Step.RESERVING


def test_the_interval_and_budget_come_from_the_order_input() -> None:
    retry = InfrastructureRetry(
        budget_seconds=3600, first_interval_seconds=1, max_interval_seconds=4
    )
    run = run_workflow(order(retry), Script(failures={RESERVE: [STORE_DOWN] * 5}))

    assert run.context.timer_lengths == [timedelta(seconds=s) for s in (1, 2, 4, 4, 4)]
    assert run.result == {"processed": True, "reason": None}


@pytest.mark.parametrize("activity", [NOTIFY, RESERVE, PAY, COMMIT, FINISH])
def test_every_step_outlasts_a_store_outage_longer_than_the_quick_retries(activity: str) -> None:
    run = run_workflow(order(), Script(failures={activity: [STORE_DOWN] * 4}))

    assert run.result == {"processed": True, "reason": None}
    assert outcome_reason(run) is None


def test_a_release_the_store_fails_is_tried_again_so_no_hold_is_left() -> None:
    run = run_workflow(order(), Script(cancel_while=RESERVE, failures={RELEASE: [STORE_DOWN] * 2}))

    assert run.result == {"processed": False, "reason": "cancelled"}
    assert run.context.activity_names[-4:] == [RELEASE, RELEASE, RELEASE, FINISH]


def test_a_decision_check_the_store_fails_is_tried_again() -> None:
    run = run_workflow(order(), Script(cancel_while=RESERVE, failures={CHECK: [STORE_DOWN] * 2}))

    assert run.result == {"processed": False, "reason": "cancelled"}
    assert run.context.activity_names.count(CHECK) == 3


def test_an_outage_past_the_budget_releases_the_stock_and_records_the_outcome() -> None:
    run = run_workflow(order(SHORT), Script(cancel_while=RESERVE, results={CHECK: STORE_DOWN}))

    assert run.context.timer_lengths == [timedelta(seconds=s) for s in (10, 20, 30)]
    assert run.result == {"processed": False, "reason": "step_failed"}
    assert run.context.activity_names[-2:] == [RELEASE, FINISH]
    assert outcome_reason(run) == "step_failed"


def test_an_error_a_retry_cannot_cure_is_not_retried_and_the_order_is_compensated() -> None:
    """Before the fix the workflow ended FAILED here with the stock still held and no outcome
    on the order."""
    conflict = StoredStateConflict("stock:paperclip holds something else")
    run = run_workflow(order(), Script(cancel_while=RESERVE, results={CHECK: conflict}))

    assert run.context.timers == []
    assert run.context.activity_names[-2:] == [RELEASE, FINISH]
    assert run.result == {"processed": False, "reason": "step_failed"}


def test_a_release_failing_for_good_is_tried_once_more_and_the_ending_kept() -> None:
    broken = RuntimeError("release broke")
    run = run_workflow(order(), Script(cancel_while=RESERVE, failures={RELEASE: [broken]}))

    assert run.context.activity_names[-3:] == [RELEASE, RELEASE, FINISH]
    assert run.result == {"processed": False, "reason": "cancelled"}


def test_a_refund_failing_for_good_is_tried_once_more_before_the_release() -> None:
    broken = RuntimeError("refund broke")
    run = run_workflow(
        order(), Script(results={COMMIT: RuntimeError("commit broke")}, failures={REFUND: [broken]})
    )

    assert run.context.activity_names[-5:] == [COMMIT, REFUND, REFUND, RELEASE, FINISH]
    assert run.result == {"processed": False, "reason": "inventory_update_failed"}


def test_an_outcome_that_cannot_be_recorded_ends_the_workflow_failed_with_nothing_undone() -> None:
    """The order was paid and its stock sold: nothing to give back, and nowhere to write."""
    with pytest.raises(TaskFailedError):
        run_workflow(order(), Script(results={FINISH: RuntimeError("record broke")}))


def test_an_order_started_before_the_patch_still_fails_as_it_did() -> None:
    ctx = ScriptedContext(
        "order-9", frozenset({FINISH_WITH_NOTICE, PAY_UNLESS_CANCELLED, CLOSE_DECISIONS_BY_RECORD})
    )

    with pytest.raises(TaskFailedError):
        run_workflow(order(), Script(failures={RESERVE: [STORE_DOWN]}), ctx)
    assert ctx.timers == []


async def test_a_release_through_a_store_outage_leaves_nothing_held_and_the_outcome_recorded(
    store: InMemoryStateStore,
) -> None:
    """The real activities over one store: the approval timer ends the order, and the store
    refuses the release's writes for two rounds past the quick retries."""
    shop = Shop(store)
    order_input = await shop.place("cars", 4)
    refusals = 2

    async def store_away_at_release(ctx: ScriptedContext, call: ActivityCall) -> None:
        nonlocal refusals
        if call.name == RELEASE and refusals:
            refusals -= 1
            store.fail_next_saves = 1

    async def timer(ctx: ScriptedContext) -> None:
        ctx.timers[-1][1].complete(None)

    run = await run_with_activities(
        order_input,
        shop.activities,
        raised_events=shop.raised_events,
        at_approval_wait=timer,
        before_activity=store_away_at_release,
    )

    assert run.result == {"processed": False, "reason": "approval_timeout"}
    assert run.context.activity_names.count(RELEASE) == 3
    assert await shop.nothing_paid_or_held("cars")
    record, _ = await OrderRecords(store).get(ORDER_ID)
    assert record.outcome is not None
    assert record.outcome.reason == "approval_timeout"
