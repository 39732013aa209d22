"""The order workflow, branch by branch, driven without Dapr by tests.fixtures.workflow_driver."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from app.workflows.contracts import (
    APPROVAL_EVENT,
    CANCEL_EVENT,
    ActivityName,
    OrderInput,
    Step,
)
from app.workflows.order_processing import (
    ACTIVITY_RETRY,
    CLOSE_DECISIONS_BY_RECORD,
    FINISH_WITH_NOTICE,
    PAY_UNLESS_CANCELLED,
    RETRY_INFRASTRUCTURE,
)
from tests.fixtures.workflow_driver import Script, ScriptedContext, run_workflow

NOTIFY = ActivityName.NOTIFY
RESERVE = ActivityName.RESERVE_INVENTORY
REQUEST_APPROVAL = ActivityName.REQUEST_APPROVAL
PAY = ActivityName.PAY_UNLESS_CANCELLED
OLD_PAY = ActivityName.PROCESS_PAYMENT  # before the PAY_UNLESS_CANCELLED patch
COMMIT = ActivityName.COMMIT_INVENTORY
RELEASE = ActivityName.RELEASE_INVENTORY
REFUND = ActivityName.REFUND_PAYMENT
RECORD = ActivityName.RECORD_OUTCOME  # before the FINISH_WITH_NOTICE patch
FINISH = ActivityName.FINISH_ORDER
CHECK = ActivityName.READ_ACTIONS
OLD_CHECK = ActivityName.CHECK_DECISION  # before the MANAGER_ACTION_LOG patch
CLOSE = ActivityName.CLOSE_DECISIONS


def small_order(**changes: Any) -> dict[str, Any]:
    order = OrderInput(
        order_id="order-7",
        item="paperclip",
        quantity=3,
        total_cost=15,
        approval_required=False,
        approval_timeout_seconds=200.0,
    )
    return order.model_copy(update=changes).model_dump()


def large_order(**changes: Any) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "item": "cars",
        "quantity": 4,
        "total_cost": 60_000,
        "approval_required": True,
    }
    return small_order(**{**defaults, **changes})


APPROVED_FLOW = [NOTIFY, RESERVE, REQUEST_APPROVAL, CHECK, PAY, COMMIT, FINISH]


def test_small_order_runs_every_step_and_completes() -> None:
    run = run_workflow(small_order(), Script())

    assert run.context.activity_names == [NOTIFY, RESERVE, PAY, COMMIT, FINISH]
    assert run.result == {"processed": True, "reason": None}
    assert run.context.step == Step.DONE


def test_small_order_reports_each_step_in_order() -> None:
    run = run_workflow(small_order(), Script())

    assert run.context.steps == [
        Step.NOTIFYING,
        Step.RESERVING,
        Step.PROCESSING_PAYMENT,
        Step.UPDATING_INVENTORY,
        Step.DONE,
    ]


def test_activities_receive_the_order_request() -> None:
    run = run_workflow(small_order(), Script())

    reserve = run.context.calls[1]
    assert reserve.input == {
        "order_id": "order-7",
        "item": "paperclip",
        "quantity": 3,
        "amount": 15,
        "message": "",
    }


def test_notifications_carry_a_message_about_the_order() -> None:
    run = run_workflow(small_order(), Script())

    first, last = run.context.calls[0], run.context.calls[-1]
    assert first.input["message"] == "received order of 3 paperclip"
    assert last.input["notice"] == "order of 3 paperclip completed"
    assert first.input["order_id"] == last.input["outcome"]["order_id"] == "order-7"


def test_insufficient_inventory_ends_without_payment_or_release() -> None:
    run = run_workflow(small_order(), Script(results={RESERVE: False}))

    assert run.result == {"processed": False, "reason": "insufficient_inventory"}
    assert run.context.activity_names == [NOTIFY, RESERVE, CLOSE, FINISH]
    assert run.context.calls[2].input == {"order_id": "order-7", "reason": "insufficient_inventory"}
    assert run.context.step == Step.DONE


@pytest.mark.parametrize(
    ("recorded", "reason"),
    [("cancelled", "cancelled"), ("rejected", "rejected"), ("approved", "insufficient_inventory")],
)
def test_a_decision_recorded_before_the_stock_ran_out_is_the_outcome_unless_an_approval(
    recorded: str, reason: str
) -> None:
    # Its event had not reached the workflow: the record has it. Nothing is held either way.
    run = run_workflow(large_order(), Script(results={RESERVE: False, CLOSE: recorded}))

    assert run.result == {"processed": False, "reason": reason}
    assert run.context.activity_names == [NOTIFY, RESERVE, CLOSE, FINISH]


def test_approval_required_and_approved_completes() -> None:
    run = run_workflow(large_order(), Script(decision="approved"))

    assert run.result == {"processed": True, "reason": None}
    assert run.context.activity_names == APPROVED_FLOW
    assert run.context.waited_events == [CANCEL_EVENT, APPROVAL_EVENT]


def test_rejected_order_releases_its_reservation() -> None:
    run = run_workflow(large_order(), Script(decision="rejected"))

    assert run.result == {"processed": False, "reason": "rejected"}
    assert run.context.activity_names == [NOTIFY, RESERVE, REQUEST_APPROVAL, CHECK, RELEASE, FINISH]
    assert run.context.step == Step.DONE


def test_approval_timeout_releases_the_reservation() -> None:
    run = run_workflow(large_order(), Script(decision="timeout"))

    assert run.result == {"processed": False, "reason": "approval_timeout"}
    assert run.context.activity_names == [
        NOTIFY, RESERVE, REQUEST_APPROVAL, CLOSE, RELEASE, FINISH,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("recorded", "reason"),
    [("approved", None), ("rejected", "rejected"), ("cancelled", "cancelled")],
)
def test_a_decision_recorded_before_the_timer_fired_is_the_outcome(
    recorded: str, reason: str | None
) -> None:
    # Its event had not reached the workflow when the timer won: the record has it.
    run = run_workflow(large_order(), Script(decision="timeout", results={CLOSE: recorded}))

    assert run.result == {"processed": reason is None, "reason": reason}
    assert CHECK not in run.context.activity_names
    assert (PAY in run.context.activity_names) == (reason is None)


def test_an_order_started_before_the_close_decisions_patch_ends_without_asking_its_record() -> None:
    ctx = ScriptedContext("order-7", patched=frozenset({FINISH_WITH_NOTICE, PAY_UNLESS_CANCELLED}))
    timed_out = run_workflow(large_order(), Script(decision="timeout"), ctx)
    ctx = ScriptedContext("order-7", patched=frozenset({FINISH_WITH_NOTICE, PAY_UNLESS_CANCELLED}))
    no_stock = run_workflow(small_order(), Script(results={RESERVE: False}), ctx)

    assert timed_out.result == {"processed": False, "reason": "approval_timeout"}
    assert timed_out.context.activity_names == [NOTIFY, RESERVE, REQUEST_APPROVAL, RELEASE, FINISH]
    assert no_stock.context.activity_names == [NOTIFY, RESERVE, FINISH]


BEFORE_THE_ACTION_LOG = frozenset(
    {FINISH_WITH_NOTICE, PAY_UNLESS_CANCELLED, CLOSE_DECISIONS_BY_RECORD, RETRY_INFRASTRUCTURE}
)


@pytest.mark.parametrize(
    ("decision", "reason"), [("approved", None), ("rejected", "rejected"), ("cancel", "cancelled")]
)
def test_an_order_started_before_the_action_log_asks_for_the_decision_alone(
    decision: Any, reason: str | None
) -> None:
    ctx = ScriptedContext("order-7", patched=BEFORE_THE_ACTION_LOG)
    run = run_workflow(large_order(), Script(decision=decision), ctx)

    assert run.result == {"processed": reason is None, "reason": reason}
    assert OLD_CHECK in run.context.activity_names
    assert CHECK not in run.context.activity_names


def test_the_action_log_is_read_from_the_last_action_read() -> None:
    # A cancel event after the approval was logged (stray: the approval is the decision) makes
    # the first read, which finds the approval; the approval's own event then reads after it,
    # finds nothing new, and the decision read first stands.
    approval = Script(decision="approved").logged_actions()
    script = Script(decision="approved", cancel_while=RESERVE, results={CHECK: approval})
    run = run_workflow(large_order(), script)

    reads = [call.input for call in run.context.calls if call.name == CHECK]
    assert [read["after"] for read in reads] == [0, 1]
    assert run.result == {"processed": True, "reason": None}


def test_approval_timer_lasts_the_timeout_from_the_input() -> None:
    run = run_workflow(large_order(approval_timeout_seconds=42.5), Script(decision="timeout"))

    assert [delay for delay, _ in run.context.timers] == [timedelta(seconds=42.5)]


def test_cancel_during_approval_wait_releases_the_reservation() -> None:
    run = run_workflow(large_order(), Script(decision="cancel"))

    assert run.result == {"processed": False, "reason": "cancelled"}
    assert run.context.activity_names == [NOTIFY, RESERVE, REQUEST_APPROVAL, CHECK, RELEASE, FINISH]


def test_a_cancel_event_after_the_recorded_approval_is_ignored() -> None:
    # One decision per order: the service recorded the approval, so a cancel event arriving
    # with it (stray or forged) changes nothing.
    run = run_workflow(large_order(), Script(decision="approved_and_cancelled"))

    assert run.result == {"processed": True, "reason": None}
    assert PAY in run.context.activity_names


def test_an_approval_event_delivered_twice_pays_once() -> None:
    # Two replicas' outbox loops may both deliver a queued approval: the second is buffered by
    # the engine and never waited for.
    run = run_workflow(large_order(), Script(decision="approved_twice"))

    assert run.result == {"processed": True, "reason": None}
    assert run.context.activity_names == APPROVED_FLOW


def test_an_approval_event_with_no_recorded_decision_is_ignored() -> None:
    # A forged event (raised on the sidecar directly): the check finds no decision recorded,
    # the workflow keeps waiting, and the timer ends the wait.
    forged = Script(decision="approved", results={CHECK: []}, then_timeout=True)
    run = run_workflow(large_order(), forged)

    assert run.result == {"processed": False, "reason": "approval_timeout"}
    assert PAY not in run.context.activity_names
    assert run.context.waited_events == [CANCEL_EVENT, APPROVAL_EVENT, APPROVAL_EVENT]


def test_cancel_before_reserve_reserves_nothing() -> None:
    run = run_workflow(small_order(), Script(cancel_while=NOTIFY))

    assert run.result == {"processed": False, "reason": "cancelled"}
    assert run.context.activity_names == [NOTIFY, CHECK, FINISH]
    assert run.context.step == Step.DONE


def test_cancel_after_reserve_releases_the_reservation() -> None:
    run = run_workflow(small_order(), Script(cancel_while=RESERVE))

    assert run.result == {"processed": False, "reason": "cancelled"}
    assert run.context.activity_names == [NOTIFY, RESERVE, CHECK, RELEASE, FINISH]


def test_cancel_while_requesting_approval_ends_the_wait_at_once() -> None:
    run = run_workflow(large_order(), Script(cancel_while=REQUEST_APPROVAL))

    assert run.result == {"processed": False, "reason": "cancelled"}
    assert run.context.activity_names == [NOTIFY, RESERVE, REQUEST_APPROVAL, CHECK, RELEASE, FINISH]


def test_cancel_during_payment_is_too_late_and_the_order_completes() -> None:
    run = run_workflow(small_order(), Script(cancel_while=PAY))

    assert run.result == {"processed": True, "reason": None}
    assert RELEASE not in run.context.activity_names


def test_a_cancel_recorded_before_the_payment_started_is_the_outcome() -> None:
    # Its event had not arrived at the last boundary (or not at all): the payment activity found
    # the cancel on the order record and charged nothing.
    run = run_workflow(small_order(), Script(results={PAY: False}))

    assert run.result == {"processed": False, "reason": "cancelled"}
    assert run.context.activity_names == [NOTIFY, RESERVE, PAY, RELEASE, FINISH]
    assert run.context.steps[-3:] == [Step.PROCESSING_PAYMENT, Step.RELEASING, Step.DONE]


def test_payment_failure_releases_without_committing() -> None:
    run = run_workflow(small_order(), Script(results={PAY: RuntimeError("card declined")}))

    assert run.result == {"processed": False, "reason": "payment_failed"}
    assert run.context.activity_names == [NOTIFY, RESERVE, PAY, RELEASE, FINISH]


def test_commit_failure_refunds_then_releases() -> None:
    run = run_workflow(small_order(), Script(results={COMMIT: RuntimeError("store down")}))

    assert run.result == {"processed": False, "reason": "inventory_update_failed"}
    assert run.context.activity_names == [NOTIFY, RESERVE, PAY, COMMIT, REFUND, RELEASE, FINISH]
    assert run.context.steps[-3:] == [Step.REFUNDING, Step.RELEASING, Step.DONE]


def test_step_is_awaiting_approval_while_waiting() -> None:
    run = run_workflow(large_order(), Script(decision="approved"))

    assert run.steps_while_waiting == [Step.AWAITING_APPROVAL]


def test_order_without_approval_never_waits() -> None:
    run = run_workflow(small_order(), Script())

    assert run.steps_while_waiting == []
    assert run.context.timers == []
    assert REQUEST_APPROVAL not in run.context.activity_names


def test_every_activity_gets_the_retry_policy() -> None:
    run = run_workflow(
        large_order(), Script(decision="approved", results={COMMIT: RuntimeError("store down")})
    )

    assert {call.name for call in run.context.calls} == {
        NOTIFY,
        RESERVE,
        REQUEST_APPROVAL,
        PAY,
        COMMIT,
        REFUND,
        RELEASE,
        FINISH,
        CHECK,
    }
    assert all(call.retry_policy is ACTIVITY_RETRY for call in run.context.calls)


def test_same_script_gives_the_same_activity_calls() -> None:
    script = Script(decision="approved", results={COMMIT: RuntimeError("store down")})

    first = run_workflow(large_order(), script)
    second = run_workflow(large_order(), script)

    assert [(c.name, c.input) for c in first.context.calls] == [
        (c.name, c.input) for c in second.context.calls
    ]
    assert first.context.steps == second.context.steps
    assert first.result == second.result


@pytest.mark.parametrize(
    ("script", "order", "reason"),
    [
        (Script(), small_order, None),
        (Script(decision="rejected"), large_order, "rejected"),
        (Script(results={RESERVE: False}), small_order, "insufficient_inventory"),
        (Script(decision="timeout"), large_order, "approval_timeout"),
    ],
)
def test_the_outcome_is_recorded_on_the_order_last_as_the_result_says(
    script: Script, order: Callable[[], dict[str, Any]], reason: str | None
) -> None:
    run = run_workflow(order(), script)

    last = run.context.calls[-1]
    assert last.name == FINISH
    outcome = last.input["outcome"]
    steps = outcome.pop("steps")
    assert outcome == {
        "order_id": "order-7",
        "processed": reason is None,
        "reason": reason,
        "finished_at": "2026-11-28T12:00:00Z",
    }
    assert [step for step, _ in steps] == run.context.steps
    assert run.result == {"processed": reason is None, "reason": reason}


def test_the_completion_notice_goes_with_the_outcome_only_when_the_order_went_through() -> None:
    done = run_workflow(small_order(), Script())
    refused = run_workflow(small_order(), Script(results={RESERVE: False}))

    assert done.context.calls[-1].input["notice"] == "order of 3 paperclip completed"
    assert refused.context.calls[-1].input["notice"] is None


def test_an_order_started_before_the_patch_keeps_its_notify_and_record_activities() -> None:
    """Its history holds a notify task where the patched code would call finish_order: replaying
    it with the new path would fail as non-deterministic, so it takes the path it started on."""
    ctx = ScriptedContext("order-7", patched=False)
    run = run_workflow(small_order(), Script(), ctx)

    assert run.context.activity_names == [NOTIFY, RESERVE, OLD_PAY, COMMIT, NOTIFY, RECORD]
    assert Step.NOTIFYING_COMPLETION in run.context.steps
    assert run.context.calls[-1].input["processed"] is True
    assert run.result == {"processed": True, "reason": None}


def test_an_order_started_between_the_two_patches_pays_as_it_started() -> None:
    """Started with finish_order but before pay_unless_cancelled: its history holds a
    process_payment task at the payment step, so it keeps calling that one (whose result it
    never read), and still finishes with finish_order."""
    ctx = ScriptedContext("order-7", patched=frozenset({FINISH_WITH_NOTICE}))
    run = run_workflow(small_order(), Script(), ctx)

    assert run.context.activity_names == [NOTIFY, RESERVE, OLD_PAY, COMMIT, FINISH]
    assert run.result == {"processed": True, "reason": None}
