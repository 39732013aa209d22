"""What users do to a running compose stack: change a setting, stop it, start it, wipe it."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.compose.project import ComposeProject
from tests.compose.support import MANAGER, record, wait_ready
from tests.fixtures.orders import create, order, wait_for_step, wait_until_finished
from tests.fixtures.waiting import eventually

RECOVERY_SECONDS = 90.0


async def test_up_with_a_changed_app_setting_recovers_by_itself(
    project: ComposeProject, api: httpx.AsyncClient
) -> None:
    app_before, sidecar_before = project.container("app"), project.container("daprd")
    started = time.monotonic()
    # 4 cars (60,000) need approval at the default threshold; at 70,000 they no longer do.
    project.up(APPROVAL_THRESHOLD="70000")
    wait_ready(project, RECOVERY_SECONDS)
    record(f"up -d with a changed setting: /readyz 200 after {time.monotonic() - started:.1f}s")
    assert project.container("app") != app_before, "the app container was not recreated"
    # The sidecar is its own service: recreating the app leaves it alone (and the app finds
    # it by name), where a sidecar in the app's network namespace had to be recreated too.
    assert project.container("daprd") == sidecar_before
    created = await create(api, "cars", 4)
    assert created["approval_required"] is False, created
    done = await wait_until_finished(api, created["order_id"])
    assert done["result"] == {"processed": True, "reason": None}
    project.up(APPROVAL_THRESHOLD="50000")
    wait_ready(project, RECOVERY_SECONDS)


@pytest.mark.parametrize("service", ["daprd", "placement", "scheduler", "redis", "app"])
async def test_recreating_any_one_service_heals_with_orders_waiting(
    project: ComposeProject, api: httpx.AsyncClient, service: str
) -> None:
    pending = (await create(api, "cars", 4))["order_id"]
    await wait_for_step(api, pending, "awaiting_approval")
    before = project.container(service)
    started = time.monotonic()
    project.recreate(service)
    assert project.container(service) != before
    wait_ready(project, RECOVERY_SECONDS)
    record(f"recreate {service}: /readyz 200 after {time.monotonic() - started:.1f}s")
    async with httpx.AsyncClient(base_url=project.app_url, timeout=30.0) as fresh:
        approved = await eventually(
            lambda: fresh.post(f"/orders/{pending}/approve", headers=MANAGER),
            lambda response: response.status_code < 500,
            what=f"approval of {pending} accepted",
        )
        assert approved.status_code == 202, approved.text
        done = await wait_until_finished(fresh, pending, RECOVERY_SECONDS)
    assert done["result"] == {"processed": True, "reason": None}


async def test_sidecar_shut_down_through_its_api_is_started_again(
    project: ComposeProject, api: httpx.AsyncClient
) -> None:
    # The app's cure for a wedged daprd is this same call; the restart policy must finish it.
    pending = (await create(api, "cars", 4))["order_id"]
    await wait_for_step(api, pending, "awaiting_approval")
    old_pid = project.main_pid("daprd")
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=project.dapr_url, timeout=10.0) as sidecar:
        shutdown = await sidecar.post(
            "/v1.0/shutdown", headers={"dapr-api-token": project.api_token}
        )
    assert shutdown.status_code == 204, shutdown.text
    project.wait_restarted("daprd", old_pid, RECOVERY_SECONDS)
    wait_ready(project, RECOVERY_SECONDS)
    record(f"daprd shut down via its API: /readyz 200 after {time.monotonic() - started:.1f}s")
    approved = await api.post(f"/orders/{pending}/approve", headers=MANAGER)
    assert approved.status_code == 202, approved.text
    done = await wait_until_finished(api, pending, RECOVERY_SECONDS)
    assert done["result"] == {"processed": True, "reason": None}


async def test_down_then_up_keeps_orders_inventory_and_pending_approvals(
    project: ComposeProject, api: httpx.AsyncClient
) -> None:
    finished = (await create(api, "computers", 3))["order_id"]
    await wait_until_finished(api, finished)
    pending = (await create(api, "cars", 4))["order_id"]
    await wait_for_step(api, pending, "awaiting_approval")
    inventory = (await api.get("/inventory")).json()

    project.down()
    started = time.monotonic()
    project.up()
    wait_ready(project, RECOVERY_SECONDS)
    record(f"down, then up (volumes kept): /readyz 200 after {time.monotonic() - started:.1f}s")

    async with httpx.AsyncClient(base_url=project.app_url, timeout=30.0) as fresh:
        assert (await order(fresh, finished))["status"] == "COMPLETED"
        assert (await fresh.get("/inventory")).json() == inventory
        waiting = await order(fresh, pending)
        assert (waiting["status"], waiting["step"]) == ("RUNNING", "awaiting_approval")
        approved = await fresh.post(f"/orders/{pending}/approve", headers=MANAGER)
        assert approved.status_code == 202, approved.text
        done = await wait_until_finished(fresh, pending)
    assert done["result"] == {"processed": True, "reason": None}


async def test_down_with_volumes_then_up_starts_empty(project: ComposeProject) -> None:
    async with httpx.AsyncClient(base_url=project.app_url, timeout=30.0) as client:
        listed = (await client.get("/orders")).json()
    assert listed["orders"], "nothing to lose: the test would prove nothing"

    project.down(volumes=True)
    project.up()
    wait_ready(project, RECOVERY_SECONDS)

    async with httpx.AsyncClient(base_url=project.app_url, timeout=30.0) as client:
        assert (await client.get("/orders")).json()["orders"] == []
        gone = listed["orders"][0]["order_id"]
        assert (await client.get(f"/orders/{gone}")).status_code == 404
        stock = (await client.get("/inventory")).json()
    assert all(item["reserved"] == 0 and item["quantity"] == 100 for item in stock["items"]), stock
