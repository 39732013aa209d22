"""The state store refusing writes for longer than the activities' quick retries (~25 s): the
order waits, shows why, and finishes once writes come back, with nothing held.

Before the retry-infrastructure-errors patch, a step other than payment or stock commit that the
store failed for ~25 s ended the workflow FAILED: its stock hold stayed and no outcome was
recorded. The refused-writes test shows it (on that code: FAILED at reserving_inventory, result
workflow_failed, 25 s after the order was created). A frozen Redis (the engine cannot save an
activity's failure either, so the workflow stalls rather than fails) is the 40 s freeze in
tests/integration/test_faults.py. Here the workflow's own retry rounds are made short (1 s doubling to 2 s) so an order tries
again soon after the store is back; the budget is the default day. On a stack of its own: the
faults are on the whole Redis.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from devstack.stack import Stack
from tests.fixtures.audit import assert_audit_clean
from tests.fixtures.faults import RECOVERY_SECONDS, writes_refused
from tests.fixtures.manager import MANAGER
from tests.fixtures.orders import create, new_id, order, wait_until_finished
from tests.fixtures.stack import api_client, module_stack
from tests.fixtures.waiting import eventually

# ACTIVITY_RETRY's quick retries: 1 + 2 + 4 + 8 + 10 s. A fault that outlasts them ended the
# order before the patch.
OLD_WINDOW_SECONDS = 25.0


# Supervised, as under `make run` (and as tests/integration/test_faults.py's stack): after a long
# store outage Dapr 1.18.2's daprd can be left without the workflow actor types, the app then
# asks it to shut down, and only a supervisor starts it again. No hang watchdog: the freeze test
# stops Redis on purpose and expects it back as it was.
outage_stack = module_stack(
    "store-outage",
    app_env={
        "INFRASTRUCTURE_RETRY_FIRST_INTERVAL_SECONDS": "1",
        "INFRASTRUCTURE_RETRY_MAX_INTERVAL_SECONDS": "2",
    },
    supervise=True,
    settings={"WATCHDOG_HANG": 0},
)


@pytest.fixture
async def outage_api(outage_stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(outage_stack) as client:
        yield client


async def test_a_reserve_the_store_refuses_past_the_old_window_shows_retrying_then_completes(
    outage_stack: Stack, outage_api: httpx.AsyncClient
) -> None:
    api = outage_api
    reset = await api.post("/inventory/restock", headers=MANAGER)
    assert reset.status_code == 200, reset.text
    order_id = new_id("outage")

    with writes_refused(outage_stack, "inventory:"):
        started = time.monotonic()
        await create(api, "computers", 2, order_id)

        async def shown() -> dict[str, Any]:
            return await order(api, order_id)

        # Two of the workflow's own rounds: the quick retries are spent, and it keeps going.
        seen = await eventually(
            shown,
            lambda o: o["retrying"] is not None and o["retrying"]["attempts"] >= 2,
            deadline_seconds=OLD_WINDOW_SECONDS + 60,
            what="the order showing its second retry round",
        )
        assert time.monotonic() - started > OLD_WINDOW_SECONDS
        assert (seen["status"], seen["step"], seen["result"]) == (
            "RUNNING",
            "reserving_inventory",
            None,
        )
        assert seen["retrying"]["reason"] == "unavailable"
        assert "NOPERM" in seen["retrying"]["error"], seen["retrying"]

    done = await wait_until_finished(api, order_id, RECOVERY_SECONDS)
    assert done["result"] == {"processed": True, "reason": None}
    assert done["retrying"] is None
    # Paid once, nothing held: the auditor's check.
    await assert_audit_clean(api, outage_stack)
