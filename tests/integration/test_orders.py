"""Every branch of the order workflow, end to end over HTTP on the real Dapr stack."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from devstack.stack import Stack
from tests.fixtures.orders import (
    assert_invariant,
    create,
    new_id,
    order,
    stock_doc,
    wait_for_step,
    wait_until_finished,
)
from tests.fixtures.stack import APPROVAL_TIMEOUT_SECONDS

# cars cost 15,000: four of them (60,000) need a manager, one (15,000) does not.
BIG = ("cars", 4)


@pytest.fixture(autouse=True)
async def enough_stock(api: httpx.AsyncClient, manager: dict[str, str]) -> None:
    """Earlier tests (the fuzzer among them) may have sold stock: top up what these tests use,
    so each test's outcome depends on its own orders only."""
    for item, units in (("cars", 12), ("paperclip", 20)):
        topped = await api.post(
            "/inventory/restock", headers=manager, json={"item": item, "quantity": units}
        )
        assert topped.status_code == 200, topped.text


async def test_small_order_completes_and_sells_stock(api: httpx.AsyncClient, stack: Stack) -> None:
    before = stock_doc(stack, "paperclip")
    created = await create(api, "PaperClip", 3)
    assert created["status"] in {"PENDING", "RUNNING"}
    assert (created["item"], created["total_cost"], created["approval_required"]) == (
        "paperclip",
        15,
        False,
    )
    done = await wait_until_finished(api, created["order_id"])
    assert done["status"] == "COMPLETED"
    assert done["result"] == {"processed": True, "reason": None}
    after = assert_invariant(stack, "paperclip")
    assert after["sold"] - before["sold"] == 3


async def test_get_right_after_post_returns_the_order(api: httpx.AsyncClient) -> None:
    order_id = new_id("instant")
    await create(api, "paperclip", 1, order_id)
    found = await order(api, order_id)
    assert found["order_id"] == order_id
    assert found["status"] in {"PENDING", "RUNNING", "COMPLETED"}


async def test_order_above_threshold_waits_for_approval_then_completes(
    api: httpx.AsyncClient, stack: Stack, manager: dict[str, str]
) -> None:
    created = await create(api, *BIG)
    assert created["approval_required"] is True
    waiting = await wait_for_step(api, created["order_id"], "awaiting_approval")
    assert waiting["status"] == "RUNNING"
    assert stock_doc(stack, "cars")["held"][created["order_id"]] == 4
    approved = await api.post(
        f"/orders/{created['order_id']}/approve", headers=manager, json={"approver": "alice"}
    )
    assert approved.status_code == 202, approved.text
    done = await wait_until_finished(api, created["order_id"])
    assert done["result"] == {"processed": True, "reason": None}
    assert created["order_id"] not in assert_invariant(stack, "cars")["held"]


async def test_second_approval_is_refused_not_swallowed(
    api: httpx.AsyncClient, manager: dict[str, str]
) -> None:
    created = await create(api, *BIG)
    await wait_for_step(api, created["order_id"], "awaiting_approval")
    first = await api.post(f"/orders/{created['order_id']}/approve", headers=manager)
    second = await api.post(f"/orders/{created['order_id']}/approve", headers=manager)
    assert first.status_code == 202
    assert second.status_code == 409
    # One decision per order: the second names the first.
    assert second.json()["error"] == "decision_already_made"
    assert second.json()["detail"].startswith("approved by manager at ")
    await wait_until_finished(api, created["order_id"])


async def test_approval_sent_before_the_wait_still_counts(
    api: httpx.AsyncClient, manager: dict[str, str]
) -> None:
    created = await create(api, *BIG)
    # No wait for "awaiting_approval": Dapr buffers the event until the workflow asks for it.
    approved = await api.post(f"/orders/{created['order_id']}/approve", headers=manager)
    assert approved.status_code == 202, approved.text
    done = await wait_until_finished(api, created["order_id"])
    assert done["result"] == {"processed": True, "reason": None}


async def test_rejected_order_releases_reserved_stock(
    api: httpx.AsyncClient, stack: Stack, manager: dict[str, str]
) -> None:
    created = await create(api, *BIG)
    await wait_for_step(api, created["order_id"], "awaiting_approval")
    rejected = await api.post(
        f"/orders/{created['order_id']}/approve", headers=manager, json={"approved": False}
    )
    assert rejected.status_code == 202
    done = await wait_until_finished(api, created["order_id"])
    assert done["result"] == {"processed": False, "reason": "rejected"}
    assert created["order_id"] not in assert_invariant(stack, "cars")["held"]


async def test_unanswered_approval_times_out_and_releases(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    created = await create(api, *BIG)
    await wait_for_step(api, created["order_id"], "awaiting_approval")
    done = await wait_until_finished(
        api, created["order_id"], seconds=APPROVAL_TIMEOUT_SECONDS + 30
    )
    assert done["result"] == {"processed": False, "reason": "approval_timeout"}
    assert created["order_id"] not in assert_invariant(stack, "cars")["held"]


async def test_order_larger_than_stock_finishes_insufficient_with_nothing_reserved(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    before = stock_doc(stack, "paperclip")
    created = await create(api, "paperclip", before["quantity"] + 1)
    done = await wait_until_finished(api, created["order_id"])
    assert done["result"] == {"processed": False, "reason": "insufficient_inventory"}
    after = assert_invariant(stack, "paperclip")
    assert created["order_id"] not in after["held"]


async def test_cancel_while_awaiting_approval_releases_stock(
    api: httpx.AsyncClient, stack: Stack, manager: dict[str, str]
) -> None:
    created = await create(api, *BIG)
    await wait_for_step(api, created["order_id"], "awaiting_approval")
    cancelled = await api.post(f"/orders/{created['order_id']}/cancel", headers=manager)
    assert cancelled.status_code == 202, cancelled.text
    done = await wait_until_finished(api, created["order_id"])
    assert done["result"] == {"processed": False, "reason": "cancelled"}
    assert created["order_id"] not in assert_invariant(stack, "cars")["held"]
    again = await api.post(f"/orders/{created['order_id']}/cancel", headers=manager)
    assert again.status_code == 409


async def test_same_order_id_and_body_returns_the_existing_order(api: httpx.AsyncClient) -> None:
    order_id = new_id("idem")
    first = await api.post(
        "/orders", json={"item": "paperclip", "quantity": 2, "order_id": order_id}
    )
    second = await api.post(
        "/orders", json={"item": "PAPERCLIP", "quantity": 2, "order_id": order_id}
    )
    assert first.status_code == 202
    assert second.status_code == 200
    assert second.headers["location"] == f"/orders/{order_id}"
    assert second.json()["created_at"] == first.json()["created_at"]
    done = await wait_until_finished(api, order_id)
    assert done["result"] == {"processed": True, "reason": None}


async def test_same_order_id_with_another_body_conflicts(api: httpx.AsyncClient) -> None:
    order_id = new_id("clash")
    await create(api, "paperclip", 2, order_id)
    clash = await api.post(
        "/orders", json={"item": "paperclip", "quantity": 3, "order_id": order_id}
    )
    assert clash.status_code == 409
    assert clash.json()["error"] == "conflict"
    assert (await order(api, order_id))["quantity"] == 2


async def test_restock_adds_units_and_keeps_the_invariant(
    api: httpx.AsyncClient, stack: Stack, manager: dict[str, str]
) -> None:
    before = stock_doc(stack, "paperclip")
    response = await api.post(
        "/inventory/restock", headers=manager, json={"item": "paperclip", "quantity": 25}
    )
    assert response.status_code == 200, response.text
    after = assert_invariant(stack, "paperclip")
    assert after["quantity"] - before["quantity"] == 25
    assert after["stock"] - before["stock"] == 25


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/orders/x/approve"), ("POST", "/orders/x/cancel"), ("POST", "/inventory/restock")],
)
@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong-token", "Basic aW50ZWdyYXRpb246dG9rZW4="]
)
async def test_manager_endpoints_refuse_missing_or_wrong_credentials(
    api: httpx.AsyncClient, stack: Stack, method: str, path: str, authorization: str | None
) -> None:
    before = stock_doc(stack, "computers")
    headers = {"Authorization": authorization} if authorization else {}
    response = await api.request(method, path, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert stock_doc(stack, "computers") == before


async def test_concurrent_orders_never_oversell(
    api: httpx.AsyncClient, stack: Stack, manager: dict[str, str]
) -> None:
    reset = await api.post("/inventory/restock", headers=manager)
    assert reset.status_code == 200
    assert stock_doc(stack, "computers")["quantity"] == 100
    responses = await asyncio.gather(
        *(api.post("/orders", json={"item": "computers", "quantity": 10}) for _ in range(15))
    )
    assert [r.status_code for r in responses] == [202] * 15
    results = await asyncio.gather(
        *(wait_until_finished(api, r.json()["order_id"], 120) for r in responses)
    )
    reasons = sorted(str(r["result"]["reason"]) for r in results)
    assert reasons == ["None"] * 10 + ["insufficient_inventory"] * 5
    doc = assert_invariant(stack, "computers")
    assert (doc["quantity"], doc["reserved"], doc["sold"]) == (0, 0, 100)
    listed = (await api.get("/inventory/computers")).json()
    assert (listed["quantity"], listed["reserved"]) == (0, 0)


async def test_get_with_wait_answers_once_the_order_has_finished(api: httpx.AsyncClient) -> None:
    created = await create(api, "paperclip", 1)
    response = await api.get(f"/orders/{created['order_id']}", params={"wait": 20})
    assert response.status_code == 200
    assert response.json()["result"] == {"processed": True, "reason": None}
