"""Session fixture: the real stack (Redis, placement, scheduler, daprd, app) on free ports.

It is the same `devstack.Stack` that `make run` starts, pointed at a temporary data folder.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from devstack.dapr_build import build
from devstack.stack import Stack, isolated_settings

MANAGER_TOKEN = "integration-manager-token"
# Short enough that the timeout branch is tested in seconds, long enough to approve in time.
APPROVAL_TIMEOUT_SECONDS = 6


def private_stack(data_dir: Path, app_env: dict[str, str]) -> Stack:
    """A stack on free ports with its data in `data_dir`; `with` starts and stops it."""
    settings = isolated_settings(data_dir)
    build(settings)
    env = {
        "MANAGER_TOKEN": MANAGER_TOKEN,
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO"),
        **app_env,
    }
    return Stack(settings, app_env=env)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    app_env = {"APPROVAL_TIMEOUT_SECONDS": str(APPROVAL_TIMEOUT_SECONDS)}
    with private_stack(tmp_path_factory.mktemp("stack-data"), app_env) as running:
        yield running


def api_client(stack: Stack) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=stack.app_url, timeout=30.0)


@pytest.fixture
async def api(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(stack) as client:
        yield client


@pytest.fixture
def manager() -> dict[str, str]:
    return {"Authorization": f"Bearer {MANAGER_TOKEN}"}
