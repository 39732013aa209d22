"""A reserve that Dapr runs again, racing the workflow: its check of the payment mark comes
before the payment, its hold lands after the commit (or the release). Seen on the real stack by
the auditor after kill -9 of a replica's daprd: an order processed and paid, and 1 paperclip
still held for it (tests/integration/test_start_outbox.py). The commit and the release mark the
order record first, and a reserve that made a hold for an order so marked gives it back."""

from __future__ import annotations

from app.workflows.activities import OrderActivities
from app.workflows.contracts import ActivityRequest
from tests.fixtures.fakes import InMemoryStateStore
from tests.fixtures.shop import ORDER_ID, Shop

REQUEST = ActivityRequest(order_id=ORDER_ID, item="paperclip", quantity=3, amount=15)


class CheckedBeforePayment:
    """The order records as a late run of reserve saw them: its payment-started check was
    answered before the payment started."""

    def __init__(self, shop: Shop) -> None:
        self._records = shop.activities._orders

    def __getattr__(self, name: str) -> object:
        return getattr(self._records, name)

    async def payment_started(self, order_id: str) -> bool:
        return False


def late_run(shop: Shop) -> OrderActivities:
    return OrderActivities(shop.inventory, shop.payments, CheckedBeforePayment(shop))  # type: ignore[arg-type]


async def test_a_reserve_landing_after_the_commit_holds_nothing(store: InMemoryStateStore) -> None:
    shop = Shop(store)
    await shop.place("paperclip", 3)
    assert await shop.activities.reserve_inventory(REQUEST)
    assert await shop.activities.pay_unless_cancelled(REQUEST)
    await shop.activities.commit_inventory(REQUEST)

    await late_run(shop).reserve_inventory(REQUEST)

    level = await shop.inventory.level("paperclip")
    assert (ORDER_ID in level.held, level.reserved, level.sold) == (False, 0, 3)
    assert level.quantity + level.sold == 100


async def test_a_reserve_landing_after_the_release_holds_nothing(store: InMemoryStateStore) -> None:
    shop = Shop(store)
    await shop.place("paperclip", 3)
    assert await shop.activities.reserve_inventory(REQUEST)
    await shop.orders.cancel(ORDER_ID)
    await shop.activities.release_inventory(REQUEST)

    await late_run(shop).reserve_inventory(REQUEST)

    assert await shop.nothing_paid_or_held("paperclip")
    assert (await shop.inventory.level("paperclip")).quantity == 100


async def test_a_reserve_run_again_before_the_commit_keeps_the_orders_hold(
    store: InMemoryStateStore,
) -> None:
    # The commit has marked the record, not yet moved the stock: the hold is the order's own.
    shop = Shop(store)
    await shop.place("paperclip", 3)
    assert await shop.activities.reserve_inventory(REQUEST)
    await shop.activities.pay_unless_cancelled(REQUEST)
    await shop.activities._orders.settle_stock(ORDER_ID)

    assert await late_run(shop).reserve_inventory(REQUEST)
    await shop.inventory.commit(ORDER_ID, "paperclip")

    level = await shop.inventory.level("paperclip")
    assert (level.held, level.sold) == ({}, 3)
