"""Orders survive faults the supervisor does not simply undo: an approval sent while the
engine restarts or while the workflow worker is away, and the state store frozen for longer than
the activities' quick retries.

Each fault test starts a batch spread over the workflow (some waiting for approval, some
mid-flight), injects one fault, recovers, approves what waits, and ends with the auditor. They
run on a stack of their own (approval timeout 300 s) so a slow recovery cannot turn into an
approval timeout, and the destruction cannot disturb the other tests. kill -9 of each process,
healed by the supervisor with the same batch and checks, is tests/integration/test_supervision.py;
kill -9 of the app or daprd inside every activity is tests/integration/test_fault_matrix.py.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from devstack.stack import Stack
from tests.fixtures.faults import (
    RECOVERY_SECONDS,
    finish_and_check,
    ledger,
    retrying,
    start_batch,
)
from tests.fixtures.manager import MANAGER
from tests.fixtures.orders import (
    create,
    new_id,
    wait_for_step,
    wait_until_finished,
)
from tests.fixtures.stack import api_client, module_stack
from tests.fixtures.waiting import eventually

# Supervised, as under `make run`: a kill -9 of the app can leave Dapr 1.18.2's daprd without the
# workflow actor types (the wedge in the README); the app then asks daprd to shut down, and only
# a supervisor starts it again. The tests still restart what they kill themselves (the
# supervisor leaves a component someone else started alone). No hang watchdog: the
# frozen-store test stops Redis on purpose and expects it back as it was.
fault_stack = module_stack(
    "fault-stack",
    app_env={"APPROVAL_TIMEOUT_SECONDS": "300"},
    supervise=True,
    settings={"WATCHDOG_HANG": 0},
)


@pytest.fixture
async def fault_api(fault_stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(fault_stack) as client:
        yield client


async def test_approval_sent_while_the_engine_restarts_still_counts(
    fault_stack: Stack, fault_api: httpx.AsyncClient
) -> None:
    order_id = (await create(fault_api, "cars", 4, new_id("offline")))["order_id"]
    await wait_for_step(fault_api, order_id, "awaiting_approval")
    fault_stack.kill("daprd")
    fault_stack.start_service("daprd")
    # daprd is back but the app's worker has not reconnected yet: Dapr refuses events for a
    # workflow whose worker is away, so the service must keep the approval and deliver it later.
    approved = await retrying(
        lambda: fault_api.post(f"/orders/{order_id}/approve", headers=MANAGER)
    )
    assert approved.status_code == 202, approved.text
    done = await wait_until_finished(fault_api, order_id, RECOVERY_SECONDS)
    assert done["result"] == {"processed": True, "reason": None}
    assert ledger(fault_stack)[order_id]["status"] == "paid"


async def test_approval_raised_while_the_worker_is_down_counts_once_it_is_back(
    fault_stack: Stack, fault_api: httpx.AsyncClient
) -> None:
    order_id = (await create(fault_api, "cars", 4, new_id("workerless")))["order_id"]
    await wait_for_step(fault_api, order_id, "awaiting_approval")
    app = fault_stack.services["app"]
    fault_stack.kill("app")
    # The API comes back without its workflow worker: daprd is up, the worker is down.
    app.env["WORKFLOW_WORKER"] = "false"
    try:
        fault_stack.start_service("app")
        async with httpx.AsyncClient(
            base_url=fault_stack.dapr_http_url, headers=fault_stack.dapr_headers
        ) as sidecar:
            metadata = (await sidecar.get("/v1.0/metadata")).json()
        assert (metadata.get("workflows") or {}).get("connectedWorkers", 0) == 0
        approved = await fault_api.post(f"/orders/{order_id}/approve", headers=MANAGER)
        assert approved.status_code == 202, approved.text
    finally:
        del app.env["WORKFLOW_WORKER"]
    fault_stack.restart("app")
    done = await wait_until_finished(fault_api, order_id, RECOVERY_SECONDS)
    assert done["result"] == {"processed": True, "reason": None}
    assert ledger(fault_stack)[order_id]["status"] == "paid"


# Longer than the activities' quick retries (ACTIVITY_RETRY, about 25 s): an order whose step
# failed through them all before the retry-infrastructure-errors patch must outlast it now.
FREEZE_SECONDS = 40.0
# The app's deadline (REQUEST_TIMEOUT_SECONDS, 2 s by default) plus what an HTTP round trip on
# a loaded 2-core machine may add.
ANSWER_WITHIN_SECONDS = 3.0


async def _timed(call: Any) -> tuple[float, httpx.Response]:
    started = time.monotonic()
    response: httpx.Response = await call()
    return time.monotonic() - started, response


async def test_a_frozen_state_store_gets_prompt_503s_and_loses_nothing(
    fault_stack: Stack, fault_api: httpx.AsyncClient
) -> None:
    waiting, moving = await start_batch(fault_api)
    redis_pid = fault_stack.pid("redis")
    frozen_at = time.monotonic()
    os.kill(redis_pid, signal.SIGSTOP)
    try:
        calls = {
            "get": lambda: fault_api.get(f"/orders/{waiting[0]}"),
            "long poll": lambda: fault_api.get(f"/orders/{moving[0]}", params={"wait": 1}),
            "list": lambda: fault_api.get("/orders"),
            "inventory": lambda: fault_api.get("/inventory"),
            "create": lambda: fault_api.post("/orders", json={"item": "computers", "quantity": 1}),
        }
        for name, call in calls.items():
            elapsed, response = await _timed(call)
            allowed = ANSWER_WITHIN_SECONDS + (1 if name == "long poll" else 0)
            assert elapsed < allowed, f"{name} took {elapsed:.1f}s"
            assert response.status_code == 503, (name, response.text)
            assert "state store" in response.json()["detail"], (name, response.text)

        async def readiness() -> int:
            return (await fault_api.get("/readyz")).status_code

        await eventually(readiness, lambda status: status == 503, deadline_seconds=5)
        assert time.monotonic() - frozen_at < 5 + ANSWER_WITHIN_SECONDS * len(calls)
        # The fault itself lasts FREEZE_SECONDS: workflow activities hit the frozen store too.
        await asyncio.sleep(max(0.0, FREEZE_SECONDS - (time.monotonic() - frozen_at)))
    finally:
        os.kill(redis_pid, signal.SIGCONT)
    await finish_and_check(fault_api, fault_stack, waiting, moving)
