"""Go programs the stack needs besides Dapr (helm for the chart's checks, Jaeger for traces).

No registry reachable here ships their binaries, so, like Dapr (devstack/build/dapr.py), each is
compiled from the module that `tools/<name>/go.mod` pins as a `tool`, and cached outside the repo
keyed by a digest of that module's files: an edit to the pin rebuilds, anything else reuses it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from devstack.settings import ROOT, StackSettings

_STAMP = ".build-stamp"


def module_digest(module_dir: Path) -> str:
    """A digest of a Go build module's files: what a cached build of it is keyed by."""
    digest = hashlib.sha256()
    for path in sorted(module_dir.rglob("*")):
        if path.is_file() and path.suffix in {".go", ".mod", ".sum"}:
            digest.update(path.relative_to(module_dir).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


class GoToolBuildError(RuntimeError):
    pass


def required_version(module: str, go_mod: Path) -> str:
    """The version of `module` that `go_mod` requires, without the `v`."""
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(module)} v(\S+)", go_mod.read_text(), re.M)
    if match is None:
        raise GoToolBuildError(f"{go_mod} does not require {module}")
    return match.group(1)


@dataclass(frozen=True)
class GoTool:
    name: str  # the binary's name, and the folder under tools/ holding its Go module
    package: str  # what `go build` compiles
    cold_build: str  # how long a cold build takes, for the message while it runs

    @property
    def module_dir(self) -> Path:
        return ROOT / "tools" / self.name

    def current(self, binary: Path) -> bool:
        """The cached binary was built from the module as it is now."""
        stamp = binary.parent / _STAMP
        return (
            os.access(binary, os.X_OK)
            and stamp.is_file()
            and stamp.read_text().strip() == module_digest(self.module_dir)
        )

    def build(self, binary: Path, version: str, ldflags: str = "-s -w") -> Path:
        """Compile the tool into `binary` (unless it is current) and return its path."""
        if self.current(binary):
            return binary
        if shutil.which("go") is None:
            raise GoToolBuildError(
                f"the Go toolchain is needed to build {self.name}; install Go 1.26+"
            )
        env = {**os.environ, "CGO_ENABLED": os.environ.get("CGO_ENABLED", "0")}
        print(
            f"[{self.name}-build] building {self.name} {version} from Go modules into"
            f" {binary.parent} (cold: {self.cold_build}, see README)",
            file=sys.stderr,
            flush=True,
        )
        started = time.monotonic()
        binary.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=binary.parent, prefix=".build-") as staging:
            built = subprocess.run(
                ["go", "build", "-trimpath", "-ldflags", ldflags, "-o", f"{staging}/{self.name}",
                 self.package],
                cwd=self.module_dir,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )  # fmt: skip
            if built.returncode != 0:
                raise GoToolBuildError(f"go build of {self.name} failed:\n" + built.stderr[-4000:])
            os.replace(Path(staging) / self.name, binary)
            (binary.parent / _STAMP).write_text(module_digest(self.module_dir) + "\n")
        elapsed = time.monotonic() - started
        print(f"[{self.name}-build] built in {elapsed:.0f}s", file=sys.stderr, flush=True)
        return binary


def main(build: Callable[[StackSettings], Path]) -> None:
    """`python -m devstack.<name>_build`: build, print the binary's path."""
    try:
        print(build(StackSettings()))
    except GoToolBuildError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
