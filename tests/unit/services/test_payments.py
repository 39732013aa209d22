"""PaymentLedger: one entry per order, ever; refunds mark it."""

from __future__ import annotations

import pytest

from app.errors import DependencyUnavailable, StoredStateConflict
from app.services.payments import PaymentLedger
from app.services.state_store import SidecarStateStore
from tests.fixtures.fakes import InMemoryStateStore, RedisStateApi


@pytest.fixture
def ledger(store: InMemoryStateStore) -> PaymentLedger:
    return PaymentLedger(store)


async def test_charge_records_a_paid_entry(ledger: PaymentLedger) -> None:
    await ledger.charge("order-1", 500)

    assert await ledger.entry("order-1") == {"order_id": "order-1", "amount": 500, "status": "paid"}


async def test_charge_twice_keeps_one_ledger_entry(
    ledger: PaymentLedger, store: InMemoryStateStore
) -> None:
    await ledger.charge("order-1", 500)
    await ledger.charge("order-1", 500)

    assert [key for key in store.data if key.startswith("payment:")] == ["payment:order-1"]
    assert await ledger.entry("order-1") == {"order_id": "order-1", "amount": 500, "status": "paid"}


async def test_an_entry_of_another_amount_is_not_taken_for_this_payment(
    ledger: PaymentLedger,
) -> None:
    await ledger.charge("order-1", 500)

    with pytest.raises(StoredStateConflict, match="not a payment of 999"):
        await ledger.charge("order-1", 999)

    assert await ledger.entry("order-1") == {"order_id": "order-1", "amount": 500, "status": "paid"}


async def test_refund_marks_the_entry_refunded(ledger: PaymentLedger) -> None:
    await ledger.charge("order-1", 500)

    await ledger.refund("order-1")

    assert await ledger.entry("order-1") == {
        "order_id": "order-1",
        "amount": 500,
        "status": "refunded",
    }


async def test_charge_after_refund_does_not_charge_again(ledger: PaymentLedger) -> None:
    await ledger.charge("order-1", 500)
    await ledger.refund("order-1")

    await ledger.charge("order-1", 500)

    entry = await ledger.entry("order-1")
    assert entry is not None
    assert entry["status"] == "refunded"


async def test_refund_of_an_unknown_order_is_a_no_op(
    ledger: PaymentLedger, store: InMemoryStateStore
) -> None:
    await ledger.refund("never-charged")

    assert store.data == {}
    assert await ledger.entry("never-charged") is None


async def test_refund_twice_writes_once(ledger: PaymentLedger, store: InMemoryStateStore) -> None:
    await ledger.charge("order-1", 500)
    await ledger.refund("order-1")
    saves = store.saves

    await ledger.refund("order-1")

    assert store.saves == saves


async def test_refund_retries_an_etag_conflict(
    ledger: PaymentLedger, store: InMemoryStateStore
) -> None:
    await ledger.charge("order-1", 500)
    store.conflict_next_saves = 2

    await ledger.refund("order-1")

    entry = await ledger.entry("order-1")
    assert entry is not None
    assert entry["status"] == "refunded"


# Over the sidecar adapter and daprd's Redis answers: a refused write and a create of a key that
# exists both come back as a 500 "failed to set key".


async def test_a_payment_write_the_store_refuses_is_an_error_not_an_earlier_payment(
    sidecar_store: SidecarStateStore, redis_api: RedisStateApi
) -> None:
    redis_api.read_only.add("payment:")
    ledger = PaymentLedger(sidecar_store)

    with pytest.raises(DependencyUnavailable, match="NOPERM"):
        await ledger.charge("order-1", 500)

    assert redis_api.refused_writes == 1
    assert await ledger.entry("order-1") is None


async def test_a_charge_run_again_after_its_write_landed_keeps_the_one_entry(
    sidecar_store: SidecarStateStore, redis_api: RedisStateApi
) -> None:
    # An activity that wrote its entry and died before reporting it runs again: its create gets
    # the store's 500, and the read-back finds this order's payment there.
    ledger = PaymentLedger(sidecar_store)
    await ledger.charge("order-1", 500)

    await ledger.charge("order-1", 500)

    assert redis_api.value("payment:order-1") == {
        "order_id": "order-1",
        "amount": 500,
        "status": "paid",
    }


async def test_a_charge_retried_once_the_store_takes_writes_again_records_the_payment(
    sidecar_store: SidecarStateStore, redis_api: RedisStateApi
) -> None:
    redis_api.read_only.add("payment:")
    ledger = PaymentLedger(sidecar_store)
    with pytest.raises(DependencyUnavailable):
        await ledger.charge("order-1", 500)
    redis_api.read_only.clear()

    await ledger.charge("order-1", 500)

    assert await ledger.entry("order-1") == {"order_id": "order-1", "amount": 500, "status": "paid"}
