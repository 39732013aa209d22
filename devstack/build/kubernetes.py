"""Build the Kubernetes dev cluster's programs from their Go modules (built and cached by
devstack.build.go_tool): `kube` (kube-apiserver, kube-controller-manager, kube-scheduler,
kubelet, kube-proxy and kubectl in one binary), etcd and a trimmed CoreDNS."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from devstack.build import go_tool
from devstack.build.go_tool import COREDNS, ETCD, KUBERNETES, GoToolBuildError, required_version
from devstack.settings import StackSettings

KubernetesBuildError = GoToolBuildError


def pinned_kubernetes_version(go_mod: Path = KUBERNETES.module_dir / "go.mod") -> str:
    """The version of k8s.io/kubernetes the tool module requires, without the `v`."""
    return required_version("k8s.io/kubernetes", go_mod)


def pinned_etcd_version(go_mod: Path = ETCD.module_dir / "go.mod") -> str:
    return required_version("go.etcd.io/etcd/server/v3", go_mod)


def pinned_coredns_version(go_mod: Path = COREDNS.module_dir / "go.mod") -> str:
    return required_version("github.com/coredns/coredns", go_mod)


def _kube_ldflags(version: str) -> str:
    """The version the components report (and check each other's skew by): what Kubernetes'
    own build stamps into component-base and client-go; without it they say v0.0.0-master."""
    major, minor = version.split(".")[:2]
    flags = ["-s", "-w"]
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {package}.gitVersion=v{version}",
            f"-X {package}.gitMajor={major}",
            f"-X {package}.gitMinor={minor}",
            f"-X {package}.gitTreeState=clean",
        ]
    return " ".join(flags)


@dataclass(frozen=True)
class ClusterBinaries:
    kube: Path  # `kube <component> [flags]`
    pause: Path  # the sandbox process of the pause image
    smoke: Path  # the tests' workload (tests/k8s)
    etcd: Path
    coredns: Path


def binaries(settings: StackSettings) -> ClusterBinaries:
    """Where the cached binaries are (built or not)."""
    root = settings.kubernetes_cache_dir
    return ClusterBinaries(
        kube=root / "kube" / pinned_kubernetes_version() / "kube",
        pause=root / "kube" / pinned_kubernetes_version() / "pause",
        smoke=root / "kube" / pinned_kubernetes_version() / "smoke",
        etcd=root / "etcd" / pinned_etcd_version() / "etcd",
        coredns=root / "coredns" / pinned_coredns_version() / "coredns",
    )


def build(settings: StackSettings) -> ClusterBinaries:
    """Compile the three into the cache (each unless already there) and return their paths."""
    paths = binaries(settings)
    version = pinned_kubernetes_version()
    KUBERNETES.build(paths.kube.parent, version, _kube_ldflags(version))
    ETCD.build(paths.etcd.parent, pinned_etcd_version())
    COREDNS.build(paths.coredns.parent, pinned_coredns_version())
    return paths


def _main_build(settings: StackSettings) -> Path:
    return build(settings).kube.parent


if __name__ == "__main__":
    go_tool.main(_main_build)
