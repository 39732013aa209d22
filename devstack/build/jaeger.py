"""Build Jaeger (the v2 all-in-one, `cmd/jaeger`) from its Go module: the trace backend
(built and cached by devstack.build.go_tool)."""

from __future__ import annotations

from pathlib import Path

from devstack.build import go_tool
from devstack.build.go_tool import JAEGER, GoToolBuildError, required_version
from devstack.settings import StackSettings

GO_MODULE_DIR = JAEGER.module_dir
JaegerBuildError = GoToolBuildError


def pinned_jaeger_version(go_mod: Path = GO_MODULE_DIR / "go.mod") -> str:
    """The version of github.com/jaegertracing/jaeger the tool module requires, without the `v`."""
    return required_version("github.com/jaegertracing/jaeger", go_mod)


def release_version() -> str:
    """The Jaeger v2 release of the pinned module: Jaeger tags each release twice, v1.N.P for
    the Go module and v2.(N-63).P for the binaries and images (v1.76.0 is v2.13.0)."""
    major, minor, patch = pinned_jaeger_version().split(".")
    if major != "1":
        raise JaegerBuildError(f"unexpected Jaeger module version {pinned_jaeger_version()}")
    return f"2.{int(minor) - 63}.{patch}"


def jaeger_binary(settings: StackSettings) -> Path:
    return settings.jaeger_cache_dir / pinned_jaeger_version() / "jaeger"


def binary_current(binary: Path) -> bool:
    return JAEGER.current(binary.parent)


def build(settings: StackSettings) -> Path:
    """Compile `jaeger` into the cache (unless already there) and return its path."""
    return JAEGER.build(jaeger_binary(settings).parent, pinned_jaeger_version()) / "jaeger"


if __name__ == "__main__":
    go_tool.main(build)
