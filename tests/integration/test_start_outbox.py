"""Issue 19, Integrity 6: accepting an order needs only the state store. `REPLICAS=3`, `POST
/orders` at a steady 20/s through the proxy, `kill -9` of one replica's daprd a few seconds in
(the supervisor starts it again): no POST answers 5xx, and every accepted order completes once.

Before the start outbox, 27 of 1,000 POSTs answered 503 in the 6.8 s after such a kill, and 5
of those orders were processed anyway. What makes it hold now: a replica whose own sidecar is
gone answers 502, which the proxy retries on another replica with the same request id (the
order id of a create that names none); a create whose workflow the engine cannot start while
placement moves the lost sidecar's workflows is accepted PENDING, and the start outbox starts
it. The POSTs name no order id: the hardest case for "once".
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from devstack.stack import Stack
from tests.fixtures.audit import assert_audit_clean, audit_api
from tests.fixtures.faults import RECOVERY_SECONDS
from tests.fixtures.manager import MANAGER
from tests.fixtures.orders import wait_until_finished
from tests.fixtures.stack import api_client, module_stack

RATE_PER_SECOND = 20
SECONDS = 15
KILL_AT_SECONDS = 4
# Enough paperclips that every order is processed (one each).
STOCK = RATE_PER_SECOND * SECONDS + 100


replicated = module_stack(
    "start-outbox", app_env={"APPROVAL_TIMEOUT_SECONDS": "300"}, supervise=True, replicas=3
)


def retried_after_502(stack: Stack, port: int) -> int:
    """POSTs the proxy's access log shows answered 502 by the app on `port`, then by another."""
    log = Path(stack.settings.log_dir / "proxy-access.log").read_text().splitlines()
    return sum(
        1
        for line in log
        if line.split(" ")[1] == "POST"
        and f"upstream=127.0.0.1:{port}, " in line
        and " upstream_status=502, " in line
    )


async def test_a_killed_sidecar_refuses_no_order_and_loses_none(replicated: Stack) -> None:
    stack = replicated
    victim = stack.replicas[1]  # replica 1's sidecar is the one the auditor's command line uses
    async with api_client(stack) as api:
        restocked = await api.post(
            "/inventory/restock", headers=MANAGER, json={"item": "paperclip", "quantity": STOCK}
        )
        assert restocked.status_code == 200, restocked.text
        answers: list[tuple[int, int, str]] = []  # (sequence, status; 599: none, order id)

        async def place(sequence: int) -> None:
            try:
                response = await api.post("/orders", json={"item": "paperclip", "quantity": 1})
            except httpx.HTTPError as error:
                answers.append((sequence, 599, repr(error)))
                return
            order_id = response.json().get("order_id", "") if response.status_code < 500 else ""
            answers.append((sequence, response.status_code, order_id or response.text))

        loop = asyncio.get_running_loop()
        began, killed_at = loop.time(), 0.0
        posts = []
        for sequence in range(RATE_PER_SECOND * SECONDS):
            # A steady rate, whatever the answers: the next POST leaves on its time.
            await asyncio.sleep(max(0.0, began + sequence / RATE_PER_SECOND - loop.time()))
            if sequence == RATE_PER_SECOND * KILL_AT_SECONDS:
                stack.kill(victim.daprd_name)
                killed_at = time.monotonic()
            posts.append(asyncio.create_task(place(sequence)))
        await asyncio.gather(*posts)

        failed = [answer for answer in answers if answer[1] >= 500]
        accepted = {order_id for _, status, order_id in answers if status in (200, 202)}
        print(
            f"\n{len(answers)} POSTs, daprd of replica {victim.number} killed "
            f"{KILL_AT_SECONDS}s in ({time.monotonic() - killed_at:.1f}s before the last); "
            f"statuses {sorted({status for _, status, _ in answers})}; "
            f"retried after a 502: {retried_after_502(stack, victim.app_port)}"
        )
        assert failed == [], failed
        # Every POST is its own order: no create the proxy repeated was accepted twice.
        assert len(accepted) == len(answers)
        # The kill was felt: the victim's app answered 502 and the proxy went elsewhere.
        assert retried_after_502(stack, victim.app_port) > 0

        posted = time.monotonic()
        finished = await asyncio.gather(
            *(wait_until_finished(api, order_id, RECOVERY_SECONDS) for order_id in accepted)
        )
        print(f"every order finished {time.monotonic() - posted:.1f}s after the last POST")
        assert [o for o in finished if o["result"] != {"processed": True, "reason": None}] == []
        # Once each: the store holds exactly the orders accepted, and none is left to start.
        checked = (await audit_api(api))["checked"]
        assert (checked["orders"], checked["processed"]) == (len(accepted), len(accepted))
        assert checked["waiting_to_start"] == 0
        # Last, the auditor's every invariant, none run twice among them (units sold equal the
        # processed orders' units).
        await assert_audit_clean(api, stack)
