"""Any one container of the compose stack can die (kill -9 of its main process) and it heals.

Mirrors tests/integration/test_faults.py on the container stack: orders parked at the approval
wait and others in flight, one container's main process killed from the host, then no human
action: the engine's restart policy brings it back, `/readyz` must be 200 within 60 s, the
waiting orders are approved, and every order must finish exactly once (one `paid` ledger entry
each, the inventory invariant, nothing left reserved).
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.compose.project import ComposeProject
from tests.compose.support import MANAGER, assert_invariant, ledger, record, wait_ready
from tests.fixtures.audit import audit_api
from tests.fixtures.faults import retrying
from tests.fixtures.orders import create, wait_for_step, wait_until_finished

READY_AFTER_KILL_SECONDS = 60.0
FINISH_SECONDS = 120.0


async def start_batch(api: httpx.AsyncClient) -> tuple[list[str], list[str]]:
    """Three orders parked at the approval wait (4 cars: 60,000) and four small ones moving."""
    reset = await retrying(lambda: api.post("/inventory/restock", headers=MANAGER))
    assert reset.status_code == 200, reset.text
    waiting = [(await create(api, "cars", 4))["order_id"] for _ in range(3)]
    for order_id in waiting:
        await wait_for_step(api, order_id, "awaiting_approval")
    moving = [(await create(api, "computers", 2))["order_id"] for _ in range(4)]
    return waiting, moving


async def finish_and_check(
    api: httpx.AsyncClient, project: ComposeProject, waiting: list[str], moving: list[str]
) -> None:
    for order_id in waiting:
        response = await retrying(
            lambda oid=order_id: api.post(f"/orders/{oid}/approve", headers=MANAGER)
        )
        assert response.status_code == 202, response.text
    results = await asyncio.gather(
        *(wait_until_finished(api, order_id, FINISH_SECONDS) for order_id in waiting + moving)
    )
    assert [r["result"] for r in results] == [{"processed": True, "reason": None}] * len(results)
    paid = ledger(project)
    for order_id in waiting + moving:
        assert paid[order_id]["status"] == "paid", paid.get(order_id)
    for item in ("cars", "computers"):
        doc = assert_invariant(project, item)
        assert doc["reserved"] == 0, doc
    audited = await audit_api(api, MANAGER)
    assert audited["ok"] is True, audited


# Not the scheduler: its container restarts by the same policy as every other
# (tests/deploy/test_deploy_files.py::test_every_compose_service_is_restarted_by_the_engine), and
# orders surviving its kill -9 are proven on the same binaries by
# tests/integration/test_supervision.py and the soak; here it cost 35 s of make test, most of it
# daprd's own ~23 s backoff before it reconnects to a restarted scheduler.
@pytest.mark.parametrize("service", ["app", "daprd", "placement", "redis"])
async def test_orders_finish_exactly_once_after_kill_9_of_a_container(
    project: ComposeProject, api: httpx.AsyncClient, service: str
) -> None:
    waiting, moving = await start_batch(api)
    killed_at = time.monotonic()
    old_pid = project.kill_main_process(service)
    project.wait_restarted(service, old_pid, seconds=READY_AFTER_KILL_SECONDS)
    restarted = time.monotonic() - killed_at
    wait_ready(project, seconds=READY_AFTER_KILL_SECONDS - restarted)
    ready = time.monotonic() - killed_at
    record(f"kill -9 {service}: container back {restarted:.1f}s, /readyz 200 after {ready:.1f}s")
    await finish_and_check(api, project, waiting, moving)
