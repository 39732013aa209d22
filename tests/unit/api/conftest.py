"""The real app (routes, errors, auth, body limit) over the fakes, served in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from app.api.dependencies import Services
from app.config import Settings
from app.main import create_app
from tests.fixtures.api import (
    EVENTS_POLL_SECONDS,
    MANAGER_TOKEN,
    REQUEST_TIMEOUT_SECONDS,
    THRESHOLD,
    Api,
)
from tests.fixtures.fakes import FakeSidecar, FakeWorkflowGateway, InMemoryStateStore, fake_services


@pytest.fixture
def request_timeout_seconds() -> float:
    """The app's request deadline; modules that test the deadline override it with a short one."""
    return REQUEST_TIMEOUT_SECONDS


@asynccontextmanager
async def running_api(
    store: InMemoryStateStore, request_timeout_seconds: float, **settings_overrides: Any
) -> AsyncIterator[Api]:
    workflows, sidecar = FakeWorkflowGateway(), FakeSidecar()
    settings = Settings(
        manager_token=MANAGER_TOKEN,
        approval_threshold=THRESHOLD,
        approval_timeout_seconds=30.0,
        request_timeout_seconds=request_timeout_seconds,
        order_events_poll_seconds=EVENTS_POLL_SECONDS,
        log_level="WARNING",
        **settings_overrides,
    )
    built: list[Services] = []
    app = create_app(settings, services=fake_services(store, workflows, sidecar, built))
    # ASGITransport does not run the lifespan; the manager does, and hands its state (the
    # services) to every request as a server would.
    async with (
        LifespanManager(app) as lifespan,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=lifespan.app), base_url="http://test"
        ) as client,
    ):
        yield Api(client, app, store, workflows, sidecar, built[-1])


@pytest.fixture
async def api(store: InMemoryStateStore, request_timeout_seconds: float) -> AsyncIterator[Api]:
    async with running_api(store, request_timeout_seconds) as running:
        yield running


@pytest.fixture
async def observed_api(
    store: InMemoryStateStore, request_timeout_seconds: float
) -> AsyncIterator[Api]:
    """The app with OBSERVABILITY on: it keeps the in-flight sets."""
    async with running_api(store, request_timeout_seconds, observability=True) as running:
        yield running


@pytest.fixture
def manager() -> dict[str, str]:
    return {"Authorization": f"Bearer {MANAGER_TOKEN}"}
