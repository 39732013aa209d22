"""Bounded storage on the real stack: finished workflows are purged by the engine after the
retention period (here 5 s), and every order keeps answering exactly as before."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis

from devstack.settings import APP_ID
from devstack.stack import Stack
from tests.fixtures.manager import MANAGER
from tests.fixtures.orders import create, new_id, wait_for_step, wait_until_finished
from tests.fixtures.stack import api_client, module_stack
from tests.fixtures.waiting import eventually

RETENTION_SECONDS = 5
# Keys a finished order may leave: its record, its listing entry, its payment ledger entry.
MAX_KEYS_PER_ORDER = 3
MAX_BYTES_PER_ORDER = 1536
MAX_BYTES_DECIDED = 2048


retention_stack = module_stack(
    "retention",
    app_env={"APPROVAL_TIMEOUT_SECONDS": "300"},
    settings={"ORDER_HISTORY_RETENTION_SECONDS": RETENTION_SECONDS},
)


@pytest.fixture
async def api(retention_stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(retention_stack) as client:
        yield client


def redis_client(stack: Stack) -> redis.Redis:
    return redis.Redis(port=stack.settings.redis_port, decode_responses=True)


def keys_of(stack: Stack, order_id: str) -> list[str]:
    """Every key the order holds: those named after it, and its listing entry, whose name is
    its sequence number."""
    with redis_client(stack) as client:
        named = [str(key) for key in client.scan_iter(match=f"*{order_id}*", count=1000)]
        listing = [
            str(key)
            for key in client.scan_iter(match=f"{APP_ID}||orders:by-sequence:*", count=1000)
            if order_id in str(client.hget(key, "data"))
        ]
    return named + listing


def bytes_of(stack: Stack, keys: list[str]) -> int:
    with redis_client(stack) as client:
        return sum(int(client.memory_usage(key) or 0) for key in keys)


async def place_finished_orders(api: httpx.AsyncClient) -> list[str]:
    restock = {"item": "paperclip", "quantity": 1000}
    assert (await api.post("/inventory/restock", headers=MANAGER, json=restock)).status_code == 200
    assert (
        await api.post("/inventory/restock", headers=MANAGER, json={"item": "cars", "quantity": 20})
    ).status_code == 200
    small = [(await create(api, "paperclip", 2, new_id("kept")))["order_id"] for _ in range(12)]
    approved = (await create(api, "cars", 4, new_id("kept-approved")))["order_id"]
    rejected = (await create(api, "cars", 4, new_id("kept-rejected")))["order_id"]
    for order_id, approve in ((approved, True), (rejected, False)):
        await wait_for_step(api, order_id, "awaiting_approval")
        reply = await api.post(
            f"/orders/{order_id}/approve", headers=MANAGER, json={"approved": approve}
        )
        assert reply.status_code == 202, reply.text
    orders = [*small, approved, rejected]
    await asyncio.gather(*(wait_until_finished(api, order_id) for order_id in orders))
    return orders


async def answers(api: httpx.AsyncClient, orders: list[str]) -> dict[str, Any]:
    """Everything a client can learn about these orders."""
    found: dict[str, Any] = {}
    for order_id in orders:
        found[order_id] = (await api.get(f"/orders/{order_id}")).json()
        approve = await api.post(f"/orders/{order_id}/approve", headers=MANAGER)
        cancel = await api.post(f"/orders/{order_id}/cancel", headers=MANAGER)
        found[f"{order_id}/approve"] = (approve.status_code, approve.json())
        found[f"{order_id}/cancel"] = (cancel.status_code, cancel.json())
    listed = (await api.get("/orders", params={"limit": 100})).json()["orders"]
    found["listed"] = [order for order in listed if order["order_id"] in orders]
    return found


async def test_finished_orders_leave_three_keys_and_answer_unchanged_after_the_purge(
    retention_stack: Stack, api: httpx.AsyncClient
) -> None:
    orders = await place_finished_orders(api)
    before = await answers(api, orders)
    assert all(before[f"{o}/approve"][0] == 409 for o in orders), before

    def workflow_keys() -> int:
        return sum(
            1 for order_id in orders for key in keys_of(retention_stack, order_id)
            if "dapr.internal" in key
        )  # fmt: skip

    async def count() -> int:
        return workflow_keys()

    # The engine purges each history RETENTION_SECONDS after it finished (a reminder each).
    await eventually(count, lambda left: left == 0, deadline_seconds=90, what="histories purged")

    after = await answers(api, orders)
    assert after == before
    for order_id in orders:
        keys = keys_of(retention_stack, order_id)
        assert len(keys) <= MAX_KEYS_PER_ORDER, keys
        # A manager's decision and the longer timeline of an approval add ~0.2 KB to the record.
        limit = (
            MAX_BYTES_DECIDED
            if "approved" in order_id or "rejected" in order_id
            else MAX_BYTES_PER_ORDER
        )
        assert bytes_of(retention_stack, keys) <= limit, keys
    with redis_client(retention_stack) as client:
        remaining = [str(key) for key in client.scan_iter(match=f"{APP_ID}||dapr.internal*")]
    assert remaining == [], remaining[:10]
