"""A cancel racing the payment: the service and the workflow's real activities on one store.

The point of no return is payment. A cancel the service accepts (202) must end the order
cancelled, with nothing paid and nothing held; a cancel that comes once payment may have started
must be refused (409), and the order goes through. The engine's view of the order is no help at
that boundary: its step shows the payment only after the workflow's turn is saved, and a slow
engine read is answered without it. So each case runs with the engine reporting the step before
payment, and with the engine read failing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from app.config import Settings
from app.errors import Conflict
from app.services.inventory import InventoryService
from app.services.order_records import OrderRecords
from app.services.orders import OrderService
from app.services.payments import PaymentLedger
from app.workflows.activities import OrderActivities
from app.workflows.contracts import Step
from tests.fixtures.fakes import FakeWorkflowGateway, InMemoryStateStore
from tests.fixtures.workflow_driver import ActivityCall, ScriptedContext, run_with_activities

ORDER_ID = "o1"


def engine_is_behind(gateway: FakeWorkflowGateway) -> None:
    gateway.set(ORDER_ID, "RUNNING", Step.RESERVING)


def engine_read_fails(gateway: FakeWorkflowGateway) -> None:
    gateway.unavailable_reads = True


ENGINE_VIEWS = pytest.mark.parametrize(
    "engine_view", [engine_is_behind, engine_read_fails], ids=["step-not-visible", "read-fails"]
)


class Shop:
    """The order service and the workflow's activities over the same store."""

    def __init__(self, store: InMemoryStateStore) -> None:
        self.store = store
        self.gateway = FakeWorkflowGateway()
        self.orders = OrderService(store, self.gateway, Settings(manager_token="t"))
        self.inventory = InventoryService(store)
        self.payments = PaymentLedger(store)
        self.activities = OrderActivities(self.inventory, self.payments, OrderRecords(store))
        self.cancel_answers: list[str] = []

    async def place_small_order(self) -> dict[str, Any]:
        await self.inventory.seed()
        await self.orders.create("paperclip", 3, ORDER_ID)
        ((_, _, order_input),) = self.gateway.scheduled
        assert order_input["approval_required"] is False
        return dict(order_input)

    def raised_events(self) -> list[tuple[str, Any]]:
        return [(event, data) for order_id, event, data in self.gateway.events]

    def cancel_at_payment(self) -> Callable[[ScriptedContext, ActivityCall], Any]:
        """A hook that sends one cancel when the workflow is at the payment step."""

        async def cancel(ctx: ScriptedContext, call: ActivityCall) -> None:
            if ctx.step != Step.PROCESSING_PAYMENT or self.cancel_answers:
                return
            try:
                await self.orders.cancel(ORDER_ID)
                self.cancel_answers.append("202")
            except Conflict as refused:
                self.cancel_answers.append(f"409 {refused}")

        return cancel

    async def nothing_paid_or_held(self) -> bool:
        level = await self.inventory.level("paperclip")
        return (
            await self.payments.entry(ORDER_ID) is None
            and ORDER_ID not in level.held
            and level.sold == 0
        )


@ENGINE_VIEWS
async def test_a_cancel_accepted_just_before_payment_ends_the_order_cancelled(
    store: InMemoryStateStore, engine_view: Callable[[FakeWorkflowGateway], None]
) -> None:
    shop = Shop(store)
    order_input = await shop.place_small_order()
    engine_view(shop.gateway)

    run = await run_with_activities(
        order_input,
        shop.activities,
        raised_events=shop.raised_events,
        before_activity=shop.cancel_at_payment(),
    )

    # Payment has not started when the cancel arrives: it is accepted, so it must be the outcome.
    assert shop.cancel_answers == ["202"]
    assert run.result == {"processed": False, "reason": "cancelled"}
    assert await shop.nothing_paid_or_held()


@ENGINE_VIEWS
async def test_a_cancel_once_payment_has_started_is_refused_and_the_order_goes_through(
    store: InMemoryStateStore, engine_view: Callable[[FakeWorkflowGateway], None]
) -> None:
    shop = Shop(store)
    order_input = await shop.place_small_order()
    engine_view(shop.gateway)

    run = await run_with_activities(
        order_input,
        shop.activities,
        raised_events=shop.raised_events,
        after_activity=shop.cancel_at_payment(),
    )

    assert len(shop.cancel_answers) == 1
    assert shop.cancel_answers[0].startswith("409 "), shop.cancel_answers
    assert "past payment" in shop.cancel_answers[0]
    assert run.result == {"processed": True, "reason": None}
    assert await shop.payments.entry(ORDER_ID) is not None
