"""README's Kubernetes blocks, run by the tier as a user's shell runs them: one `bash` per block,
with the cluster's kubectl and the helm `make helm` builds on PATH, and the variables the steps
read (`$MANAGER_TOKEN`, `$REDIS_PASSWORD`) set the way a user sets them before pasting."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.k8s.cluster import Cluster
from devstack.settings import ROOT

README = ROOT / "README.md"
# What the tier's "user" exports before pasting README's steps.
MANAGER_TOKEN = "k8s-manager-token"
REDIS_PASSWORD = "k8s-redis-password"
DAPR_NAMESPACE = "dapr-system"


def readme_block(name: str) -> list[str]:
    """The lines of README's `<!-- name -->` bash block, continuations joined, comments and
    blank lines dropped."""
    text = README.read_text()
    block = re.search(rf"<!-- {re.escape(name)} -->\s*```bash\n(.*?)```", text, re.DOTALL)
    assert block is not None, f"README.md lost its {name} block"
    lines = (line.strip() for line in block.group(1).replace("\\\n", " ").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


@dataclass(frozen=True)
class Shell:
    """A user's shell at the repository's root, pointed at the cluster."""

    cluster: Cluster
    helm: Path
    variables: dict[str, str]
    report: Callable[[str], None]

    def env(self) -> dict[str, str]:
        s = self.cluster.settings
        return {
            **os.environ,
            "PATH": f"{self.cluster.bin_dir}:{self.helm.parent}:{os.environ['PATH']}",
            "KUBECONFIG": str(s.kubeconfig),
            # `python -m devstack.k8s dapr-volumes` in README: the private cluster's folder.
            "K8S_STATE_DIR": str(s.state_dir),
            "K8S_NODE_NAME": s.node_name,
            **self.variables,
        }

    def run(self, lines: list[str], timeout: float = 600) -> float:
        """Run the lines as one script (stop at the first failure); the seconds it took.
        README's `.venv/bin/python` is this interpreter (a worktree has no .venv of its own)."""
        script = "\n".join(line.replace(".venv/bin/python", sys.executable) for line in lines)
        started = time.monotonic()
        try:
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", script],
                cwd=ROOT,
                env=self.env(),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as expired:
            raise AssertionError(
                f"README steps still running after {timeout:.0f}s:\n{script}\n"
                f"--- stdout\n{_text(expired.stdout)[-3000:]}\n"
                f"--- stderr\n{_text(expired.stderr)[-3000:]}\n{self.diagnostics()}"
            ) from None
        took = time.monotonic() - started
        for line in done.stdout.splitlines()[-5:]:
            self.report(f"  {line}")
        assert done.returncode == 0, (
            f"README steps failed ({done.returncode}) after {took:.0f}s:\n{script}\n"
            f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-4000:]}\n"
            + self.diagnostics()
        )
        return took

    def run_each(self, lines: list[str], timeout: float = 600) -> list[tuple[str, float]]:
        """Run the lines one by one (for blocks that set no variables); each line's seconds."""
        return [(line, self.run([line], timeout)) for line in lines]

    def diagnostics(self) -> str:
        """What a user would look at next: every pod, recent events, and the last log lines
        of each container that is not ready."""
        kubectl = self.cluster.kubectl
        parts = [
            kubectl("get", "pods", "-A", "-o", "wide", check=False),
            kubectl("get", "events", "-A", "--sort-by=.lastTimestamp", check=False)[-4000:],
        ]
        pods = json.loads(kubectl("get", "pods", "-A", "-o", "json", check=False) or "{}")
        for pod in pods.get("items", []):
            meta = pod["metadata"]
            for status in pod.get("status", {}).get("containerStatuses", []):
                if status.get("ready"):
                    continue
                logs = kubectl(
                    "-n", meta["namespace"], "logs", meta["name"], "-c", status["name"],
                    "--tail=25", check=False,
                )  # fmt: skip
                parts.append(f"--- {meta['namespace']}/{meta['name']} {status['name']}\n{logs}")
        return "\n".join(parts)


def _text(output: str | bytes | None) -> str:
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return output or ""


@dataclass(frozen=True)
class Release:
    """The project's chart as README's steps install it."""

    namespace: str
    name: str
    selector: str
    cluster: Cluster
    shell: Shell

    def pods(self) -> list[dict[str, Any]]:
        listed = self.cluster.kubectl(
            "-n", self.namespace, "get", "pods", "-l", self.selector, "-o", "json"
        )
        items: list[dict[str, Any]] = json.loads(listed)["items"]
        return items

    @property
    def service(self) -> str:
        return self.cluster.kubectl(
            "-n", self.namespace, "get", "service", "-l", self.selector,
            "-o", "jsonpath={.items[0].metadata.name}",
        ).strip()  # fmt: skip

    @property
    def api_url(self) -> str:
        """The Service's cluster IP, which kube-proxy's rules route from this machine too."""
        service = json.loads(
            self.cluster.kubectl("-n", self.namespace, "get", "service", self.service, "-o", "json")
        )
        return f"http://{service['spec']['clusterIP']}:{service['spec']['ports'][0]['port']}"
