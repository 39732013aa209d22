"""500 orders of mixed fate from 30 concurrent clients against limited stock."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import httpx

from devstack.stack import Stack
from tests.fixtures.audit import assert_audit_clean
from tests.fixtures.manager import manager_headers
from tests.fixtures.orders import new_id, wait_until_finished
from tests.fixtures.stack import module_stack

ORDERS = 500
CLIENTS = 30
# Fate of order i is FATES[i % 10]: mostly small orders, which run stock out part-way.
FATES = (
    "small",
    "small",
    "small",
    "small",
    "approve",
    "reject",
    "timeout",
    "cancel",
    "insufficient",
    "small",
)
SHAPES = {
    "small": ("computers", 1),
    "approve": ("cars", 4),
    "reject": ("cars", 4),
    "timeout": ("cars", 4),
    "cancel": ("cars", 4),
    "insufficient": ("paperclip", 1000),
}


# Long enough that a reject or cancel sent under full load still beats the timer, short enough
# that the "timeout" orders finish within the run.
LOAD_APPROVAL_TIMEOUT_SECONDS = 20


load_stack = module_stack(
    "load-stack",
    app_env={
        "APPROVAL_TIMEOUT_SECONDS": str(LOAD_APPROVAL_TIMEOUT_SECONDS),
        "LOG_LEVEL": "WARNING",
    },
)


class Client:
    def __init__(self, api: httpx.AsyncClient, manager: dict[str, str]) -> None:
        self.api = api
        self.manager = manager
        self.statuses: Counter[int] = Counter()
        self.slowest: dict[str, float] = {}

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        started = time.monotonic()
        response = await self.api.request(method, path, timeout=120, **kwargs)
        route = f"{method} {path.split('/')[1]}{'/' + path.split('/')[-1] if path.count('/') > 2 else ''}"
        self.slowest[route] = max(self.slowest.get(route, 0.0), time.monotonic() - started)
        self.statuses[response.status_code] += 1
        return response

    async def wait_for_approval_step(self, order_id: str) -> bool:
        """True once the order waits for a manager; False if it finished first (e.g. no stock)."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            found = (await self.call("GET", f"/orders/{order_id}")).json()
            if found["step"] == "awaiting_approval":
                return True
            if found["result"] is not None:
                return False
            await asyncio.sleep(0.2)
        raise AssertionError(f"{order_id} never reached the approval wait")

    async def place(self, index: int) -> tuple[str, str]:
        fate = FATES[index % len(FATES)]
        item, quantity = SHAPES[fate]
        order_id = new_id(f"load{index}")
        created = await self.call(
            "POST", "/orders", json={"item": item, "quantity": quantity, "order_id": order_id}
        )
        assert created.status_code == 202, created.text
        if fate in {"approve", "reject", "cancel"} and await self.wait_for_approval_step(order_id):
            if fate == "cancel":
                await self.call("POST", f"/orders/{order_id}/cancel", headers=self.manager)
            else:
                body = {"approved": fate == "approve", "approver": "load"}
                await self.call(
                    "POST", f"/orders/{order_id}/approve", headers=self.manager, json=body
                )
        return order_id, fate


async def test_mixed_orders_under_load_never_oversell_or_leave_stock_reserved(
    load_stack: Stack,
) -> None:
    stack = load_stack
    manager = manager_headers()
    async with httpx.AsyncClient(base_url=stack.app_url, timeout=120) as api:
        await _run_load(stack, api, manager)


async def _run_load(stack: Stack, api: httpx.AsyncClient, manager: dict[str, str]) -> None:
    assert (await api.post("/inventory/restock", headers=manager)).status_code == 200
    client = Client(api, manager)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(ORDERS):
        queue.put_nowait(index)
    placed: list[tuple[str, str]] = []

    async def worker() -> None:
        while not queue.empty():
            placed.append(await client.place(queue.get_nowait()))

    await asyncio.gather(*(worker() for _ in range(CLIENTS)))
    assert len(placed) == ORDERS
    print(f"slowest response per route (s): {client.slowest}")
    finished = await asyncio.gather(
        *(wait_until_finished(api, order_id, 300) for order_id, _ in placed)
    )

    assert not [code for code in client.statuses if code >= 500], client.statuses
    reasons = Counter(
        (fate, str(order["result"]["reason"]))
        for (_, fate), order in zip(placed, finished, strict=True)
    )
    allowed = {
        "small": {"None", "insufficient_inventory"},
        "approve": {"None", "insufficient_inventory"},
        "reject": {"rejected", "insufficient_inventory"},
        "timeout": {"approval_timeout", "insufficient_inventory"},
        "cancel": {"cancelled", "insufficient_inventory"},
        "insufficient": {"insufficient_inventory"},
    }
    assert all(reason in allowed[fate] for fate, reason in reasons), reasons
    # Stock ran out part-way, so both outcomes of the small orders must be present.
    assert reasons[("small", "None")] > 0
    assert reasons[("small", "insufficient_inventory")] > 0

    # Every order has finished: the auditor finds each processed order paid once and no other
    # paid, nothing held, and every item's counts balanced (nothing negative, so nothing
    # oversold) with the units sold the processed orders'.
    await assert_audit_clean(api, stack)
