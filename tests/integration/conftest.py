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


def launch(data_dir: Path, app_env: dict[str, str]) -> Stack:
    """A started stack on free ports with its data in `data_dir` (the caller stops it)."""
    settings = isolated_settings(data_dir)
    build(settings)
    env = {
        "MANAGER_TOKEN": MANAGER_TOKEN,
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO"),
        **app_env,
    }
    running = Stack(settings, app_env=env)
    running.start()
    return running


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = launch(
        tmp_path_factory.mktemp("stack-data"),
        {"APPROVAL_TIMEOUT_SECONDS": str(APPROVAL_TIMEOUT_SECONDS)},
    )
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
async def api(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.app_url, timeout=30.0) as client:
        yield client


@pytest.fixture
def manager() -> dict[str, str]:
    return {"Authorization": f"Bearer {MANAGER_TOKEN}"}
