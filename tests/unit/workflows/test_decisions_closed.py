"""A manager's decision racing the workflow ending the order on its own (the approval timer,
too little stock): the service and the workflow's real activities on one store.

The approval timer and a manager's request can land at the same moment; so can a cancel and
the reservation that finds too little stock. Whatever the service answers must be what happens:
a decision it accepted (202) is the outcome even when its event had not reached the workflow,
and once the workflow has closed the order to decisions, every decision is refused (409). As at
the payment, the engine's view cannot tell: it still shows the step before, or does not answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from app.workflows.contracts import ActivityName, Step
from tests.fixtures.fakes import InMemoryStateStore
from tests.fixtures.shop import ORDER_ID, EngineView, Shop, engine_views
from tests.fixtures.workflow_driver import (
    ActivityCall,
    ActivityHook,
    ScriptedContext,
    run_with_activities,
)

ENGINE_VIEWS = engine_views(Step.AWAITING_APPROVAL)
STOCK_ENGINE_VIEWS = engine_views(Step.RESERVING)

Decide = Callable[[Shop], Awaitable[object]]
DECISIONS: dict[str, tuple[Decide, dict[str, object]]] = {
    "approve": (
        lambda shop: shop.orders.approve(ORDER_ID, True, "alice"),
        {"processed": True, "reason": None},
    ),
    "reject": (
        lambda shop: shop.orders.approve(ORDER_ID, False, "alice"),
        {"processed": False, "reason": "rejected"},
    ),
    "cancel": (
        lambda shop: shop.orders.cancel(ORDER_ID, "alice"),
        {"processed": False, "reason": "cancelled"},
    ),
}


async def large_order(shop: Shop) -> dict[str, object]:
    order_input = await shop.place("cars", 4)
    assert order_input["approval_required"] is True
    return order_input


def fire_timer(ctx: ScriptedContext) -> None:
    ctx.timers[-1][1].complete(None)


@ENGINE_VIEWS
@pytest.mark.parametrize("decision", sorted(DECISIONS))
async def test_a_decision_accepted_as_the_timer_fires_is_the_outcome(
    store: InMemoryStateStore,
    engine_view: EngineView,
    decision: str,
) -> None:
    shop = Shop(store)
    order_input = await large_order(shop)
    engine_view(shop.gateway)
    decide, outcome = DECISIONS[decision]

    async def decided_then_timer(ctx: ScriptedContext) -> None:
        # Recorded on the order (202); the timer fires before its event reaches the workflow.
        await shop.answer(lambda: decide(shop))
        fire_timer(ctx)

    run = await run_with_activities(
        order_input,
        shop.activities,
        raised_events=shop.raised_events,
        at_approval_wait=decided_then_timer,
    )

    assert shop.answers == ["202"]
    assert run.result == outcome


@ENGINE_VIEWS
@pytest.mark.parametrize("decision", sorted(DECISIONS))
async def test_a_decision_once_the_wait_timed_out_is_refused(
    store: InMemoryStateStore,
    engine_view: EngineView,
    decision: str,
) -> None:
    shop = Shop(store)
    order_input = await large_order(shop)
    engine_view(shop.gateway)
    decide, _ = DECISIONS[decision]
    waited = False

    async def timer(ctx: ScriptedContext) -> None:
        nonlocal waited
        waited = True
        fire_timer(ctx)

    async def decide_after_the_timeout(ctx: ScriptedContext, call: ActivityCall) -> None:
        # The first activity the workflow runs once the timer won.
        if waited and not shop.answers:
            await shop.answer(lambda: decide(shop))

    run = await run_with_activities(
        order_input,
        shop.activities,
        raised_events=shop.raised_events,
        at_approval_wait=timer,
        after_activity=decide_after_the_timeout,
    )

    assert len(shop.answers) == 1
    assert shop.answers[0].startswith("409 "), shop.answers
    assert run.result == {"processed": False, "reason": "approval_timeout"}
    assert await shop.nothing_paid_or_held("cars")


async def order_beyond_the_stock(shop: Shop) -> dict[str, object]:
    order_input = await shop.place("paperclip", 1_000)  # 100 in stock; no approval needed
    assert order_input["approval_required"] is False
    return order_input


def cancel_after(shop: Shop, activity: ActivityName) -> ActivityHook:
    """A hook that sends one cancel right after `activity` ran."""

    async def cancel(ctx: ScriptedContext, call: ActivityCall) -> None:
        if call.name == activity and not shop.answers:
            await shop.answer(lambda: shop.orders.cancel(ORDER_ID))

    return cancel


@STOCK_ENGINE_VIEWS
async def test_a_cancel_accepted_as_the_stock_runs_out_is_the_outcome(
    store: InMemoryStateStore, engine_view: EngineView
) -> None:
    shop = Shop(store)
    order_input = await order_beyond_the_stock(shop)
    engine_view(shop.gateway)

    run = await run_with_activities(
        order_input,
        shop.activities,
        raised_events=shop.raised_events,
        after_activity=cancel_after(shop, ActivityName.RESERVE_INVENTORY),
    )

    assert shop.answers == ["202"]
    assert run.result == {"processed": False, "reason": "cancelled"}
    assert await shop.nothing_paid_or_held("paperclip")


@STOCK_ENGINE_VIEWS
async def test_a_cancel_once_the_order_is_closed_for_lack_of_stock_is_refused(
    store: InMemoryStateStore, engine_view: EngineView
) -> None:
    shop = Shop(store)
    order_input = await order_beyond_the_stock(shop)
    engine_view(shop.gateway)

    run = await run_with_activities(
        order_input,
        shop.activities,
        raised_events=shop.raised_events,
        after_activity=cancel_after(shop, ActivityName.CLOSE_DECISIONS),
    )

    assert len(shop.answers) == 1
    assert "takes no decision any more: insufficient_inventory" in shop.answers[0]
    assert run.result == {"processed": False, "reason": "insufficient_inventory"}
