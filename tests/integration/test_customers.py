"""CUSTOMER_AUTH=jwt on the real stack: two customers' orders stay apart end to end, a manager's
JWT approves, and a request without a token changes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from devstack.customer_keys import CustomerKeys
from devstack.stack import Stack
from tests.fixtures.browser import chromium
from tests.fixtures.customers import bearer
from tests.fixtures.manager import MANAGER
from tests.fixtures.orders import wait_until_finished
from tests.fixtures.stack import api_client, private_stack
from tests.fixtures.waiting import eventually

pytestmark = pytest.mark.integration

BIG_ORDER = {"item": "cars", "quantity": 4}  # 60,000: waits for a manager


@pytest.fixture(scope="module")
def customer_keys(tmp_path_factory: pytest.TempPathFactory) -> CustomerKeys:
    """devstack's local key (as `CUSTOMER_AUTH=jwt make run` uses it), in a folder of its own."""
    keys = CustomerKeys(tmp_path_factory.mktemp("customer-auth"))
    keys.ensure()
    return keys


@pytest.fixture(scope="module")
def jwt_stack(
    tmp_path_factory: pytest.TempPathFactory, customer_keys: CustomerKeys
) -> Iterator[Stack]:
    # module_stack's shape, built here because the app's CUSTOMER_JWKS must exist before the
    # stack starts, and it is made by the fixture above.
    env = {**customer_keys.app_env(), "APPROVAL_TIMEOUT_SECONDS": "300"}
    with private_stack(tmp_path_factory.mktemp("customers"), app_env=env) as running:
        yield running
        failure = running.supervision_failure
    assert failure is None, failure


@pytest.fixture
async def api(jwt_stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(jwt_stack) as client:
        yield client


async def place(api: httpx.AsyncClient, headers: dict[str, str], order_id: str) -> dict[str, Any]:
    response = await api.post("/orders", headers=headers, json={**BIG_ORDER, "order_id": order_id})
    assert response.status_code == 202, response.text
    return dict(response.json())


async def order_as(api: httpx.AsyncClient, headers: dict[str, str], order_id: str) -> Any:
    response = await api.get(f"/orders/{order_id}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def awaiting_approval(api: httpx.AsyncClient, headers: dict[str, str], order_id: str) -> None:
    await eventually(
        lambda: order_as(api, headers, order_id),
        lambda order: order["step"] == "awaiting_approval",
        what=f"{order_id} awaiting approval",
    )


async def test_two_customers_orders_stay_apart_and_a_manager_jwt_approves(
    api: httpx.AsyncClient, customer_keys: CustomerKeys
) -> None:
    alice = bearer(customer_keys.token("alice"))
    bob = bearer(customer_keys.token("bob"))
    mia = bearer(customer_keys.token("mia", manager=True))
    restock = {"item": "cars", "quantity": 8}
    assert (await api.post("/inventory/restock", headers=mia, json=restock)).status_code == 200

    await place(api, alice, "alice-order")
    await place(api, bob, "bob-order")
    await asyncio.gather(
        *(awaiting_approval(api, mia, order_id) for order_id in ("alice-order", "bob-order"))
    )

    # Each lists only their own, and the other's order is unknown on every route.
    for own, other, headers in (
        ("alice-order", "bob-order", alice),
        ("bob-order", "alice-order", bob),
    ):
        listed = (await api.get("/orders", headers=headers)).json()["orders"]
        assert [o["order_id"] for o in listed] == [own]
        for path in (f"/orders/{other}", f"/orders/{other}/history", f"/orders/{other}/events"):
            assert (await api.get(path, headers=headers)).status_code == 404, path
        assert (await api.get(f"/orders/{other}?wait=3", headers=headers)).status_code == 404
        assert (await api.post(f"/orders/{other}/cancel", headers=headers)).status_code == 404

    # Nothing of the above changed either order: both still wait for a manager.
    everyone = (await api.get("/orders", headers=mia)).json()["orders"]
    assert {o["order_id"]: o["step"] for o in everyone} == {
        "alice-order": "awaiting_approval",
        "bob-order": "awaiting_approval",
    }

    approved = await api.post("/orders/alice-order/approve", headers=mia)
    assert approved.status_code == 202, approved.text
    cancelled = await api.post("/orders/bob-order/cancel", headers=bob)
    assert cancelled.status_code == 202, cancelled.text

    async with as_customer(api, alice) as alices_api, as_customer(api, bob) as bobs_api:
        alices, bobs = await asyncio.gather(
            wait_until_finished(alices_api, "alice-order", 60),
            wait_until_finished(bobs_api, "bob-order", 60),
        )
    assert alices["result"] == {"processed": True, "reason": None}
    assert (alices["decision"], alices["decided_by"]) == ("approved", None)
    assert bobs["result"] == {"processed": False, "reason": "cancelled"}
    assert (await order_as(api, mia, "alice-order"))["decided_by"] == "mia"


async def test_without_a_token_nothing_is_created_or_read(api: httpx.AsyncClient) -> None:
    created = await api.post("/orders", json={**BIG_ORDER, "order_id": "anonymous-order"})
    assert created.status_code == 401, created.text
    assert created.headers["www-authenticate"] == "Bearer"
    assert (await api.get("/orders")).status_code == 401
    assert (await api.get("/orders/anonymous-order", headers=MANAGER)).status_code == 404


def as_customer(api: httpx.AsyncClient, headers: dict[str, str]) -> httpx.AsyncClient:
    """A client of the same API sending `headers` with every request (tests.fixtures.orders'
    helpers send none of their own)."""
    return httpx.AsyncClient(base_url=api.base_url, headers=headers, timeout=30.0)


@pytest.mark.browser
def test_the_console_works_with_a_manager_jwt(
    jwt_stack: Stack, customer_keys: CustomerKeys, tmp_path: Path
) -> None:
    # An order of alice's, waiting: the console, signed in with a manager's JWT instead of the
    # static token, lists it (GET /orders), follows it (GET /events) and approves it.
    alice = bearer(customer_keys.token("alice"))
    order = {**BIG_ORDER, "order_id": "console-jwt"}
    restock = {"item": "cars", "quantity": 4}
    manager = bearer(customer_keys.token("mia", manager=True))
    restocked = httpx.post(
        f"{jwt_stack.app_url}/inventory/restock", headers=manager, json=restock, timeout=10
    )
    assert restocked.status_code == 200, restocked.text
    placed = httpx.post(f"{jwt_stack.app_url}/orders", headers=alice, json=order, timeout=10)
    assert placed.status_code == 202, placed.text

    with chromium(tmp_path / "profile") as browser:
        page = browser.page
        page.goto(f"{jwt_stack.app_url}/console", timeout=30_000)
        page.get_by_label("Token (kept for this tab only)").fill(
            customer_keys.token("mia", manager=True)
        )
        page.get_by_role("button", name="Open console").click()
        expect(page.locator("#connection")).to_have_text("Live", timeout=30_000)
        approve = page.get_by_role("button", name="Approve console-jwt")
        approve.click(timeout=60_000)
        row = page.locator("#orders tr[data-order-id='console-jwt']")
        expect(row.locator("td.status")).to_have_text("COMPLETED", timeout=60_000)
        assert browser.foreign == []

    seen = httpx.get(f"{jwt_stack.app_url}/orders/console-jwt", headers=alice, timeout=10).json()
    assert (seen["decision"], seen["decided_by"]) == ("approved", None)
