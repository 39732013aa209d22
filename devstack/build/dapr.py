"""Build daprd, placement and scheduler from Dapr's Go module at the pinned version.

No registry reachable here ships Dapr binaries, so they are compiled from the module that
`tools/dapr/go.mod` requires and cached outside the repo, keyed by version and by a digest of the
Go module's files, so an edit to the pin or to the replace directives rebuilds.
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

from devstack.build.go_tool import module_digest
from devstack.settings import ROOT, StackSettings, pinned_dapr_version

GO_MODULE_DIR = ROOT / "tools" / "dapr"
BINARIES = ("daprd", "placement", "scheduler")
# daprd only registers components whose files carry a build tag; these are the stable ones,
# the set the official release binaries ship.
BUILD_TAGS = "stablecomponents"
_STAMP = ".build-stamp"


class DaprBuildError(RuntimeError):
    pass


def go_mod_dapr_version(go_mod: Path = GO_MODULE_DIR / "go.mod") -> str:
    """The version of github.com/dapr/dapr that the build module requires, without the `v`."""
    match = re.search(r"^require github\.com/dapr/dapr v(\S+)$", go_mod.read_text(), re.MULTILINE)
    if match is None:
        raise DaprBuildError(f"{go_mod} does not require github.com/dapr/dapr")
    return match.group(1)


def bin_dir(settings: StackSettings, version: str) -> Path:
    return settings.dapr_cache_dir / version / "bin"


def binaries_current(directory: Path) -> bool:
    stamp = directory / _STAMP
    return (
        stamp.is_file()
        and stamp.read_text().strip() == module_digest(GO_MODULE_DIR)
        and all(os.access(directory / name, os.X_OK) for name in BINARIES)
    )


def _log(message: str) -> None:
    print(f"[dapr-build] {message}", file=sys.stderr, flush=True)


def _count_packages(env: dict[str, str]) -> int:
    listed = subprocess.run(
        ["go", "list", "-deps", "-tags", BUILD_TAGS, "./cmd/..."],
        cwd=GO_MODULE_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return len(listed.stdout.split()) if listed.returncode == 0 else 0


def build(settings: StackSettings) -> Path:
    """Compile the three binaries into the cache (unless already there) and return their folder."""
    version = pinned_dapr_version()
    required = go_mod_dapr_version()
    if required != version:
        raise DaprBuildError(
            f".env pins Dapr {version} but tools/dapr/go.mod requires {required}; make them agree"
        )
    target = bin_dir(settings, version)
    if binaries_current(target):
        return target
    if shutil.which("go") is None:
        raise DaprBuildError("the Go toolchain is needed to build Dapr; install Go 1.26 or newer")

    env = dict(os.environ)
    env.setdefault("CGO_ENABLED", "0")
    _log(f"building Dapr {version} (daprd, placement, scheduler) from Go modules into {target}")
    _log(
        "a cold build downloads ~1 GB of modules and compiles ~2,500 packages: 20-35 min on 2 cores"
    )
    total = _count_packages(env)
    started = time.monotonic()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as staging:
        command = [
            "go", "build", "-v", "-trimpath", "-tags", BUILD_TAGS,
            "-ldflags", f"-s -w -X github.com/dapr/dapr/pkg/buildinfo.version={version}",
            "-o", staging + "/", "./cmd/...",
        ]  # fmt: skip
        with subprocess.Popen(
            command,
            cwd=GO_MODULE_DIR,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        ) as proc:
            assert proc.stderr is not None
            compiled, tail = 0, list[str]()
            for line in proc.stderr:
                tail = [*tail[-40:], line.rstrip()]
                if line.startswith(("go: downloading", "#")) or " " in line.strip():
                    continue
                compiled += 1
                if compiled % 100 == 0:
                    share = f" of ~{total}" if total else ""
                    elapsed = time.monotonic() - started
                    _log(f"{compiled}{share} packages compiled, {elapsed:.0f}s")
        if proc.returncode != 0:
            raise DaprBuildError("go build failed:\n" + "\n".join(tail))
        for name in BINARIES:
            os.replace(Path(staging) / name, target.parent / f".{name}.new")
        target.mkdir(exist_ok=True)
        for name in BINARIES:
            os.replace(target.parent / f".{name}.new", target / name)
        (target / _STAMP).write_text(module_digest(GO_MODULE_DIR) + "\n")
    _log(f"built in {time.monotonic() - started:.0f}s")
    return target


def main() -> None:
    try:
        print(build(StackSettings()))
    except DaprBuildError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
