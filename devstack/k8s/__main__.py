"""`python -m devstack.k8s up|purge` (behind `make k8s`): bring the dev cluster up and keep it up
until Ctrl-C, or delete its state folder (a new CA, an empty etcd on the next start)."""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import threading
import time
from types import FrameType

from devstack.build.go_tool import GoToolBuildError
from devstack.build.kubernetes import build
from devstack.k8s.cluster import Cluster, ClusterError, supervision_policy
from devstack.k8s.config import ClusterSettings
from devstack.k8s.images import ImageError
from devstack.k8s.pki import PkiError
from devstack.settings import StackSettings


def _report(line: str) -> None:
    print(f"[k8s] {line}", file=sys.stderr, flush=True)


def up(settings: ClusterSettings, stack: StackSettings) -> int:
    stop_requested = threading.Event()
    started = False

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()
        if not started:  # still starting: abandon it, which stops what already runs
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    cluster = Cluster(settings, build(stack), _report)
    policy = supervision_policy(stack, settings)
    begun = time.monotonic()
    try:
        try:
            cluster.start(policy)
        except KeyboardInterrupt:
            return 130
        started = True
        print(
            f"\nKubernetes {cluster.binaries.kube.parent.name} is up"
            f" ({time.monotonic() - begun:.0f}s): node {settings.node_name}.\n"
            f"  export KUBECONFIG={settings.kubeconfig} PATH={cluster.bin_dir}:$PATH\n"
            "  kubectl get pods -A\n"
            f"  Logs:     {settings.state_dir / 'logs'}/{{containerd,etcd,kube-*,kubelet}}.log\n"
            "Press Ctrl-C to stop everything.\n",
            flush=True,
        )
        while not stop_requested.wait(1.0):
            if cluster.supervisor is not None and (failure := cluster.supervisor.gave_up):
                print(f"error: {failure}", file=sys.stderr)
                return 1
        return 0
    finally:
        _report("stopping")
        cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack.k8s")
    parser.add_argument("command", choices=["up", "purge"])
    args = parser.parse_args()
    settings = ClusterSettings()
    try:
        if args.command == "purge":
            shutil.rmtree(settings.state_dir, ignore_errors=True)
            return
        raise SystemExit(up(settings, StackSettings()))
    except (ClusterError, GoToolBuildError, ImageError, PkiError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
