"""The compose tests' fixtures: a Docker engine, the images, and private compose projects.

Session: the engine (started if none answers, stopped afterwards if this run started it) and
the images: the local stand-ins (built only when their inputs changed) and the app image built
by the compose tool from the repo's Dockerfile. Each test module then runs its own project of
docker-compose.yml (own name, network and volumes, free loopback ports) and removes all of it,
volumes included, when the module ends.
"""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from devstack.images.docker_engine import DockerEngine
from tests.compose.project import ComposeProject, ProjectFactory
from tests.compose.support import (
    APP_IMAGE,
    APPROVAL_TIMEOUT_SECONDS,
    MANAGER,
    MANAGER_TOKEN,
    MEASUREMENTS,
    record,
    wait_ready,
)
from tests.fixtures.images import exports_of_make_images


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if MEASUREMENTS:
        terminalreporter.section("compose stack measurements")
        for line in MEASUREMENTS:
            terminalreporter.write_line(line)


def _report(line: str) -> None:
    print(f"[compose-tests] {line}", file=sys.stderr, flush=True)


@pytest.fixture(scope="session")
def local_images() -> Iterator[dict[str, str]]:
    """The images README's words select: `eval "$(make -s images)"` (with the observability
    images too), whose standard output must be the exports and nothing else."""
    with DockerEngine(_report):
        started = time.monotonic()
        images = exports_of_make_images({"OBSERVABILITY": "true"})
        record(f"local images current after {time.monotonic() - started:.1f}s")
        builder = ComposeProject("opbuild", _compose_env(images))
        started = time.monotonic()
        builder.compose("build", "app", timeout=900)
        record(f"app image (compose build) {time.monotonic() - started:.1f}s")
        yield images


def _compose_env(images: dict[str, str]) -> dict[str, str]:
    return {
        **images,
        "APP_IMAGE": APP_IMAGE,
        "MANAGER_TOKEN": MANAGER_TOKEN,
        "APPROVAL_TIMEOUT_SECONDS": APPROVAL_TIMEOUT_SECONDS,
    }


@pytest.fixture(scope="module")
def project_factory(local_images: dict[str, str]) -> Iterator[ProjectFactory]:
    """Projects made in a module are torn down (containers, network, volumes) after it."""
    made: list[ComposeProject] = []

    def make(prefix: str, overrides: tuple[Path, ...] = ()) -> ComposeProject:
        project = ComposeProject(prefix, _compose_env(local_images), overrides)
        made.append(project)
        return project

    yield make
    for project in made:
        project.down(volumes=True)


@pytest.fixture(scope="module")
def project(project_factory: ProjectFactory) -> ComposeProject:
    """A running project shared by a module's tests."""
    running = project_factory("opcompose")
    started = time.monotonic()
    running.up()
    up_seconds = time.monotonic() - started
    wait_ready(running, seconds=120.0)
    record(
        f"fresh project: up -d {up_seconds:.1f}s, /readyz 200 after "
        f"{time.monotonic() - started:.1f}s"
    )
    return running


@pytest.fixture
async def api(project: ComposeProject) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=project.app_url, timeout=30.0) as client:
        yield client


@pytest.fixture
def manager() -> dict[str, str]:
    return dict(MANAGER)
