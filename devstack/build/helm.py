"""Build the helm command from Helm's Go module: `make test` lints and renders the chart with it
(built and cached by devstack.build.go_tool)."""

from __future__ import annotations

from pathlib import Path

from devstack.build import go_tool
from devstack.build.go_tool import HELM, GoToolBuildError, required_version
from devstack.settings import StackSettings

GO_MODULE_DIR = HELM.module_dir
HelmBuildError = GoToolBuildError


def pinned_helm_version(go_mod: Path = GO_MODULE_DIR / "go.mod") -> str:
    """The version of helm.sh/helm/v3 the tool module requires, without the `v`."""
    return required_version("helm.sh/helm/v3", go_mod)


def kubernetes_version(go_mod: Path = GO_MODULE_DIR / "go.mod") -> tuple[str, str]:
    """The Kubernetes (major, minor) of the client-go helm links: client-go v0.37.x is 1.37.

    Helm's own release build derives it the same way; without it `helm template` and
    `helm lint` would assume Kubernetes 1.20 for `.Capabilities` and the chart's kubeVersion.
    """
    minor = required_version("k8s.io/client-go", go_mod).split(".")[1]
    return "1", minor


def helm_binary(settings: StackSettings) -> Path:
    return settings.helm_cache_dir / pinned_helm_version() / "helm"


def binary_current(binary: Path) -> bool:
    return HELM.current(binary.parent)


def _ldflags() -> str:
    major, minor = kubernetes_version()
    flags = ["-s", "-w", f"-X helm.sh/helm/v3/internal/version.version=v{pinned_helm_version()}"]
    for package in ("pkg/chartutil", "pkg/lint/rules"):
        flags += [
            f"-X helm.sh/helm/v3/{package}.k8sVersionMajor={major}",
            f"-X helm.sh/helm/v3/{package}.k8sVersionMinor={minor}",
        ]
    return " ".join(flags)


def build(settings: StackSettings) -> Path:
    """Compile `helm` into the cache (unless already there) and return its path."""
    return HELM.build(helm_binary(settings).parent, pinned_helm_version(), _ldflags()) / "helm"


if __name__ == "__main__":
    go_tool.main(build)
