"""The real app (routes, errors, auth, body limit) over the fakes, served in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fixtures.api import MANAGER_TOKEN, REQUEST_TIMEOUT_SECONDS, Api, running_api
from tests.fixtures.fakes import InMemoryStateStore
from tests.fixtures.manager import manager_headers


@pytest.fixture
def request_timeout_seconds() -> float:
    """The app's request deadline; modules that test the deadline override it with a short one."""
    return REQUEST_TIMEOUT_SECONDS


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
    return manager_headers(MANAGER_TOKEN)
