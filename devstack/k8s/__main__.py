"""`python -m devstack.k8s up|purge|dapr-volumes` (behind `make k8s`): bring the dev cluster up
and keep it up until Ctrl-C, or delete its state folder (a new CA, an empty etcd on the next
start), or print the volumes Dapr's scheduler claims on it (`| kubectl apply -f -`, before
Dapr's chart is installed: README, "Kubernetes")."""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import threading
import time
from types import FrameType

from devstack.build.dapr_chart import prepare_scheduler_dirs, scheduler_volumes
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


def dapr_volumes(settings: ClusterSettings) -> None:
    """Make the scheduler's data folders in the cluster's state folder and print the
    StorageClass and PersistentVolumes that hold them, as one List for `kubectl apply -f -`.
    The folders outlive the release (the volumes are retained) until `purge`."""
    host_dir = (settings.state_dir / "dapr-scheduler").resolve()
    prepare_scheduler_dirs(host_dir)
    items = scheduler_volumes(host_dir, settings.node_name)
    print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack.k8s")
    parser.add_argument("command", choices=["up", "purge", "dapr-volumes"])
    args = parser.parse_args()
    settings = ClusterSettings()
    try:
        if args.command == "purge":
            shutil.rmtree(settings.state_dir, ignore_errors=True)
            return
        if args.command == "dapr-volumes":
            dapr_volumes(settings)
            return
        raise SystemExit(up(settings, StackSettings()))
    except (ClusterError, GoToolBuildError, ImageError, PkiError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
