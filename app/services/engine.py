"""The engine gateway: what the services need from the workflow engine, and its implementation
over the Dapr workflow client. The only module of app.services that talks to the engine."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Protocol

import grpc
from dapr.ext.workflow import WorkflowStatus
from dapr.ext.workflow.aio import DaprWorkflowClient
from opentelemetry import trace
from pydantic import BaseModel

from app.errors import DependencyUnavailable
from app.workflows.contracts import FINISHED, StepStatus, WorkflowSnapshot, as_utc

# A no-op unless tracing is installed (app.observability.tracing).
_tracer = trace.get_tracer(__name__)
_READ_ATTEMPTS = 6
_TRANSIENT = frozenset({grpc.StatusCode.UNKNOWN, grpc.StatusCode.UNAVAILABLE})
# Dapr's STALLED (a version mismatch blocks progress) has no place in the public enum: it is
# neither running nor finished, so it shows as SUSPENDED.
_STATUS_NAMES = {
    WorkflowStatus.PENDING: "PENDING",
    WorkflowStatus.RUNNING: "RUNNING",
    WorkflowStatus.COMPLETED: "COMPLETED",
    WorkflowStatus.FAILED: "FAILED",
    WorkflowStatus.TERMINATED: "TERMINATED",
    WorkflowStatus.SUSPENDED: "SUSPENDED",
    WorkflowStatus.STALLED: "SUSPENDED",
    WorkflowStatus.UNKNOWN: "PENDING",
}


class WorkflowGateway(Protocol):
    async def schedule(self, workflow: str, instance_id: str, payload: BaseModel) -> None: ...

    async def snapshot(self, instance_id: str) -> WorkflowSnapshot | None: ...

    async def raise_event(self, instance_id: str, event: str, data: Any) -> None: ...

    async def wait_finished(self, instance_id: str, seconds: int) -> bool:
        """Return when the instance has finished (True) or `seconds` have passed (False),
        whichever is first."""


def _json_or_none(raw: str | None) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw


class DaprWorkflowGateway:
    def __init__(self, client: DaprWorkflowClient) -> None:
        self._client = client

    async def schedule(self, workflow: str, instance_id: str, payload: BaseModel) -> None:
        attributes = {"order.id": instance_id, "workflow.name": workflow}
        try:
            with _tracer.start_as_current_span("schedule workflow", attributes=attributes):
                await self._client.schedule_new_workflow(
                    workflow, input=payload, instance_id=instance_id
                )
        except grpc.RpcError as error:
            if getattr(error, "code", lambda: None)() == grpc.StatusCode.ALREADY_EXISTS:
                # Dapr's answer when the instance is there and has not finished: a twin start
                # (another replica, a repeated request) got there first. Started is what was
                # asked. (A *finished* instance is started again instead: callers check first.)
                return
            raise DependencyUnavailable(
                f"could not start workflow {instance_id}: {error}"
            ) from error

    async def snapshot(self, instance_id: str) -> WorkflowSnapshot | None:
        for attempt in range(_READ_ATTEMPTS):
            try:
                state = await self._client.get_workflow_state(instance_id, fetch_payloads=True)
                break
            except grpc.RpcError as error:
                code = getattr(error, "code", lambda: None)()
                if code == grpc.StatusCode.NOT_FOUND:
                    return None
                # Redis is not a transactional store: a read that overlaps the engine's
                # multi-key save can see metadata before its inbox/history keys and fail with
                # UNKNOWN. Reading again a moment later sees the finished save.
                if code not in _TRANSIENT or attempt == _READ_ATTEMPTS - 1:
                    raise DependencyUnavailable(
                        f"could not read workflow {instance_id}: {error}"
                    ) from error
                await asyncio.sleep(0.05 * (attempt + 1))
        if state is None:
            return None
        output = _json_or_none(state.serialized_output)
        # set_custom_status(str) is stored as the string itself: the bare step, or the step and
        # why it is retrying as JSON (StepStatus).
        status = StepStatus.decode(state.serialized_custom_status or "")
        return WorkflowSnapshot(
            status=_STATUS_NAMES[state.runtime_status],
            step=status.step or None,
            retrying=status.retrying,
            output=output if isinstance(output, dict) else None,
            # The SDK hands back naive datetimes that are in UTC.
            updated_at=None if state.last_updated_at is None else as_utc(state.last_updated_at),
        )

    async def raise_event(self, instance_id: str, event: str, data: Any) -> None:
        try:
            await self._client.raise_workflow_event(instance_id, event, data=data)
        except grpc.RpcError as error:
            raise DependencyUnavailable(
                f"could not deliver {event} to {instance_id}: {error}"
            ) from error

    async def wait_finished(self, instance_id: str, seconds: int) -> bool:
        # The engine's own long poll: no client-side polling, the sidecar answers on completion.
        try:
            state = await self._client.wait_for_workflow_completion(
                instance_id, fetch_payloads=False, timeout_in_seconds=seconds
            )
        except (TimeoutError, grpc.RpcError):
            return False
        return state is not None and _STATUS_NAMES[state.runtime_status] in FINISHED
