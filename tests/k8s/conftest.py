"""The Kubernetes tier's cluster: one per session, started the way `make k8s` starts it but in a
private state folder (its own CA, an empty etcd), and stopped at the end. It uses the same
ports, bridge and route as `make k8s`, so stop that one first. Needs root (containerd, the
kubelet and kube-proxy change the machine's network and cgroups).

On it, once per session and in README's order (tests/k8s/steps.py runs README's blocks):
Dapr's control plane from its own chart (`dapr`), then Redis and the project's chart (`release`),
from images built here and imported into the node's containerd."""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack.build.dapr import build as build_dapr
from devstack.build.helm import build as build_helm
from devstack.build.kubernetes import ClusterBinaries, build
from devstack.images.docker_engine import DockerEngine
from devstack.images.local import build_dapr_kubernetes_images, build_debian_images
from devstack.k8s.cluster import Cluster, running_cluster, supervision_policy
from devstack.k8s.config import ClusterSettings
from devstack.settings import StackSettings, pinned_dapr_version
from tests.fixtures.k8s import wait_until
from tests.k8s.steps import (
    DAPR_NAMESPACE,
    MANAGER_TOKEN,
    REDIS_PASSWORD,
    Release,
    Shell,
    readme_block,
)

# Figures worth reporting (install and start-up times), printed after the run.
MEASUREMENTS: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if MEASUREMENTS:
        terminalreporter.section("kubernetes tier measurements")
        for line in MEASUREMENTS:
            terminalreporter.write_line(line)


def _record(line: str) -> None:
    MEASUREMENTS.append(line)
    _report(line)


def _report(line: str) -> None:
    print(f"[k8s-tests] {line}", file=sys.stderr, flush=True)


@pytest.fixture(scope="session")
def binaries() -> ClusterBinaries:
    return build(StackSettings())


@pytest.fixture(scope="session")
def cluster(
    binaries: ClusterBinaries, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    if os.geteuid() != 0:
        pytest.fail("the Kubernetes tier needs root (it runs containerd, the kubelet, kube-proxy)")
    state: Path = tmp_path_factory.mktemp("k8s")
    settings = ClusterSettings(state_dir=state)
    policy = supervision_policy(StackSettings(), settings)
    with running_cluster(settings, binaries, _report, policy) as running:
        yield running
    # A mount left under the folder would make it undeletable, and pytest's clean-up of old
    # folders would then warn (an error here) in every later session on this machine.
    left = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
            if line.split()[1].startswith(str(state.resolve()))]  # fmt: skip
    assert not left, f"mounts outlived the cluster: {left}"


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[None]:
    with DockerEngine(_report):
        yield


@pytest.fixture(scope="session")
def helm() -> Path:
    return build_helm(StackSettings())


@pytest.fixture(scope="session")
def shell(cluster: Cluster, helm: Path) -> Shell:
    variables = {"MANAGER_TOKEN": MANAGER_TOKEN, "REDIS_PASSWORD": REDIS_PASSWORD}
    return Shell(cluster, helm, variables, _report)


@dataclass(frozen=True)
class LocalImages:
    dapr: list[str]
    redis: str
    python: str


@pytest.fixture(scope="session")
def local_images(docker_engine: None) -> LocalImages:
    """Dapr's six (`make dapr-images`) and the compose stand-ins for Redis and the app's Python
    base (`make images`), current in the Docker engine (each rebuilt only when changed)."""
    started = time.monotonic()
    dapr = build_dapr_kubernetes_images(build_dapr(StackSettings()), pinned_dapr_version(), _report)
    debian = build_debian_images(_report, observability=False)
    _record(f"local images current (Dapr's six, Redis, Python): {time.monotonic() - started:.1f}s")
    return LocalImages(dapr, debian["redis"], debian["python"])


def _wait_for_injector_ca(cluster: Cluster) -> None:
    """The injector writes its serving CA into its webhook once it has a certificate from
    sentry; until then the API server cannot call it (and, failurePolicy Ignore, would let a
    pod through without a sidecar)."""
    wait_until(
        lambda: cluster.kubectl(
            "get", "mutatingwebhookconfiguration", "dapr-sidecar-injector",
            "-o", "jsonpath={.webhooks[0].clientConfig.caBundle}", check=False,
        ).strip(),
        120,
        "the injector's caBundle in its webhook",
    )  # fmt: skip


@pytest.fixture(scope="session")
def dapr(cluster: Cluster, shell: Shell, local_images: LocalImages) -> float:
    """Dapr's control plane installed by README's `dapr-kubernetes` block and Ready; the
    seconds the block took (images already in the node)."""
    started = time.monotonic()
    cluster.containerd.import_docker_image(*local_images.dapr)
    _record(f"Dapr images imported into the node: {time.monotonic() - started:.1f}s")
    started = time.monotonic()
    for line, took in shell.run_each(readme_block("dapr-kubernetes"), timeout=900):
        _record(f"  {took:5.1f}s  {_short(line)}")
    _wait_for_injector_ca(cluster)
    took = time.monotonic() - started
    _record(f"Dapr installed, control plane Ready (README's block): {took:.1f}s")
    _record_restarts(cluster, DAPR_NAMESPACE)
    return took


def _record_restarts(cluster: Cluster, namespace: str) -> None:
    """Each container that restarted on the way to Ready, and why it last stopped."""
    pods = json.loads(cluster.kubectl("-n", namespace, "get", "pods", "-o", "json"))
    for pod in pods["items"]:
        for status in pod["status"].get("containerStatuses", []):
            if status["restartCount"]:
                previous = cluster.kubectl(
                    "-n", namespace, "logs", pod["metadata"]["name"], "-c", status["name"],
                    "--previous", "--tail=3", check=False,
                ).strip()  # fmt: skip
                _record(
                    f"  {pod['metadata']['name']}: {status['restartCount']} restarts; last words:"
                    f" {_short(previous.splitlines()[-1] if previous else '')}"
                )


def _short(line: str) -> str:
    return line if len(line) <= 160 else line[:157] + "..."


def _app_image_build(python_image: str) -> tuple[list[str], str]:
    """README's step 1 `docker build`, with the local Python base (no registry here); and
    the tag it builds, which the chart's values then name."""
    (line,) = [line for line in readme_block("kubernetes") if line.startswith("docker build")]
    words = shlex.split(line)
    tag = words[words.index("-t") + 1]
    build_line = line.replace(
        "docker build", f"docker build --build-arg PYTHON_IMAGE={python_image}", 1
    )
    return [build_line], tag


@pytest.fixture(scope="session")
def release(cluster: Cluster, shell: Shell, dapr: float, local_images: LocalImages) -> Release:
    """Redis and the project's chart installed by README's `kubernetes-redis` and `kubernetes`
    blocks, the app's rollout complete. Step 1 builds the image with the local Python base and
    loads it into the node instead of pushing it; step 2 (Dapr) is the `dapr` fixture's."""
    build_lines, app_image = _app_image_build(local_images.python)
    started = time.monotonic()
    shell.run(build_lines, timeout=1200)
    cluster.containerd.import_docker_image(app_image, local_images.redis)
    _record(f"app image built and imported with Redis's: {time.monotonic() - started:.1f}s")
    took = shell.run(readme_block("kubernetes-redis"), timeout=300)
    _record(f"Redis installed and Ready (README's block): {took:.1f}s")
    steps = [
        line
        for line in readme_block("kubernetes")
        if not line.startswith(("docker ", "dapr init"))
        and "port-forward" not in line  # a foreground command: test_port_forward runs it
    ]
    started = time.monotonic()
    for line, took in shell.run_each(steps, timeout=600):
        _record(f"  {took:5.1f}s  {_short(line)}")
    took = time.monotonic() - started
    _record(f"the chart installed, app rollout complete (README's steps 3-4): {took:.1f}s")
    (install,) = [shlex.split(line) for line in steps if line.startswith("helm install")]
    namespace = install[install.index("--namespace") + 1]
    release = Release(
        namespace, install[2], f"app.kubernetes.io/instance={install[2]}", cluster, shell
    )
    _record(f"app pods at rollout's end: {len(release.pods())}")
    return release
