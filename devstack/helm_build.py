"""Build the helm command from Helm's Go module: `make test` lints and renders the chart with it.

No registry reachable here ships a helm binary, so, like Dapr (devstack/dapr_build.py), it is
compiled from the module that `tools/helm/go.mod` pins as a `tool`, and cached outside the repo
keyed by a digest of that module's files: an edit to the pin rebuilds, anything else reuses it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from devstack.dapr_build import module_digest
from devstack.settings import ROOT, StackSettings

GO_MODULE_DIR = ROOT / "tools" / "helm"
PACKAGE = "helm.sh/helm/v3/cmd/helm"
_STAMP = ".build-stamp"


class HelmBuildError(RuntimeError):
    pass


def _required(module: str, go_mod: Path) -> str:
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(module)} v(\S+)", go_mod.read_text(), re.M)
    if match is None:
        raise HelmBuildError(f"{go_mod} does not require {module}")
    return match.group(1)


def pinned_helm_version(go_mod: Path = GO_MODULE_DIR / "go.mod") -> str:
    """The version of helm.sh/helm/v3 the tool module requires, without the `v`."""
    return _required("helm.sh/helm/v3", go_mod)


def kubernetes_version(go_mod: Path = GO_MODULE_DIR / "go.mod") -> tuple[str, str]:
    """The Kubernetes (major, minor) of the client-go helm links: client-go v0.37.x is 1.37.

    Helm's own release build derives it the same way; without it `helm template` and
    `helm lint` would assume Kubernetes 1.20 for `.Capabilities` and the chart's kubeVersion.
    """
    minor = _required("k8s.io/client-go", go_mod).split(".")[1]
    return "1", minor


def helm_binary(settings: StackSettings) -> Path:
    return settings.helm_cache_dir / pinned_helm_version() / "helm"


def binary_current(binary: Path) -> bool:
    stamp = binary.parent / _STAMP
    return (
        os.access(binary, os.X_OK)
        and stamp.is_file()
        and stamp.read_text().strip() == module_digest(GO_MODULE_DIR)
    )


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
    binary = helm_binary(settings)
    if binary_current(binary):
        return binary
    if shutil.which("go") is None:
        raise HelmBuildError("the Go toolchain is needed to build helm; install Go 1.26 or newer")
    env = {**os.environ, "CGO_ENABLED": os.environ.get("CGO_ENABLED", "0")}
    print(
        f"[helm-build] building helm {pinned_helm_version()} from Go modules into"
        f" {binary.parent} (cold: about 6 min on 2 cores, see README)",
        file=sys.stderr,
        flush=True,
    )
    started = time.monotonic()
    binary.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=binary.parent, prefix=".build-") as staging:
        built = subprocess.run(
            ["go", "build", "-trimpath", "-ldflags", _ldflags(), "-o", f"{staging}/helm", PACKAGE],
            cwd=GO_MODULE_DIR,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if built.returncode != 0:
            raise HelmBuildError("go build failed:\n" + built.stderr[-4000:])
        os.replace(Path(staging) / "helm", binary)
        (binary.parent / _STAMP).write_text(module_digest(GO_MODULE_DIR) + "\n")
    print(f"[helm-build] built in {time.monotonic() - started:.0f}s", file=sys.stderr, flush=True)
    return binary


def main() -> None:
    try:
        print(build(StackSettings()))
    except HelmBuildError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
