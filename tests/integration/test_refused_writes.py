"""Redis refuses the payment writes: no order completes unpaid, and all complete once it stops.

daprd's Redis store answers a write Redis refused with the same 500 "failed to set key" as a
create of a key that exists. Here a Redis 7 ACL makes `payment:` keys read-only for the user
daprd connects as, while orders run: every payment write is refused, everything else works.
Orders must wait at the payment step (the activity fails and is retried), never go on as paid;
once the ACL is lifted, each order completes, processed, with its one ledger entry. Refused
listing writes likewise fail the create (503) instead of leaving an accepted order unlisted.
On a stack of its own: the ACL is on the whole Redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from devstack.stack import Stack
from tests.fixtures.audit import assert_audit_clean
from tests.fixtures.faults import (
    RECOVERY_SECONDS,
    ledger,
    refused_writes,
    writes_refused,
)
from tests.fixtures.manager import MANAGER
from tests.fixtures.orders import create, new_id, order, wait_until_finished
from tests.fixtures.stack import api_client, module_stack
from tests.fixtures.waiting import eventually

# Small orders (no approval): 3 computers at 500 each.
ORDERS = 3
QUANTITY = 3
# Refusals of each order's payment write seen before the writes come back: the first run of the
# activity and at least one retry (the activity's retry policy waits 1 s, then 2, 4, 8, 10; a
# fault that outlasts those ~25 s keeps the order waiting in the workflow's own retry rounds,
# tests/integration/test_store_outage.py).
REFUSALS = 2


refusing_stack = module_stack("refused-writes")


@pytest.fixture
async def refusing_api(refusing_stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(refusing_stack) as client:
        yield client


async def test_refused_payment_writes_hold_orders_at_payment_until_they_are_taken(
    refusing_stack: Stack, refusing_api: httpx.AsyncClient
) -> None:
    api = refusing_api
    reset = await api.post("/inventory/restock", headers=MANAGER)
    assert reset.status_code == 200, reset.text
    ids = [new_id("refused") for _ in range(ORDERS)]

    with writes_refused(refusing_stack, "payment:"):
        await asyncio.gather(*(create(api, "computers", QUANTITY, order_id) for order_id in ids))

        async def progress() -> tuple[dict[str, int], list[dict[str, Any]]]:
            return refused_writes(refusing_stack), [await order(api, i) for i in ids]

        # Each order either reached payment and has been refused (and retried), or went on past
        # it (the misread this guards against): wait until one or the other is true for all.
        refused, orders = await eventually(
            progress,
            lambda seen: all(
                seen[0].get(f"payment:{o['order_id']}", 0) >= REFUSALS or o["result"] is not None
                for o in seen[1]
            ),
            deadline_seconds=60,
            what=f"every order's payment write refused {REFUSALS} times, or the order finished",
        )
        assert [(o["order_id"], o["step"], o["result"]) for o in orders] == [
            (order_id, "processing_payment", None) for order_id in ids
        ], refused
        assert ledger(refusing_stack) == {}

    finished = await asyncio.gather(
        *(wait_until_finished(api, order_id, RECOVERY_SECONDS) for order_id in ids)
    )
    assert [o["result"] for o in finished] == [{"processed": True, "reason": None}] * ORDERS
    # Each processed order's one ledger entry, paid, for its total; nothing held; the units sold
    # the processed orders': the auditor's check.
    await assert_audit_clean(api, refusing_stack)


async def test_a_refused_listing_write_fails_the_create_and_its_retry_lists_the_order(
    refusing_stack: Stack, refusing_api: httpx.AsyncClient
) -> None:
    api = refusing_api
    order_id = new_id("unlisted")
    body = {"item": "computers", "quantity": 1, "order_id": order_id}

    with writes_refused(refusing_stack, "orders:by-sequence:"):
        refused = await api.post("/orders", json=body)
        assert refused.status_code == 503, refused.text
        assert "NOPERM" in refused.json()["detail"], refused.text
        # The record was written before the refused listing: the 503 says the order may exist
        # and how to get it without a second one.
        answer = refused.json()
        assert (answer["may_have_happened"], answer["retry"]) == (True, "same_order_id"), answer
        assert answer["order_id"] == order_id, answer

    # 200 today: the record written before the refused listing stays, and the retry finds it;
    # 202 if the failed create is undone first.
    retried = await api.post("/orders", json=body)
    assert retried.status_code in (200, 202), retried.text
    listed = await api.get("/orders", params={"limit": 100})
    assert order_id in [o["order_id"] for o in listed.json()["orders"]], listed.text
    done = await wait_until_finished(api, order_id, RECOVERY_SECONDS)
    assert done["result"] == {"processed": True, "reason": None}
    await assert_audit_clean(api, refusing_stack)


async def test_a_refused_stock_write_is_a_503_not_a_lost_race(
    refusing_stack: Stack, refusing_api: httpx.AsyncClient
) -> None:
    # A replace (ETag) that Redis refuses comes back from daprd as an ETag mismatch, a 409: read
    # as a lost race it was retried 50 times and answered 409 "too contended".
    restock = {"item": "cars", "quantity": 1}
    with writes_refused(refusing_stack, "inventory:"):
        refused = await refusing_api.post("/inventory/restock", json=restock, headers=MANAGER)
        assert refused.status_code == 503, refused.text
        assert "NOPERM" in refused.json()["detail"], refused.text
        assert refused_writes(refusing_stack) == {"inventory:cars": 1}

    taken = await refusing_api.post("/inventory/restock", json=restock, headers=MANAGER)
    assert taken.status_code == 200, taken.text
    await assert_audit_clean(refusing_api, refusing_stack)
