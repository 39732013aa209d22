"""Shared steps for the order integration tests: create, wait for a state, read stock directly."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import redis

from devstack.settings import APP_ID
from devstack.stack import Stack
from tests.integration.waiting import eventually


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def create(
    api: httpx.AsyncClient, item: str, quantity: int, order_id: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"item": item, "quantity": quantity}
    if order_id:
        body["order_id"] = order_id
    response = await api.post("/orders", json=body)
    assert response.status_code == 202, response.text
    order: dict[str, Any] = response.json()
    return order


async def order(api: httpx.AsyncClient, order_id: str) -> dict[str, Any]:
    try:
        response = await api.get(f"/orders/{order_id}")
    except (httpx.ReadError, httpx.RemoteProtocolError):
        # A pooled keep-alive connection the server closed just as it was reused: one retry on
        # a fresh connection tells that race apart from a real failure.
        response = await api.get(f"/orders/{order_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def wait_for_step(api: httpx.AsyncClient, order_id: str, step: str) -> dict[str, Any]:
    return await eventually(
        lambda: order(api, order_id), lambda o: o["step"] == step, what=f"{order_id} at step {step}"
    )


async def wait_until_finished(
    api: httpx.AsyncClient, order_id: str, seconds: float = 60.0
) -> dict[str, Any]:
    return await eventually(
        lambda: order(api, order_id),
        lambda o: o["result"] is not None,
        deadline_seconds=seconds,
        what=f"{order_id} finished",
    )


def stock_doc(stack: Stack, item: str) -> dict[str, Any]:
    """The inventory document as Redis holds it (sold and stock are not exposed over HTTP)."""
    with redis.Redis(port=stack.settings.redis_port, decode_responses=True) as client:
        raw = client.hget(f"{APP_ID}||inventory:{item}", "data")
    assert raw is not None, f"no inventory document for {item}"
    doc: dict[str, Any] = json.loads(str(raw))
    return doc


def assert_invariant(stack: Stack, item: str) -> dict[str, Any]:
    doc = stock_doc(stack, item)
    assert min(doc["quantity"], doc["reserved"], doc["sold"]) >= 0, doc
    assert doc["quantity"] + doc["reserved"] + doc["sold"] == doc["stock"], doc
    assert doc["reserved"] == sum(doc["held"].values()), doc
    return doc
