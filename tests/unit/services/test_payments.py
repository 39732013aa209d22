"""PaymentLedger: one entry per order, ever; refunds mark it."""

from __future__ import annotations

import pytest

from app.services.payments import PaymentLedger
from tests.fixtures.fakes import InMemoryStateStore


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
    await ledger.charge("order-1", 999)

    assert [key for key in store.data if key.startswith("payment:")] == ["payment:order-1"]
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
