"""DaprWorkflowGateway over a stand-in for the SDK's workflow client: which gRPC errors are
retried, which become "no such workflow" or DependencyUnavailable, and how status reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from dapr.ext.workflow import WorkflowStatus

from app.errors import DependencyUnavailable
from app.services.engine import DaprWorkflowGateway
from app.workflows.contracts import OrderInput, Retrying, StepStatus


class RpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        super().__init__(code.name)
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code


@dataclass
class State:
    """The fields of the SDK's WorkflowState the gateway reads."""

    runtime_status: WorkflowStatus
    serialized_custom_status: str | None = None
    serialized_output: str | None = None
    last_updated_at: datetime | None = None


@dataclass
class FakeClient:
    """Fails the next calls with `failures` (in order), then answers with `state`."""

    failures: list[grpc.StatusCode] = field(default_factory=list)
    state: State | None = None
    calls: list[str] = field(default_factory=list)

    def _next(self, call: str) -> None:
        self.calls.append(call)
        if self.failures:
            raise RpcError(self.failures.pop(0))

    async def get_workflow_state(self, instance_id: str, fetch_payloads: bool) -> State | None:
        self._next("get")
        return self.state

    async def schedule_new_workflow(self, workflow: str, input: Any, instance_id: str) -> None:
        self._next("schedule")

    async def raise_workflow_event(self, instance_id: str, event: str, data: Any) -> None:
        self._next("raise")


def gateway(client: FakeClient) -> DaprWorkflowGateway:
    return DaprWorkflowGateway(client)  # type: ignore[arg-type]


async def test_a_read_that_overlaps_a_save_is_retried() -> None:
    client = FakeClient(
        failures=[grpc.StatusCode.UNKNOWN, grpc.StatusCode.UNAVAILABLE],
        state=State(WorkflowStatus.RUNNING, serialized_custom_status="reserving_inventory"),
    )

    snapshot = await gateway(client).snapshot("o1")

    assert snapshot is not None
    assert (snapshot.status, snapshot.step) == ("RUNNING", "reserving_inventory")
    assert client.calls == ["get", "get", "get"]


async def test_reads_that_keep_failing_are_unavailable() -> None:
    client = FakeClient(failures=[grpc.StatusCode.UNAVAILABLE] * 6)

    with pytest.raises(DependencyUnavailable, match="could not read workflow o1"):
        await gateway(client).snapshot("o1")
    assert len(client.calls) == 6


async def test_a_permanent_error_is_not_retried() -> None:
    client = FakeClient(failures=[grpc.StatusCode.FAILED_PRECONDITION])

    with pytest.raises(DependencyUnavailable):
        await gateway(client).snapshot("o1")
    assert client.calls == ["get"]


async def test_an_unknown_instance_is_none() -> None:
    client = FakeClient(failures=[grpc.StatusCode.NOT_FOUND])

    assert await gateway(client).snapshot("o1") is None


@pytest.mark.parametrize(
    ("status", "shown"),
    [
        (WorkflowStatus.PENDING, "PENDING"),
        (WorkflowStatus.RUNNING, "RUNNING"),
        (WorkflowStatus.COMPLETED, "COMPLETED"),
        (WorkflowStatus.FAILED, "FAILED"),
        (WorkflowStatus.TERMINATED, "TERMINATED"),
        (WorkflowStatus.SUSPENDED, "SUSPENDED"),
        (WorkflowStatus.STALLED, "SUSPENDED"),
        (WorkflowStatus.UNKNOWN, "PENDING"),
    ],
)
async def test_engine_statuses_map_to_the_public_ones(status: WorkflowStatus, shown: str) -> None:
    snapshot = await gateway(FakeClient(state=State(status))).snapshot("o1")

    assert snapshot is not None
    assert snapshot.status == shown


async def test_output_and_naive_timestamps_are_read_as_json_and_utc() -> None:
    state = State(
        WorkflowStatus.COMPLETED,
        serialized_output='{"processed": true, "reason": null}',
        last_updated_at=datetime(2026, 11, 28, 12, 0),
    )

    snapshot = await gateway(FakeClient(state=state)).snapshot("o1")

    assert snapshot is not None
    assert snapshot.output == {"processed": True, "reason": None}
    assert snapshot.updated_at == datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    assert snapshot.finished


ORDER = OrderInput(
    order_id="o1",
    item="cars",
    quantity=1,
    total_cost=15_000,
    approval_required=False,
    approval_timeout_seconds=1.0,
)


async def test_a_schedule_the_engine_refuses_is_unavailable() -> None:
    client = FakeClient(failures=[grpc.StatusCode.UNAVAILABLE])

    with pytest.raises(DependencyUnavailable, match="could not start workflow o1"):
        await gateway(client).schedule("order_processing", "o1", ORDER)


async def test_a_schedule_of_a_running_instance_is_taken_as_started() -> None:
    # Dapr's ALREADY_EXISTS: a twin start (another replica, a repeated create) got there first.
    client = FakeClient(failures=[grpc.StatusCode.ALREADY_EXISTS])

    await gateway(client).schedule("order_processing", "o1", ORDER)

    assert client.calls == ["schedule"]


async def test_an_event_the_engine_refuses_is_unavailable() -> None:
    # Dapr answers FAILED_PRECONDITION while no worker is connected; the outbox retries later.
    client = FakeClient(failures=[grpc.StatusCode.FAILED_PRECONDITION])

    with pytest.raises(DependencyUnavailable, match="could not deliver manager_approval to o1"):
        await gateway(client).raise_event("o1", "manager_approval", {"approval": True})


async def test_a_step_being_retried_reads_as_the_step_and_why() -> None:
    retrying = Retrying(
        reason="unavailable", error="connection refused", attempts=2, since=datetime(2026, 12, 7)
    )
    custom = StepStatus(step="reserving_inventory", retrying=retrying).encode()
    client = FakeClient(state=State(WorkflowStatus.RUNNING, serialized_custom_status=custom))

    snapshot = await gateway(client).snapshot("o1")

    assert snapshot is not None
    assert snapshot.step == "reserving_inventory"
    assert snapshot.retrying == retrying


async def test_a_bare_step_is_not_retrying() -> None:
    client = FakeClient(state=State(WorkflowStatus.RUNNING, serialized_custom_status="done"))

    snapshot = await gateway(client).snapshot("o1")

    assert snapshot is not None
    assert (snapshot.step, snapshot.retrying) == ("done", None)


async def test_a_custom_status_that_is_not_a_step_status_reads_as_it_is() -> None:
    client = FakeClient(state=State(WorkflowStatus.RUNNING, serialized_custom_status="{odd"))

    snapshot = await gateway(client).snapshot("o1")

    assert snapshot is not None
    assert (snapshot.step, snapshot.retrying) == ("{odd", None)
