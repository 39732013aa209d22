"""The compose file's replicas (profile "replicas"): three app + daprd pairs behind nginx.

Orders placed through the proxy are worked on by more than one replica; `kill -9` of one
replica's app and sidecar (both main processes, from the host) with orders parked at approval
and others in flight loses none: the approvals go through the proxy to the survivors, the
restart policy brings the replica back, and every order finishes exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from tests.compose.project import ComposeProject
from tests.compose.support import MANAGER, MANAGER_TOKEN, record, wait_ready
from tests.fixtures.audit import audit_api
from tests.fixtures.faults import finish_batch, retrying
from tests.fixtures.orders import create, new_id, wait_for_step, wait_until_finished
from tests.fixtures.readme import walk_through_approval
from tests.fixtures.waiting import eventually

APPS = ("app", "app-2", "app-3")


@pytest.fixture(scope="module")
def replicas(project_factory: Callable[[str], ComposeProject]) -> ComposeProject:
    running = project_factory("opreplicas")
    running.up(COMPOSE_PROFILES="replicas")
    seconds = wait_ready(running, seconds=120.0)
    record(f"replicas project: first app ready {seconds:.1f}s after up -d")
    return running


@pytest.fixture
async def proxy(replicas: ComposeProject) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=replicas.proxy_url, timeout=30.0) as client:

        async def every_app_ready() -> int:
            ready = 0
            for _ in range(9):  # least_conn over three apps: each is asked
                with contextlib.suppress(httpx.HTTPError):
                    ready += (await client.get("/readyz")).status_code == 200
            return ready

        await eventually(every_app_ready, lambda n: n == 9, deadline_seconds=120, what="ready")
        yield client


def apps_that_worked_on(project: ComposeProject, order_ids: list[str]) -> set[str]:
    """The replicas whose app logged an activity of one of these orders."""
    pattern = re.compile("|".join(re.escape(order_id) for order_id in order_ids))
    return {
        app
        for app in APPS
        if pattern.search(project.compose("logs", "--no-color", app, timeout=60))
    }


async def test_readme_walkthrough_passes_through_the_proxy(
    replicas: ComposeProject, proxy: httpx.AsyncClient
) -> None:
    await walk_through_approval(replicas.proxy_url, MANAGER_TOKEN)


async def test_orders_through_the_proxy_are_worked_on_by_several_replicas(
    replicas: ComposeProject, proxy: httpx.AsyncClient
) -> None:
    order_ids = [new_id("spread") for _ in range(12)]
    await asyncio.gather(*(create(proxy, "paperclip", 1, order_id) for order_id in order_ids))
    await asyncio.gather(*(wait_until_finished(proxy, order_id) for order_id in order_ids))

    assert len(apps_that_worked_on(replicas, order_ids)) >= 2


async def test_losing_one_replica_loses_no_order(
    replicas: ComposeProject, proxy: httpx.AsyncClient
) -> None:
    reset = await retrying(lambda: proxy.post("/inventory/restock", headers=MANAGER))
    assert reset.status_code == 200, reset.text
    waiting = [(await create(proxy, "cars", 4))["order_id"] for _ in range(6)]
    await asyncio.gather(*(wait_for_step(proxy, o, "awaiting_approval") for o in waiting))
    moving = [(await create(proxy, "computers", 2))["order_id"] for _ in range(4)]

    killed = {service: replicas.kill_main_process(service) for service in ("app-2", "daprd-2")}
    await finish_batch(proxy, waiting, moving, MANAGER, approved=(200, 202))
    # Paid once each, nothing held, the stock balanced: the auditor's check.
    audited = await audit_api(proxy, MANAGER)
    assert audited["ok"] is True, audited
    for service, pid in killed.items():  # the restart policy brought the replica back
        replicas.wait_restarted(service, pid)
