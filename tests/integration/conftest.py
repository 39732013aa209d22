"""Session fixture: the real stack (Redis, placement, scheduler, daprd, app) on free ports."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from devstack.stack import Stack
from tests.fixtures.manager import manager_headers
from tests.fixtures.stack import APPROVAL_TIMEOUT_SECONDS, api_client, private_stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    app_env = {"APPROVAL_TIMEOUT_SECONDS": str(APPROVAL_TIMEOUT_SECONDS)}
    with private_stack(tmp_path_factory.mktemp("stack-data"), app_env=app_env) as running:
        yield running


@pytest.fixture
async def api(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(stack) as client:
        yield client


@pytest.fixture
def manager() -> dict[str, str]:
    return manager_headers()
