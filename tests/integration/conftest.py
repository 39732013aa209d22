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
from devstack.settings import StackSettings
from devstack.stack import Stack, free_ports

MANAGER_TOKEN = "integration-manager-token"
# Short enough that the timeout branch is tested in seconds, long enough to approve in time.
APPROVAL_TIMEOUT_SECONDS = 6


def launch(data_dir: Path, app_env: dict[str, str]) -> Stack:
    """A started stack on free ports with its data in `data_dir` (the caller stops it)."""
    port_fields = [name for name in StackSettings.model_fields if name.endswith("_port")]
    ports = dict(zip(port_fields, free_ports(len(port_fields)), strict=True))
    settings = StackSettings.model_validate(
        {
            **{
                str(StackSettings.model_fields[name].validation_alias): port
                for name, port in ports.items()
            },
            "STACK_DATA_DIR": str(data_dir),
        }
    )
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
