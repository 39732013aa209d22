"""The Helm chart's pod settings, applied by a real container engine to the real app image.

The chart runs the app as the image's non-root user with a read-only root filesystem, no
capabilities, no privilege escalation, writable only at its emptyDir mounts, with the
environment it renders. A schema cannot tell whether the app still works that way: here those
settings, read from the chart rendered by the real helm, start the image in place of the compose
project's app container, and the README walkthrough takes an order through approval on it.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from devstack.stack import free_ports
from tests.compose.project import ComposeProject
from tests.compose.support import APP_IMAGE, MANAGER_TOKEN, wait_ready
from tests.fixtures.helm import Manifest, app_container, helm_binary, only, render_chart
from tests.fixtures.readme import walk_through_approval


def _docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=120, check=check
    )


def _run_options(manifests: list[Manifest]) -> list[str]:
    """`docker run` options for what the chart's pod spec asks of the app container."""
    pod = only(manifests, "Deployment")["spec"]["template"]["spec"]
    container = app_container(manifests)
    pod_context, context = pod["securityContext"], container["securityContext"]
    options = ["--user", f"{pod_context['runAsUser']}:{pod_context['runAsGroup']}"]
    if context["readOnlyRootFilesystem"]:
        options.append("--read-only")
    options += [f"--cap-drop={capability}" for capability in context["capabilities"]["drop"]]
    if not context["allowPrivilegeEscalation"]:
        options += ["--security-opt", "no-new-privileges"]
    empty_dirs = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
    for mount in container.get("volumeMounts", []):
        assert mount["name"] in empty_dirs, f"only emptyDir mounts are mapped here: {mount}"
        options += ["--tmpfs", mount["mountPath"]]
    for variable in container["env"]:
        if "value" in variable:  # the secretKeyRef ones are given by the test below
            options += ["--env", f"{variable['name']}={variable['value']}"]
    return options


class PodApp:
    def __init__(self, container: str, api_url: str) -> None:
        self.container = container
        self.api_url = api_url

    def inspect(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads(_docker("inspect", self.container).stdout)[0]
        return state


def _wait_ready(app: PodApp, seconds: float) -> None:
    """The chart's readiness probe: /readyz 200 (sidecar healthy, this app's worker connected)."""
    deadline = time.monotonic() + seconds
    last: object = None
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"{app.api_url}/readyz", timeout=5.0)
            if response.status_code == 200:
                return
            last = (response.status_code, response.text[:200])
        except httpx.HTTPError as error:
            last = repr(error)
        time.sleep(0.2)
    logs = _docker("logs", "--tail", "40", app.container, check=False)
    raise AssertionError(f"/readyz not 200 within {seconds:.0f}s; last: {last}\n{logs.stderr}")


@pytest.fixture(scope="module")
def pod_app(project_factory: Callable[[str], ComposeProject]) -> Iterator[PodApp]:
    project = project_factory("oppod")
    project.up()
    wait_ready(project, seconds=120.0)
    # The chart's app takes the compose app's place beside the same daprd.
    project.compose("stop", "app")
    manifests = render_chart(helm_binary())
    daprd = project.inspect("daprd")
    (network,) = daprd["NetworkSettings"]["Networks"]
    (port,) = free_ports(1)
    name = f"{project.name}-pod-app"
    _docker(
        "run", "--detach", "--name", name, "--network", network,
        "--publish", f"127.0.0.1:{port}:{app_container(manifests)['ports'][0]['containerPort']}",
        *_run_options(manifests),
        "--env", "DAPR_HOST=daprd",
        "--env", f"DAPR_API_TOKEN={project.api_token}",
        "--env", f"MANAGER_TOKEN={MANAGER_TOKEN}",
        APP_IMAGE,
    )  # fmt: skip
    try:
        app = PodApp(name, f"http://127.0.0.1:{port}")
        _wait_ready(app, seconds=120.0)
        yield app
    finally:
        _docker("rm", "--force", name, check=False)


def test_engine_applied_the_charts_settings(pod_app: PodApp) -> None:
    config = pod_app.inspect()["HostConfig"]
    assert config["ReadonlyRootfs"] is True
    assert config["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in config["SecurityOpt"]
    assert pod_app.inspect()["Config"]["User"] == "10001:10001"


def test_root_filesystem_refuses_writes(pod_app: PodApp) -> None:
    # So the walkthrough below really ran read-only: a write outside the mounts fails...
    refused = _docker("exec", pod_app.container, "touch", "/srv/probe", check=False)
    assert refused.returncode != 0
    assert "Read-only file system" in refused.stderr
    # ...and the one emptyDir mount takes writes.
    _docker("exec", pod_app.container, "touch", "/tmp/probe")


async def test_readme_walkthrough_passes_under_the_charts_settings(pod_app: PodApp) -> None:
    await walk_through_approval(pod_app.api_url, MANAGER_TOKEN)
