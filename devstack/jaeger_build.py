"""Build Jaeger (the v2 all-in-one, `cmd/jaeger`) from its Go module: the trace backend.

No registry reachable here ships Jaeger binaries, so, like Dapr (devstack/dapr_build.py), it is
compiled from the module `tools/jaeger/go.mod` pins as a `tool` and cached outside the repo, keyed
by a digest of that module's files: an edit to the pin rebuilds, anything else reuses the binary.
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

GO_MODULE_DIR = ROOT / "tools" / "jaeger"
PACKAGE = "github.com/jaegertracing/jaeger/cmd/jaeger"
_STAMP = ".build-stamp"


class JaegerBuildError(RuntimeError):
    pass


def pinned_jaeger_version(go_mod: Path = GO_MODULE_DIR / "go.mod") -> str:
    """The version of github.com/jaegertracing/jaeger the tool module requires, without the `v`."""
    match = re.search(r"^\tgithub\.com/jaegertracing/jaeger v(\S+)", go_mod.read_text(), re.M)
    if match is None:
        raise JaegerBuildError(f"{go_mod} does not require github.com/jaegertracing/jaeger")
    return match.group(1)


def jaeger_binary(settings: StackSettings) -> Path:
    return settings.jaeger_cache_dir / pinned_jaeger_version() / "jaeger"


def binary_current(binary: Path) -> bool:
    stamp = binary.parent / _STAMP
    return (
        os.access(binary, os.X_OK)
        and stamp.is_file()
        and stamp.read_text().strip() == module_digest(GO_MODULE_DIR)
    )


def build(settings: StackSettings) -> Path:
    """Compile `jaeger` into the cache (unless already there) and return its path."""
    binary = jaeger_binary(settings)
    if binary_current(binary):
        return binary
    if shutil.which("go") is None:
        raise JaegerBuildError("the Go toolchain is needed to build Jaeger; install Go 1.26+")
    env = {**os.environ, "CGO_ENABLED": os.environ.get("CGO_ENABLED", "0")}
    print(
        f"[jaeger-build] building Jaeger {pinned_jaeger_version()} from Go modules into"
        f" {binary.parent} (cold: several minutes, see README)",
        file=sys.stderr,
        flush=True,
    )
    started = time.monotonic()
    binary.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=binary.parent, prefix=".build-") as staging:
        built = subprocess.run(
            ["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", f"{staging}/jaeger", PACKAGE],
            cwd=GO_MODULE_DIR,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if built.returncode != 0:
            raise JaegerBuildError("go build failed:\n" + built.stderr[-4000:])
        os.replace(Path(staging) / "jaeger", binary)
        (binary.parent / _STAMP).write_text(module_digest(GO_MODULE_DIR) + "\n")
    print(f"[jaeger-build] built in {time.monotonic() - started:.0f}s", file=sys.stderr, flush=True)
    return binary


def main() -> None:
    try:
        print(build(StackSettings()))
    except JaegerBuildError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
