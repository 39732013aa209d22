"""A cancel racing the payment: the service and the workflow's real activities on one store.

The point of no return is payment. A cancel the service accepts (202) must end the order
cancelled, with nothing paid and nothing held; a cancel that comes once payment may have started
must be refused (409), and the order goes through. The engine's view of the order is no help at
that boundary: its step shows the payment only after the workflow's turn is saved, and a slow
engine read is answered without it. So each case runs with the engine reporting the step before
payment, and with the engine read failing.
"""

from __future__ import annotations

from app.workflows.contracts import ActivityRequest, Step
from tests.fixtures.fakes import InMemoryStateStore
from tests.fixtures.shop import ORDER_ID, EngineView, Shop, engine_views
from tests.fixtures.workflow_driver import (
    ActivityCall,
    ActivityHook,
    ScriptedContext,
    run_with_activities,
)

ENGINE_VIEWS = engine_views(Step.RESERVING)


def cancel_at_payment(shop: Shop) -> ActivityHook:
    """A hook that sends one cancel when the workflow is at the payment step."""

    async def cancel(ctx: ScriptedContext, call: ActivityCall) -> None:
        if ctx.step == Step.PROCESSING_PAYMENT and not shop.answers:
            await shop.answer(lambda: shop.orders.cancel(ORDER_ID))

    return cancel


async def small_order(shop: Shop) -> dict[str, object]:
    order_input = await shop.place("paperclip", 3)
    assert order_input["approval_required"] is False
    return order_input


@ENGINE_VIEWS
async def test_a_cancel_accepted_just_before_payment_ends_the_order_cancelled(
    store: InMemoryStateStore, engine_view: EngineView
) -> None:
    shop = Shop(store)
    order_input = await small_order(shop)
    engine_view(shop.gateway)

    run = await run_with_activities(
        order_input,
        shop.activities,
        raised_events=shop.raised_events,
        before_activity=cancel_at_payment(shop),
    )

    # Payment has not started when the cancel arrives: it is accepted, so it must be the outcome.
    assert shop.answers == ["202"]
    assert run.result == {"processed": False, "reason": "cancelled"}
    assert await shop.nothing_paid_or_held("paperclip")


@ENGINE_VIEWS
async def test_a_cancel_once_payment_has_started_is_refused_and_the_order_goes_through(
    store: InMemoryStateStore, engine_view: EngineView
) -> None:
    shop = Shop(store)
    order_input = await small_order(shop)
    engine_view(shop.gateway)

    run = await run_with_activities(
        order_input,
        shop.activities,
        raised_events=shop.raised_events,
        after_activity=cancel_at_payment(shop),
    )

    assert len(shop.answers) == 1
    assert shop.answers[0].startswith("409 "), shop.answers
    assert "past payment" in shop.answers[0]
    assert run.result == {"processed": True, "reason": None}
    assert await shop.payments.entry(ORDER_ID) is not None


async def test_the_payment_activity_run_again_goes_on_paying(store: InMemoryStateStore) -> None:
    # At least once: a worker that died after marking the payment started runs it again. It
    # must not read its own mark as a reason to stop (the ledger keeps the one entry).
    shop = Shop(store)
    order_input = await small_order(shop)
    request = ActivityRequest(order_id=ORDER_ID, amount=int(str(order_input["total_cost"])))

    first = await shop.activities.pay_unless_cancelled(request)
    again = await shop.activities.pay_unless_cancelled(request)

    assert (first, again) == (True, True)
    assert await shop.payments.entry(ORDER_ID) == {
        "order_id": ORDER_ID,
        "amount": 15,
        "status": "paid",
    }
    await shop.answer(lambda: shop.orders.cancel(ORDER_ID))
    assert len(shop.answers) == 1
    assert "past payment" in shop.answers[0]


async def test_a_reserve_run_again_after_the_sale_sells_nothing_twice(
    store: InMemoryStateStore,
) -> None:
    # A workflow replayed from a history daprd saved only in part (kill -9 mid-save, Redis being
    # no transactional actor store) runs its steps again after the first run sold the stock.
    # Measured on the real stack before this: 59 orders processed and paid, 60 units sold.
    shop = Shop(store)
    order_input = await small_order(shop)
    request = ActivityRequest(
        order_id=ORDER_ID,
        item="paperclip",
        quantity=3,
        amount=int(str(order_input["total_cost"])),
    )
    for _ in range(2):  # the first run, then the replay of every step
        assert await shop.activities.reserve_inventory(request) is True
        assert await shop.activities.pay_unless_cancelled(request) is True
        await shop.activities.commit_inventory(request)

    level = await shop.inventory.level("paperclip")
    assert (level.sold, level.reserved, level.held) == (3, 0, {})
    assert await shop.payments.entry(ORDER_ID) == {
        "order_id": ORDER_ID,
        "amount": 15,
        "status": "paid",
    }
