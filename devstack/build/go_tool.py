"""The Go programs the stack needs, in one table (TOOLS): Dapr (daprd, placement, scheduler, and
the Kubernetes control plane's operator, sentry and injector), helm (the charts' checks), Jaeger
(traces) and the Kubernetes dev cluster (`kube`, etcd, CoreDNS), and the one routine that builds
and caches them.

No registry reachable here ships their binaries, so each is compiled from the module that
`tools/<name>/go.mod` pins, into a cache folder outside the repo stamped with a digest of that
module's files: an edit to the pin (or to a replace directive) rebuilds, anything else reuses it.
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
    name: str  # the folder under tools/ holding its Go module, and the log's prefix
    packages: str  # what `go build` compiles
    binaries: tuple[str, ...]  # what the cache folder holds once built
    cold_build: str  # what a cold build takes, for the message while it runs
    tags: str = ""  # build tags (daprd registers only the components whose tag is set)
    progress: bool = False  # log the count of compiled packages (a build of ~2,600 packages)

    @property
    def module_dir(self) -> Path:
        return ROOT / "tools" / self.name

    def current(self, directory: Path) -> bool:
        """The binaries cached in `directory` were built from the module as it is now."""
        stamp = directory / _STAMP
        return (
            stamp.is_file()
            and stamp.read_text().strip() == module_digest(self.module_dir)
            and all(os.access(directory / name, os.X_OK) for name in self.binaries)
        )

    def _log(self, message: str) -> None:
        print(f"[{self.name}-build] {message}", file=sys.stderr, flush=True)

    def _count_packages(self, env: dict[str, str]) -> int:
        tags = ["-tags", self.tags] if self.tags else []
        listed = subprocess.run(
            ["go", "list", "-deps", *tags, self.packages],
            cwd=self.module_dir,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        return len(listed.stdout.split()) if listed.returncode == 0 else 0

    def _go_build(self, output: str, ldflags: str, env: dict[str, str]) -> None:
        total = self._count_packages(env) if self.progress else 0
        started = time.monotonic()
        command = [
            "go", "build", *(["-v"] if self.progress else []), "-trimpath",
            *(["-tags", self.tags] if self.tags else []),
            "-ldflags", ldflags, "-o", output, self.packages,
        ]  # fmt: skip
        with subprocess.Popen(
            command, cwd=self.module_dir, env=env, stderr=subprocess.PIPE, text=True
        ) as proc:
            assert proc.stderr is not None
            compiled, tail = 0, list[str]()
            for line in proc.stderr:
                tail = [*tail[-40:], line.rstrip()]
                if not self.progress or line.startswith(("go: downloading", "#")):
                    continue
                if " " in line.strip():
                    continue
                compiled += 1
                if compiled % 100 == 0:
                    share = f" of ~{total}" if total else ""
                    self._log(
                        f"{compiled}{share} packages compiled, {time.monotonic() - started:.0f}s"
                    )
        if proc.returncode != 0:
            raise GoToolBuildError(f"go build of {self.name} failed:\n" + "\n".join(tail))

    def build(self, directory: Path, version: str, ldflags: str = "-s -w") -> Path:
        """Compile the binaries into `directory` (unless current there) and return it."""
        if self.current(directory):
            return directory
        if shutil.which("go") is None:
            raise GoToolBuildError(
                f"the Go toolchain is needed to build {self.name}; install Go 1.26 or newer"
            )
        env = {**os.environ, "CGO_ENABLED": os.environ.get("CGO_ENABLED", "0")}
        self._log(
            f"building {self.name} {version} ({', '.join(self.binaries)}) from Go modules into"
            f" {directory} (cold: {self.cold_build}, see README)"
        )
        started = time.monotonic()
        directory.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=directory.parent, prefix=".build-") as staging:
            self._go_build(staging + "/", ldflags, env)
            # Into place only once all are built: a half-built set is never stamped current.
            for name in self.binaries:
                os.replace(Path(staging) / name, directory.parent / f".{name}.new")
            directory.mkdir(exist_ok=True)
            for name in self.binaries:
                os.replace(directory.parent / f".{name}.new", directory / name)
            (directory / _STAMP).write_text(module_digest(self.module_dir) + "\n")
        self._log(f"built in {time.monotonic() - started:.0f}s")
        return directory


# The one table of the Go tools the stack builds; what is specific to each (its version, its
# cache folder, its linker flags) is in devstack.build.dapr, .helm, .jaeger and .kubernetes.
# One `go build` links all six Dapr programs: the three the local stack runs and the Kubernetes
# control plane's operator, sentry and injector. They share all but ~55 of their ~2,600
# packages, and one build of six linked in 20 s where the three new ones built on their own
# took 13 s more on top of the 13 s of the other three (warm compile cache, 2 cores).
DAPR = GoTool(
    "dapr",
    "./cmd/...",
    ("daprd", "placement", "scheduler", "operator", "sentry", "injector"),
    "~1 GB of modules and ~2,600 packages, about 7 min on an idle 2-core machine,"
    " longer while other work shares it",
    # daprd only registers components whose files carry a build tag; these are the stable
    # ones, the set the official release binaries ship.
    tags="stablecomponents",
    progress=True,
)
HELM = GoTool("helm", "helm.sh/helm/v3/cmd/helm", ("helm",), "about 6 min on 2 cores")
JAEGER = GoTool(
    "jaeger", "github.com/jaegertracing/jaeger/cmd/jaeger", ("jaeger",), "several minutes"
)
# The dev cluster (`make k8s`). `kube` is one multi-call binary: kube-apiserver,
# kube-controller-manager, kube-scheduler, kubelet, kube-proxy and kubectl share ~2,800
# packages, and one link of them took 8 s where six separate links took 41 s (and 540 MB of
# binaries instead of 155 MB), measured on 2 cores with the compiled packages cached.
# `pause` is the pods' sandbox process, for the locally made pause image; `smoke` is the
# workload of the cluster's tests (an HTTP server that resolves names from inside a pod).
KUBERNETES = GoTool(
    "kubernetes",
    "./cmd/...",
    ("kube", "pause", "smoke"),
    "~1 GB of modules and ~2,800 packages, 10-12 min on 2 cores",
    progress=True,
)
ETCD = GoTool("etcd", "./cmd/etcd", ("etcd",), "about 1 min once kube is built")
COREDNS = GoTool("coredns", "./cmd/coredns", ("coredns",), "about 2 min once kube is built")
TOOLS = (DAPR, HELM, JAEGER, KUBERNETES, ETCD, COREDNS)


def main(build: Callable[[StackSettings], Path]) -> None:
    """`python -m devstack.build.<name>`: build, print the binary's path."""
    try:
        print(build(StackSettings()))
    except GoToolBuildError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
