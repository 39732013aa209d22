"""Any one container of the compose stack can die (kill -9 of its main process) and it heals.

Mirrors tests/integration/test_faults.py on the container stack: orders parked at the approval
wait and others in flight, one container's main process killed from the host, then no human
action: the engine's restart policy brings it back, `/readyz` must be 200 within 60 s, the
waiting orders are approved, and every order must finish exactly once: processed, and the
auditor (GET /audit) finding one paid ledger entry each, the stock balanced, nothing held.
"""

from __future__ import annotations

import time

import httpx
import pytest

from tests.compose.project import ComposeProject
from tests.compose.support import MANAGER, record, wait_ready
from tests.fixtures.audit import audit_api
from tests.fixtures.faults import finish_batch, start_batch

READY_AFTER_KILL_SECONDS = 60.0


# Not the scheduler: its container restarts by the same policy as every other
# (tests/deploy/test_deploy_files.py::test_every_compose_service_is_restarted_by_the_engine), and
# orders surviving its kill -9 are proven on the same binaries by
# tests/integration/test_supervision.py and the soak; here it cost 35 s of make test, most of it
# daprd's own ~23 s backoff before it reconnects to a restarted scheduler.
@pytest.mark.parametrize("service", ["app", "daprd", "placement", "redis"])
async def test_orders_finish_exactly_once_after_kill_9_of_a_container(
    project: ComposeProject, api: httpx.AsyncClient, service: str
) -> None:
    waiting, moving = await start_batch(api, MANAGER)
    killed_at = time.monotonic()
    old_pid = project.kill_main_process(service)
    project.wait_restarted(service, old_pid, seconds=READY_AFTER_KILL_SECONDS)
    restarted = time.monotonic() - killed_at
    wait_ready(project, seconds=READY_AFTER_KILL_SECONDS - restarted)
    ready = time.monotonic() - killed_at
    record(f"kill -9 {service}: container back {restarted:.1f}s, /readyz 200 after {ready:.1f}s")
    await finish_batch(api, waiting, moving, MANAGER)
    audited = await audit_api(api, MANAGER)
    assert audited["ok"] is True, audited
