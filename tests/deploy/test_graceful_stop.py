"""Every way the app is run gives its graceful stop the time it needs before the SIGKILL.

On SIGTERM uvicorn stops listening and gives requests in flight `--timeout-graceful-shutdown`;
then the app's lifespan waits up to SHUTDOWN_DRAIN_SECONDS for changes that outlived their
request (a create answered 503 at its deadline), then stops its workflow worker and closes its
clients. The kill deadline of each stack (compose stop_grace_period, the chart's
terminationGracePeriodSeconds, devstack's stop grace) must cover all of it, and the sidecar
must still serve while the app drains.
"""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.config import Settings
from devstack.settings import ROOT
from devstack.stack import Stack, isolated_settings
from tests.fixtures.helm import Manifest, app_container, helm_binary, only, render_chart

# After the drain: the workflow worker's stop and the clients' close. Not measured to the
# second; generous, since a SIGKILL here is what the whole budget exists to avoid.
WORKER_STOP_SECONDS = 5
# daprd's own graceful shutdown after its blocked period (dapr.io/graceful-shutdown-seconds,
# default 5 in Dapr 1.18).
DAPRD_GRACEFUL_SECONDS = 5
DRAIN_SECONDS = Settings().shutdown_drain_seconds


def _uvicorn_grace(argv: list[str]) -> float:
    assert "--timeout-graceful-shutdown" in argv, argv
    return float(argv[argv.index("--timeout-graceful-shutdown") + 1])


def _dockerfile_cmd() -> list[str]:
    text = (ROOT / "Dockerfile").read_text()
    [cmd] = re.findall(r"^CMD (\[.*\])$", text, re.MULTILINE)
    argv: list[str] = json.loads(cmd)
    return argv


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)s", duration)
    assert match, f"{duration!r}: expected whole seconds, e.g. 20s"
    return float(match.group(1))


def _needed(uvicorn_grace: float, drain: float) -> float:
    return uvicorn_grace + drain + WORKER_STOP_SECONDS


def test_uvicorn_gives_every_changing_request_its_deadline() -> None:
    # A change answers within REQUEST_TIMEOUT_SECONDS (its deadline's 503 at the latest); what
    # runs on after that is the drain's. Long polls and event streams (reads) may be cut.
    assert _uvicorn_grace(_dockerfile_cmd()) > Settings().request_timeout_seconds


def test_devstack_runs_the_app_as_the_image_does_and_waits_for_its_stop(tmp_path: Path) -> None:
    stack = Stack(isolated_settings(tmp_path), dapr_bin_dir=tmp_path)
    [app] = [service for name, service in stack.services.items() if name.startswith("app")]
    grace = _uvicorn_grace(app.argv)
    assert grace == _uvicorn_grace(_dockerfile_cmd())
    stop_grace = inspect.signature(Stack.stop_service).parameters["grace"].default
    assert stop_grace >= _needed(grace, DRAIN_SECONDS), stop_grace


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


@pytest.mark.parametrize("app", ["app", "app-2", "app-3"])
def test_compose_waits_for_the_apps_graceful_stop(app: str) -> None:
    service = _compose()["services"][app]
    environment = service.get("environment", {})
    drain = float(environment.get("SHUTDOWN_DRAIN_SECONDS", DRAIN_SECONDS))
    grace = _uvicorn_grace(service.get("command") or _dockerfile_cmd())
    assert _seconds(service["stop_grace_period"]) >= _needed(grace, drain)


@pytest.mark.parametrize("app", ["app", "app-2", "app-3"])
def test_compose_stops_each_app_before_its_sidecar(app: str) -> None:
    # Compose stops dependents first: the sidecar serves the app's drain.
    assert any(name.startswith("daprd") for name in _compose()["services"][app]["depends_on"])


@pytest.fixture(scope="module")
def chart() -> list[Manifest]:
    return render_chart(helm_binary())


def _pod(manifests: list[Manifest]) -> dict[str, Any]:
    pod: dict[str, Any] = only(manifests, "Deployment")["spec"]["template"]
    return pod


def _drain_in_chart(manifests: list[Manifest]) -> float:
    env = {var["name"]: var for var in app_container(manifests)["env"]}
    return float(env["SHUTDOWN_DRAIN_SECONDS"]["value"])


def test_the_chart_waits_for_the_apps_graceful_stop(chart: list[Manifest]) -> None:
    assert "command" not in app_container(chart)  # the image's CMD, with its uvicorn grace
    grace = _uvicorn_grace(_dockerfile_cmd())
    period = _pod(chart)["spec"]["terminationGracePeriodSeconds"]
    assert period >= _needed(grace, _drain_in_chart(chart)), period


def test_the_sidecar_serves_while_the_app_drains_and_stops_in_time(chart: list[Manifest]) -> None:
    # daprd gets SIGTERM with the app: it must keep serving through the app's drain.
    block = _seconds(_pod(chart)["metadata"]["annotations"]["dapr.io/block-shutdown-duration"])
    assert block >= _uvicorn_grace(_dockerfile_cmd()) + _drain_in_chart(chart)
    assert _pod(chart)["spec"]["terminationGracePeriodSeconds"] >= block + DAPRD_GRACEFUL_SECONDS
