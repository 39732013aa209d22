"""The auditor on the real stack: orders of every outcome leave a store it passes, and a real
violation (a payment deleted from the ledger) is reported by both the command line and GET /audit
with the order's id. A stack of its own: the seeded violation must not reach other tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from devstack.audit import audit_cli
from devstack.stack import Stack
from tests.fixtures.audit import assert_audit_clean, audit_api
from tests.fixtures.manager import MANAGER
from tests.fixtures.orders import create, wait_for_step, wait_until_finished
from tests.fixtures.stack import APPROVAL_TIMEOUT_SECONDS, api_client, module_stack

audit_stack = module_stack(
    "audit-stack", app_env={"APPROVAL_TIMEOUT_SECONDS": str(APPROVAL_TIMEOUT_SECONDS)}
)


@pytest.fixture
async def api(audit_stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(audit_stack) as client:
        yield client


async def decided(api: httpx.AsyncClient, decision: str) -> str:
    """An order of 4 cars (approval needed), decided by a manager once it waits."""
    order_id: str = (await create(api, "cars", 4))["order_id"]
    await wait_for_step(api, order_id, "awaiting_approval")
    if decision == "cancel":
        response = await api.post(f"/orders/{order_id}/cancel", headers=MANAGER)
    else:
        body = {"approved": decision == "approve", "approver": "auditor-test"}
        response = await api.post(f"/orders/{order_id}/approve", headers=MANAGER, json=body)
    assert response.status_code == 202, response.text
    return order_id


async def test_orders_of_every_outcome_leave_nothing_for_the_auditor(
    audit_stack: Stack, api: httpx.AsyncClient
) -> None:
    before = (await audit_api(api))["checked"]
    restock = {"item": "computers", "quantity": 5}
    assert (await api.post("/inventory/restock", headers=MANAGER, json=restock)).status_code == 200
    # 90 computers (45,000, no approval) leave 15: the same order again is out of stock.
    computers = (await create(api, "computers", 90))["order_id"]
    assert (await wait_until_finished(api, computers))["result"]["processed"] is True
    too_many = (await create(api, "computers", 90))["order_id"]
    small = (await create(api, "paperclip", 3))["order_id"]
    timed_out = (await create(api, "cars", 4))["order_id"]
    approved, rejected, cancelled = await asyncio.gather(
        decided(api, "approve"), decided(api, "reject"), decided(api, "cancel")
    )
    expected = {
        small: {"processed": True, "reason": None},
        approved: {"processed": True, "reason": None},
        rejected: {"processed": False, "reason": "rejected"},
        cancelled: {"processed": False, "reason": "cancelled"},
        timed_out: {"processed": False, "reason": "approval_timeout"},
        too_many: {"processed": False, "reason": "insufficient_inventory"},
    }
    finished = await asyncio.gather(*(wait_until_finished(api, o) for o in expected))
    assert {order["order_id"]: order["result"] for order in finished} == expected

    checked = await assert_audit_clean(api, audit_stack)

    added = {
        name: checked[name] - before[name] for name in ("orders", "processed", "payments_paid")
    }
    assert added == {"orders": 7, "processed": 3, "payments_paid": 3}
    assert checked["in_flight"] == 0
    assert checked["items_sales_unverified"] == 0


async def test_a_payment_deleted_from_the_ledger_is_reported_by_both(
    audit_stack: Stack, api: httpx.AsyncClient
) -> None:
    order_id = (await create(api, "paperclip", 1))["order_id"]
    assert (await wait_until_finished(api, order_id))["result"]["processed"] is True
    key = f"{audit_stack.dapr_http_url}/v1.0/state/statestore/payment:{order_id}"
    async with httpx.AsyncClient(headers=audit_stack.dapr_headers) as sidecar:
        entry = await sidecar.get(key)
        assert entry.status_code == 200, entry.text
        assert (await sidecar.delete(key)).status_code == 204
        try:
            status, report = await audit_cli(audit_stack)
            served = await audit_api(api)
        finally:
            # Put it back, so that the module's other test finds a clean store whatever the order.
            restored = await sidecar.post(
                f"{audit_stack.dapr_http_url}/v1.0/state/statestore",
                json=[{"key": f"payment:{order_id}", "value": entry.json()}],
            )
            assert restored.status_code == 204, restored.text

    violation = {
        "invariant": "payment",
        "order_id": order_id,
        "detail": "processed, but the ledger has no entry",
    }
    assert (status, report["ok"], report["violations"]) == (1, False, [violation])
    assert (served["ok"], served["violations"]) == (False, [violation])
