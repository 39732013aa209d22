"""In-memory stand-ins for the state store and the workflow engine (unit tests only)."""

from __future__ import annotations

import copy
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from app.config import Settings
from app.dependencies import Services
from app.errors import DependencyUnavailable
from app.services.inventory import InventoryService
from app.services.orders import OrderService
from app.services.sidecar import SidecarProbe
from app.services.state_store import Entry, EtagMismatch
from app.services.workflows import WorkflowSnapshot


class InMemoryStateStore:
    """Same contract as the sidecar store: first-write creates, ETags guard replaces."""

    def __init__(self) -> None:
        self.data: dict[str, tuple[dict[str, Any], str]] = {}
        self._versions = itertools.count(1)
        self.fail_next_saves = 0
        self.conflict_next_saves = 0
        # Runs once, at the start of the next save: another writer racing between a read and
        # the write that follows it.
        self.before_next_save: Callable[[], Awaitable[object]] | None = None
        self.saves = 0

    async def get(self, key: str) -> Entry | None:
        found = self.data.get(key)
        return None if found is None else Entry(copy.deepcopy(found[0]), found[1])

    async def save(self, key: str, value: dict[str, Any], etag: str | None) -> None:
        if self.before_next_save is not None:
            racing_writer, self.before_next_save = self.before_next_save, None
            await racing_writer()
        self.saves += 1
        if self.fail_next_saves:
            self.fail_next_saves -= 1
            raise DependencyUnavailable("injected state store failure")
        current = self.data.get(key)
        if self.conflict_next_saves:
            self.conflict_next_saves -= 1
            raise EtagMismatch(key)
        if (etag is None and current is not None) or (
            etag is not None and (current is None or current[1] != etag)
        ):
            raise EtagMismatch(key)
        self.data[key] = (copy.deepcopy(value), str(next(self._versions)))

    async def delete(self, key: str, etag: str | None = None) -> None:
        self.data.pop(key, None)


@dataclass
class FakeWorkflowGateway:
    snapshots: dict[str, WorkflowSnapshot] = field(default_factory=dict)
    scheduled: list[tuple[str, str, Any]] = field(default_factory=list)
    events: list[tuple[str, str, Any]] = field(default_factory=list)
    waits: list[tuple[str, int]] = field(default_factory=list)
    unavailable: bool = False

    async def schedule(self, workflow: str, instance_id: str, payload: Any) -> None:
        if self.unavailable:
            raise DependencyUnavailable("sidecar down")
        self.scheduled.append((workflow, instance_id, payload))
        self.snapshots[instance_id] = WorkflowSnapshot("RUNNING", None, None, datetime.now(UTC))

    async def snapshot(self, instance_id: str) -> WorkflowSnapshot | None:
        return self.snapshots.get(instance_id)

    async def wait_finished(self, instance_id: str, seconds: int) -> None:
        self.waits.append((instance_id, seconds))

    async def raise_event(self, instance_id: str, event: str, data: Any) -> None:
        if self.unavailable:
            raise DependencyUnavailable("sidecar down")
        self.events.append((instance_id, event, data))

    def set(
        self,
        instance_id: str,
        status: str,
        step: str | None = None,
        output: dict[str, Any] | None = None,
    ) -> None:
        self.snapshots[instance_id] = WorkflowSnapshot(status, step, output, datetime.now(UTC))


@dataclass
class FakeSidecar:
    """The two daprd HTTP endpoints the readiness probe reads, as an httpx transport."""

    healthz_status: int = 204
    connected_workers: int = 1
    unreachable: bool = False
    requests: list[str] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request.url.path)
        if self.unreachable:
            raise httpx.ConnectError("connection refused", request=request)
        if request.url.path == "/v1.0/healthz":
            return httpx.Response(self.healthz_status)
        if request.url.path == "/v1.0/metadata":
            return httpx.Response(
                200,
                json={
                    "id": "order-processor",
                    "workflows": {"connectedWorkers": self.connected_workers},
                },
            )
        return httpx.Response(404)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)


def fake_services(
    store: InMemoryStateStore, workflows: FakeWorkflowGateway, sidecar: FakeSidecar
) -> Callable[[Settings, str], AbstractAsyncContextManager[Services]]:
    """A services factory for create_app: the real services, built on the fakes."""

    @asynccontextmanager
    async def factory(settings: Settings, manager_token: str) -> AsyncIterator[Services]:
        async with httpx.AsyncClient(transport=sidecar.transport()) as http:
            inventory = InventoryService(store)
            await inventory.seed()
            yield Services(
                orders=OrderService(store, workflows, settings),
                inventory=inventory,
                probe=SidecarProbe(http, settings.dapr_http_url),
                manager_token=manager_token,
            )

    return factory
