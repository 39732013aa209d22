"""The Kubernetes tier's cluster: one per session, started the way `make k8s` starts it but in a
private state folder (its own CA, an empty etcd), and stopped at the end. It uses the same
ports, bridge and route as `make k8s`, so stop that one first. Needs root (containerd, the
kubelet and kube-proxy change the machine's network and cgroups)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.build.kubernetes import ClusterBinaries, build
from devstack.images.docker_engine import DockerEngine
from devstack.k8s.cluster import Cluster, running_cluster, supervision_policy
from devstack.k8s.config import ClusterSettings
from devstack.settings import StackSettings


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
