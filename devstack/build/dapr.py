"""Build Dapr's six programs from Dapr's Go module at the pinned version (built and cached by
devstack.build.go_tool, keyed by version and by the digest of `tools/dapr`): daprd, placement
and scheduler, which the local stack and compose run, and operator, sentry and injector, which
with placement and scheduler make the Kubernetes control plane (daprd is its injected sidecar).
"""

from __future__ import annotations

from pathlib import Path

from devstack.build import go_tool
from devstack.build.go_tool import DAPR, GoToolBuildError, module_digest, required_version
from devstack.settings import StackSettings, pinned_dapr_version

GO_MODULE_DIR = DAPR.module_dir
BINARIES = DAPR.binaries
# What the local stack and docker-compose.yml run.
STANDALONE = ("daprd", "placement", "scheduler")
# What Dapr's Helm chart runs: the control plane, and daprd as the sidecar the injector adds.
KUBERNETES = ("operator", "sentry", "injector", "placement", "scheduler", "daprd")
DaprBuildError = GoToolBuildError

__all__ = [
    "BINARIES",
    "GO_MODULE_DIR",
    "KUBERNETES",
    "STANDALONE",
    "DaprBuildError",
    "bin_dir",
    "build",
    "module_digest",
]


def go_mod_dapr_version(go_mod: Path = GO_MODULE_DIR / "go.mod") -> str:
    """The version of github.com/dapr/dapr that the build module requires, without the `v`."""
    return required_version("github.com/dapr/dapr", go_mod)


def bin_dir(settings: StackSettings, version: str) -> Path:
    return settings.dapr_cache_dir / version / "bin"


def binaries_current(directory: Path) -> bool:
    return DAPR.current(directory)


def ldflags(version: str) -> str:
    """The version stamps Dapr's own release build links in (its Makefile's DEFAULT_LDFLAGS,
    less the git commit, which a module download does not have): what every program logs at
    start (`version 1.18.2`) and in the `ver` field of its JSON log lines."""
    return (
        f"-s -w -X github.com/dapr/dapr/pkg/buildinfo.version={version}"
        f" -X github.com/dapr/kit/logger.DaprVersion={version}"
    )


def build(settings: StackSettings) -> Path:
    """Compile the six binaries into the cache (unless already there) and return their folder."""
    version = pinned_dapr_version()
    required = go_mod_dapr_version()
    if required != version:
        raise DaprBuildError(
            f".env pins Dapr {version} but tools/dapr/go.mod requires {required}; make them agree"
        )
    return DAPR.build(bin_dir(settings, version), version, ldflags(version))


if __name__ == "__main__":
    go_tool.main(build)
