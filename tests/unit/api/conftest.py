"""The real app (routes, errors, auth, body limit) over the fakes, served in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from app.main import create_app
from tests.unit.fakes import FakeSidecar, FakeWorkflowGateway, InMemoryStateStore, fake_services

MANAGER_TOKEN = "t"
THRESHOLD = 50_000


@dataclass
class Api:
    client: httpx.AsyncClient
    app: FastAPI
    store: InMemoryStateStore
    workflows: FakeWorkflowGateway
    sidecar: FakeSidecar

    def snapshot_of_store(self) -> dict[str, Any]:
        return {key: value for key, (value, _) in self.store.data.items()}


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    store, workflows, sidecar = InMemoryStateStore(), FakeWorkflowGateway(), FakeSidecar()
    settings = Settings(
        manager_token=MANAGER_TOKEN,
        approval_threshold=THRESHOLD,
        approval_timeout_seconds=30.0,
        log_level="WARNING",
    )
    app = create_app(settings, services=fake_services(store, workflows, sidecar))
    # ASGITransport does not run the lifespan; the router's lifespan context builds the services.
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        yield Api(client, app, store, workflows, sidecar)


@pytest.fixture
def manager() -> dict[str, str]:
    return {"Authorization": f"Bearer {MANAGER_TOKEN}"}
