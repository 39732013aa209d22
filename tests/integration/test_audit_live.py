"""The auditor on a busy store: audits taken while orders move through every step find nothing,
so a violation it reports is one, never the order it read half way. A stack of its own, with a
long approval timeout: every decision here is made in time, however loaded the machine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from devstack.stack import Stack
from tests.fixtures.audit import assert_audit_clean, audit_api
from tests.fixtures.manager import MANAGER
from tests.fixtures.orders import create, wait_for_step, wait_until_finished
from tests.fixtures.stack import api_client, module_stack

ORDERS = 80
CLIENTS = 8
# (item, quantity, what the manager does once it waits): small ones go straight through; the
# 1,000 computers never find enough stock.
KINDS: list[tuple[str, int, str | None]] = [
    ("paperclip", 2, None),
    ("cars", 4, "approve"),
    ("computers", 3, None),
    ("cars", 4, "reject"),
    ("cars", 4, "cancel"),
    ("computers", 1000, None),
]


live_stack = module_stack("audit-live", app_env={"APPROVAL_TIMEOUT_SECONDS": "300"})


@pytest.fixture
async def api(live_stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(live_stack) as client:
        yield client


async def place(api: httpx.AsyncClient, number: int) -> dict[str, Any]:
    item, quantity, decision = KINDS[number % len(KINDS)]
    order_id = (await create(api, item, quantity))["order_id"]
    if decision is not None:
        await wait_for_step(api, order_id, "awaiting_approval")
        if decision == "cancel":
            decided = await api.post(f"/orders/{order_id}/cancel", headers=MANAGER)
        else:
            body = {"approved": decision == "approve"}
            decided = await api.post(f"/orders/{order_id}/approve", headers=MANAGER, json=body)
        assert decided.status_code == 202, decided.text
    return await wait_until_finished(api, order_id)


async def test_audits_of_a_busy_store_find_nothing(
    live_stack: Stack, api: httpx.AsyncClient
) -> None:
    for item in ("paperclip", "cars", "computers"):
        restock = {"item": item, "quantity": 400}
        assert (
            await api.post("/inventory/restock", headers=MANAGER, json=restock)
        ).status_code == 200
    clients = asyncio.Semaphore(CLIENTS)

    async def one(number: int) -> dict[str, Any]:
        async with clients:
            return await place(api, number)

    orders = asyncio.ensure_future(asyncio.gather(*(one(n) for n in range(ORDERS))))
    reports = []
    while not orders.done():
        reports.append(await audit_api(api))
    finished = await orders

    in_flight = [r["checked"]["in_flight"] for r in reports]
    assert [r for r in reports if not r["ok"]] == []
    # Audits that saw orders in the middle of their steps, or this proved nothing.
    assert sum(1 for count in in_flight if count > 0) >= 5, in_flight
    reasons = {o["result"]["reason"] for o in finished}
    assert reasons == {None, "rejected", "cancelled", "insufficient_inventory"}
    checked = await assert_audit_clean(api, live_stack)
    assert (checked["orders"], checked["in_flight"]) == (ORDERS, 0)
