"""The compose tests' shared helpers (not fixtures: those stay in conftest.py): the projects'
manager token and header, the app image's tag, waiting for `/readyz`, and the measurements printed
after the run. What a fault test checks at its end is the auditor's (GET /audit)."""

from __future__ import annotations

import hashlib
import time

import httpx

from devstack.settings import ROOT
from tests.compose.project import ComposeProject
from tests.fixtures.manager import manager_headers

MANAGER_TOKEN = "compose-manager-token"
MANAGER = manager_headers(MANAGER_TOKEN)
# One tag per checkout: runs from two worktrees on one engine never swap each other's app.
APP_IMAGE = (
    "localhost/order-processor/app:tests-" + hashlib.sha256(str(ROOT).encode()).hexdigest()[:10]
)
# Kills and recreations must never turn into approval timeouts.
APPROVAL_TIMEOUT_SECONDS = "300"
READY_SECONDS = 60.0


# Figures worth reporting (recovery times, build times), printed after the run (conftest.py).
MEASUREMENTS: list[str] = []


def record(line: str) -> None:
    MEASUREMENTS.append(line)


def wait_ready(project: ComposeProject, seconds: float = READY_SECONDS) -> float:
    """Seconds until the app's /readyz is 200 (sidecar healthy, workflow worker connected).

    Blocking on purpose: nothing else runs in the test while the stack recovers."""
    started = time.monotonic()
    deadline = started + seconds
    last: object = None
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"{project.app_url}/readyz", timeout=5.0)
            if response.status_code == 200:
                return time.monotonic() - started
            last = (response.status_code, response.text[:200])
        except httpx.HTTPError as error:
            last = repr(error)
        time.sleep(0.2)
    raise AssertionError(f"/readyz not 200 within {seconds:.0f}s; last: {last}\n{project.logs()}")
