"""Fixtures every unit test may use. No Dapr here: the fakes stand in for the engine and store."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from app.services.state_store import SidecarStateStore
from tests.fixtures.fakes import InMemoryStateStore, RedisStateApi, serving


@pytest.fixture
def store() -> InMemoryStateStore:
    return InMemoryStateStore()


@pytest.fixture
def redis_api() -> RedisStateApi:
    return RedisStateApi()


@pytest.fixture
async def sidecar_store(redis_api: RedisStateApi) -> AsyncIterator[SidecarStateStore]:
    """The real adapter, talking HTTP to `redis_api` as it would to daprd."""
    async with serving(redis_api) as url:
        adapter = SidecarStateStore(url, "statestore")
        try:
            yield adapter
        finally:
            await adapter.aclose()
