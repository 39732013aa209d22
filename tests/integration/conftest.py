"""Session fixture: the real stack (Redis, placement, scheduler, daprd, app) on free ports."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from devstack.stack import Stack
from tests.fixtures.manager import manager_headers
from tests.fixtures.stack import APPROVAL_TIMEOUT_SECONDS, api_client, module_stack

# The stack every integration module without one of its own shares, for the whole session.
stack = module_stack(
    "stack-data",
    scope="session",
    app_env={"APPROVAL_TIMEOUT_SECONDS": str(APPROVAL_TIMEOUT_SECONDS)},
)


@pytest.fixture
async def api(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(stack) as client:
        yield client


@pytest.fixture
def manager() -> dict[str, str]:
    return manager_headers()
