"""Smoke tests of the real engine: daprd + placement + scheduler + Redis + this app's worker."""

from __future__ import annotations

import json
import subprocess
import uuid

import grpc
import httpx
import pytest
import redis
from dapr.ext.workflow import WorkflowState, WorkflowStatus
from dapr.ext.workflow.aio import DaprWorkflowClient

from app.workflows.selftest import SELFTEST_EVENT, SELFTEST_WORKFLOW
from devstack.settings import APP_ID, pinned_dapr_version
from devstack.stack import Stack
from tests.fixtures.stack import sdk_client
from tests.fixtures.waiting import eventually


@pytest.fixture
async def workflows(stack: Stack) -> DaprWorkflowClient:
    return sdk_client(stack)


async def _state(client: DaprWorkflowClient, instance_id: str) -> WorkflowState | None:
    try:
        return await client.get_workflow_state(instance_id)
    except grpc.aio.AioRpcError as error:
        # Redis is not transactional for multi-key reads: a read that overlaps the engine's
        # save of a new event can see the metadata before its inbox key (README,
        # Troubleshooting; the service's own reads retry the same way). Not a state: poll again.
        if error.code() == grpc.StatusCode.UNKNOWN and "missing from state store" in str(
            error.details()
        ):
            return None
        raise


async def _start_and_wait_for_event(client: DaprWorkflowClient) -> str:
    instance_id = f"selftest-{uuid.uuid4().hex[:8]}"
    await client.schedule_new_workflow(SELFTEST_WORKFLOW, input="ping", instance_id=instance_id)
    await eventually(
        lambda: _state(client, instance_id),
        lambda s: s is not None and s.serialized_custom_status == "waiting",
        what=f"{instance_id} waiting for its event",
    )
    return instance_id


async def _completes_with_event(client: DaprWorkflowClient, instance_id: str) -> None:
    await client.raise_workflow_event(instance_id, SELFTEST_EVENT, data="go")
    final = await eventually(
        lambda: _state(client, instance_id),
        lambda s: s is not None and s.runtime_status == WorkflowStatus.COMPLETED,
        what=f"{instance_id} completed",
    )
    assert final is not None
    assert json.loads(final.serialized_output) == {"echo": "echo:ping", "event": "go"}


async def test_workflow_with_activity_and_event_completes_on_real_daprd(
    workflows: DaprWorkflowClient,
) -> None:
    instance_id = await _start_and_wait_for_event(workflows)
    await _completes_with_event(workflows, instance_id)


async def test_state_saved_through_sidecar_is_stored_in_redis(stack: Stack) -> None:
    key, value = f"smoke-{uuid.uuid4().hex[:8]}", {"written": "through daprd"}
    async with httpx.AsyncClient(
        base_url=stack.dapr_http_url, headers=stack.dapr_headers
    ) as sidecar:
        saved = await sidecar.post("/v1.0/state/statestore", json=[{"key": key, "value": value}])
    assert saved.status_code == 204, saved.text
    # Dapr's Redis store keeps each key as a hash under "<app-id>||<key>", the value in "data".
    with redis.Redis(port=stack.settings.redis_port, decode_responses=True) as direct:
        stored = direct.hget(f"{APP_ID}||{key}", "data")
    assert stored is not None
    assert json.loads(str(stored)) == value


async def test_waiting_workflow_completes_after_app_restart(
    stack: Stack, workflows: DaprWorkflowClient
) -> None:
    instance_id = await _start_and_wait_for_event(workflows)
    old_pid = stack.pid("app")
    stack.restart("app")
    assert stack.pid("app") != old_pid
    await _completes_with_event(workflows, instance_id)


async def test_readyz_reports_the_worker_connected(api: httpx.AsyncClient) -> None:
    response = await api.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "detail": "ok"}


def test_built_daprd_reports_the_pinned_version(stack: Stack) -> None:
    printed = subprocess.run(
        [str(stack.bin_dir / "daprd"), "--version"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert printed.stdout.strip() == pinned_dapr_version()
