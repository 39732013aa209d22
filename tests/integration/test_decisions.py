"""One decision per order on the real stack: racing managers, forged events, the timeline."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from devstack.stack import Stack
from tests.fixtures.audit import assert_audit_clean
from tests.fixtures.faults import ledger
from tests.fixtures.manager import MANAGER
from tests.fixtures.orders import create, wait_for_step, wait_until_finished
from tests.fixtures.stack import api_client, module_stack
from tests.fixtures.waiting import eventually

ROUNDS = 50
RACES_AT_ONCE = 5
OUTCOME = {
    "approved": {"processed": True, "reason": None},
    "rejected": {"processed": False, "reason": "rejected"},
    "cancelled": {"processed": False, "reason": "cancelled"},
}


# A long approval timeout: a hundred orders wait at approval while the managers race.
decision_stack = module_stack("decisions", app_env={"APPROVAL_TIMEOUT_SECONDS": "300"})


@pytest.fixture
async def api(decision_stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(decision_stack) as client:
        yield client


async def waiting_orders(api: httpx.AsyncClient, count: int) -> list[str]:
    restock = {"item": "cars", "quantity": 4 * count}
    assert (await api.post("/inventory/restock", headers=MANAGER, json=restock)).status_code == 200
    orders = [(await create(api, "cars", 4))["order_id"] for _ in range(count)]
    await asyncio.gather(*(wait_for_step(api, o, "awaiting_approval") for o in orders))
    return orders


def decide(api: httpx.AsyncClient, order_id: str, decision: str) -> Any:
    if decision == "cancelled":
        return api.post(f"/orders/{order_id}/cancel", headers=MANAGER)
    body = {"approved": decision == "approved", "approver": f"{decision}-manager"}
    return api.post(f"/orders/{order_id}/approve", headers=MANAGER, json=body)


@pytest.mark.parametrize("rival", ["cancelled", "rejected"])
async def test_racing_decisions_record_one_and_the_order_follows_it(
    decision_stack: Stack, api: httpx.AsyncClient, rival: str
) -> None:
    orders = await waiting_orders(api, ROUNDS)

    async def race(order_id: str) -> str:
        first, second = await asyncio.gather(
            decide(api, order_id, "approved"), decide(api, order_id, rival)
        )
        statuses = sorted([first.status_code, second.status_code])
        assert statuses == [202, 409], (first.text, second.text)
        winner, loser = (first, second) if first.status_code == 202 else (second, first)
        won = "approved" if winner is first else rival
        assert loser.json()["error"] == "decision_already_made", loser.text
        assert loser.json()["detail"].startswith(f"{won} by "), loser.text
        return won

    # A few races at a time: each is two managers at the same instant on the same order; a
    # hundred requests at once would measure the 2-core machine against the request deadline.
    winners: list[str] = []
    for start in range(0, len(orders), RACES_AT_ONCE):
        batch = orders[start : start + RACES_AT_ONCE]
        winners += await asyncio.gather(*(race(order_id) for order_id in batch))
    finished = await asyncio.gather(*(wait_until_finished(api, o, 120) for o in orders))
    for order_id, won, order in zip(orders, winners, finished, strict=True):
        assert order["result"] == OUTCOME[won], (order_id, won, order)
        assert (order["decision"], order["decided_by"]) == (
            won,
            f"{won}-manager" if won != "cancelled" else "manager",
        )
    # An order decided against never reached the payment: no ledger entry at all (the auditor
    # would accept a refunded one). That the approved ones are paid once, the others unpaid, and
    # nothing is held is the auditor's check.
    paid = ledger(decision_stack)
    assert [
        o for o, won in zip(orders, winners, strict=True) if won != "approved" and o in paid
    ] == []
    await assert_audit_clean(api, decision_stack)


async def test_the_sidecar_refuses_calls_without_the_token(decision_stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=decision_stack.dapr_http_url) as sidecar:
        without = await sidecar.get("/v1.0/metadata")
        wrong = await sidecar.get("/v1.0/metadata", headers={"dapr-api-token": "guess"})
    assert (without.status_code, wrong.status_code) == (401, 401)


async def test_an_event_raised_past_the_service_changes_nothing(
    decision_stack: Stack, api: httpx.AsyncClient
) -> None:
    (order_id,) = await waiting_orders(api, 1)
    async with httpx.AsyncClient(
        base_url=decision_stack.dapr_http_url, headers=decision_stack.dapr_headers
    ) as sidecar:
        forged = await sidecar.post(
            f"/v1.0/workflows/dapr/{order_id}/raiseEvent/manager_approval",
            json={"approval": True},
        )
    assert forged.status_code == 202, forged.text

    def ignored() -> bool:
        log = decision_stack.log_path("app").read_text(errors="replace")
        return (
            f"order {order_id}: a manager event arrived with nothing new in the action log" in log
        )

    async def check() -> bool:
        return ignored()

    await eventually(check, bool, deadline_seconds=30, what="the forged event checked")
    order = (await api.get(f"/orders/{order_id}")).json()
    assert (order["step"], order["decision"], order["result"]) == ("awaiting_approval", None, None)

    approved = await decide(api, order_id, "approved")
    assert approved.status_code == 202, approved.text
    assert (await wait_until_finished(api, order_id))["result"] == OUTCOME["approved"]


async def test_the_timeline_tells_each_fate_in_order(
    decision_stack: Stack, api: httpx.AsyncClient
) -> None:
    approved, rejected, cancelled = await waiting_orders(api, 3)
    for order_id, decision in (
        (approved, "approved"),
        (rejected, "rejected"),
        (cancelled, "cancelled"),
    ):
        assert (await decide(api, order_id, decision)).status_code == 202
    for order_id in (approved, rejected, cancelled):
        await wait_until_finished(api, order_id)

    async def events(order_id: str) -> list[tuple[str, str]]:
        reply = await api.get(f"/orders/{order_id}/history")
        assert reply.status_code == 200, reply.text
        timeline = reply.json()["timeline"]
        # Oldest first (steps are kept to the millisecond; finishing is always last).
        moments = [datetime.fromisoformat(e["at"]) for e in timeline[:-1]]
        assert moments == sorted(moments)
        assert timeline[-1]["event"] == "finished"
        return [(e["event"], e["detail"]) for e in timeline]

    approved_events = await events(approved)
    assert approved_events[0] == ("accepted", "4 cars, total 60000")
    steps = [detail for event, detail in approved_events if event == "step"]
    assert steps == [
        "notifying", "reserving_inventory", "requesting_approval", "awaiting_approval",
        "processing_payment", "updating_inventory", "done",
    ]  # fmt: skip
    assert next(e for e in approved_events if e[0] == "decision")[1].startswith(
        "approved by approved-manager at "
    )
    assert approved_events[-1] == ("finished", "processed")
    assert (await events(rejected))[-1] == ("finished", "rejected")
    cancelled_events = await events(cancelled)
    assert cancelled_events[-1] == ("finished", "cancelled")
    assert ("step", "releasing_inventory") in cancelled_events


async def test_the_timeline_of_a_timed_out_order(stack: Stack) -> None:
    # The shared stack's approval timeout is seconds long.
    async with api_client(stack) as api:
        restock = {"item": "cars", "quantity": 4}
        assert (
            await api.post("/inventory/restock", headers=MANAGER, json=restock)
        ).status_code == 200
        order_id = (await create(api, "cars", 4))["order_id"]
        await wait_until_finished(api, order_id)
        timeline = (await api.get(f"/orders/{order_id}/history")).json()["timeline"]
    assert [e["event"] for e in timeline if e["event"] == "decision"] == []
    assert (timeline[-1]["event"], timeline[-1]["detail"]) == ("finished", "approval_timeout")
