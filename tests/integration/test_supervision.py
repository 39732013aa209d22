"""`make run` heals itself: on a supervised stack, no test code restarts anything.

The stack here is started exactly as `make run` starts it (`Stack(supervise=True)`). Each test
parks orders at the approval wait and sends small ones through, breaks one process from the
outside (kill -9, SIGSTOP), and waits for the supervisor to bring the API back: ready within
60 s of the fault (issue 8's bar). Then it approves what waits and checks every order finished
exactly once, with the same assertions as test_faults.py.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from devstack.stack import SERVICE_ORDER, Stack, http_json, workflow_engine_problem
from tests.fixtures.faults import finish_and_check, start_batch
from tests.fixtures.stack import api_client, module_stack
from tests.fixtures.waiting import eventually

# Issue 8: ready again within a minute of the fault, without a human.
READY_WITHIN = 60.0


# With an API token, so the watchdog's metadata probe is shown to send it (the wedge test fails
# if it does not: daprd's refusal is no evidence of a wedge). The supervisor must not have
# given up by the end of the module (module_stack checks).
supervised_stack = module_stack(
    "supervised-stack",
    app_env={"APPROVAL_TIMEOUT_SECONDS": "300"},
    supervise=True,
    settings={"DAPR_API_TOKEN": "supervision-test-token"},
)


@pytest.fixture
async def api(supervised_stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(supervised_stack) as client:
        yield client


def process_of(stack: Stack, name: str) -> subprocess.Popen[bytes]:
    process = stack.services[name].process
    assert process is not None
    assert process.poll() is None, f"{name} is not running"
    return process


def devstack_log(stack: Stack) -> str:
    path = stack.log_path("devstack")
    return path.read_text() if path.exists() else ""


async def healed(
    stack: Stack, api: httpx.AsyncClient, name: str, old_pid: int, since: float
) -> float:
    """Wait until `name` runs as a new process that passes its own probe and the API is ready;
    the seconds since the fault."""

    async def state() -> tuple[bool, int]:
        process = stack.services[name].process
        replaced = process is not None and process.pid != old_pid and process.poll() is None
        healthy = replaced and await asyncio.to_thread(stack.liveness_probe(name)) is None
        try:
            ready = (await api.get("/readyz")).status_code
        except httpx.HTTPError:
            ready = 0
        return healthy, ready

    remaining = READY_WITHIN - (time.monotonic() - since)
    await eventually(
        state,
        lambda s: s == (True, 200),
        deadline_seconds=remaining,
        interval=0.5,
        what=f"{name} replaced and /readyz 200 within {READY_WITHIN:.0f}s of the fault",
    )
    return time.monotonic() - since


@pytest.mark.parametrize("service", SERVICE_ORDER)
async def test_kill_9_is_healed_by_the_supervisor_and_orders_finish_once(
    supervised_stack: Stack, api: httpx.AsyncClient, service: str
) -> None:
    waiting, moving = await start_batch(api)
    old = process_of(supervised_stack, service)
    killed_at = time.monotonic()
    os.kill(old.pid, signal.SIGKILL)
    seconds = await healed(supervised_stack, api, service, old.pid, killed_at)
    print(f"\n[recovery] kill -9 {service}: ready again after {seconds:.1f}s")
    assert f"{service} exited with status -9 (SIGKILL); restarting" in devstack_log(
        supervised_stack
    )
    await finish_and_check(api, supervised_stack, waiting, moving)


async def test_frozen_daprd_is_replaced_by_the_watchdog(
    supervised_stack: Stack, api: httpx.AsyncClient
) -> None:
    waiting, moving = await start_batch(api)
    frozen = process_of(supervised_stack, "daprd")
    frozen_at = time.monotonic()
    os.kill(frozen.pid, signal.SIGSTOP)  # up, holding its ports, answering nothing
    try:
        seconds = await healed(supervised_stack, api, "daprd", frozen.pid, frozen_at)
        print(f"\n[recovery] SIGSTOP daprd: ready again after {seconds:.1f}s")
        # Killed and reaped by the supervisor, without any SIGCONT.
        assert frozen.returncode == -signal.SIGKILL
        log = devstack_log(supervised_stack)
        assert "watchdog: daprd hung: GET /v1.0/healthz no answer within" in log
        assert "killing daprd (SIGKILL) to restart it" in log
    finally:
        if frozen.poll() is None:  # only when the watchdog failed: never leave it frozen
            frozen.kill()
            frozen.wait()
    await finish_and_check(api, supervised_stack, waiting, moving)


async def test_daprd_metadata_has_the_shape_the_wedge_check_reads(
    supervised_stack: Stack, api: httpx.AsyncClient
) -> None:
    """The wedge check parses daprd's own answer; on a healthy stack it must find no problem
    (otherwise the watchdog would restart a healthy daprd every 20 s)."""
    assert (await api.get("/readyz")).status_code == 200
    metadata = await asyncio.to_thread(
        http_json,
        f"{supervised_stack.dapr_http_url}/v1.0/metadata",
        5.0,
        supervised_stack.dapr_headers,
    )
    assert isinstance(metadata, dict), metadata
    assert workflow_engine_problem(metadata) is None, metadata
    # The token is really on: without it daprd refuses.
    async with httpx.AsyncClient(base_url=supervised_stack.dapr_http_url) as sidecar:
        refused = await sidecar.get("/v1.0/metadata")
    assert refused.status_code == 401, refused.text


async def test_daprd_that_stops_counting_the_worker_is_restarted(
    supervised_stack: Stack, api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 1.18.2 wedge cannot be provoked on demand; its symptom can: the app comes back
    without its worker (WORKFLOW_WORKER=false) while the watchdog is told one should be there,
    so daprd reports zero connected workers. The remedy goes through the real metadata probe."""
    app = supervised_stack.services["app"]
    monkeypatch.setattr(supervised_stack, "expects_workflow_worker", lambda replica=None: True)
    monkeypatch.setitem(app.env, "WORKFLOW_WORKER", "false")
    daprd = process_of(supervised_stack, "daprd")
    remedy = "watchdog: daprd counts no connected workflow worker"
    # A real wedge after an earlier app kill would have logged the same remedy: count new ones.
    before = devstack_log(supervised_stack).count(remedy)
    os.kill(process_of(supervised_stack, "app").pid, signal.SIGKILL)
    grace = supervised_stack.settings.watchdog_wedge_seconds
    await eventually(
        lambda: asyncio.to_thread(devstack_log, supervised_stack),
        lambda log: log.count(remedy) > before,
        deadline_seconds=grace + READY_WITHIN,
        interval=0.5,
        what="the watchdog's wedge remedy",
    )
    assert daprd.wait(timeout=10) == -signal.SIGKILL
    # Put the worker back: the supervisor restarts the app with it, and all is ready again.
    monkeypatch.undo()

    async def running_app() -> int | None:
        process = supervised_stack.services["app"].process
        return process.pid if process is not None and process.poll() is None else None

    old_app = await eventually(running_app, lambda pid: pid is not None, what="app running")
    assert old_app is not None
    os.kill(old_app, signal.SIGKILL)
    await healed(supervised_stack, api, "app", old_app, time.monotonic())
