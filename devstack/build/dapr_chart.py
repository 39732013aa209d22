"""Dapr's own Helm chart, from Dapr's Go module at the pinned version: where it is, the values
this project installs it with, and the volumes its scheduler claims on a single-node cluster.

The chart (`charts/dapr`: operator, placement, sentry, sidecar injector, scheduler, RBAC, the
default Configuration, and the CRDs) ships inside the module that `make dapr` downloads, so it is
read where Go keeps it and never copied into the repo: the pin in tools/dapr/go.mod decides the
chart as it decides the binaries, and the two cannot drift apart.

`python -m devstack.build.dapr_chart` prints the chart's folder (downloading the module first if
the cache lacks it), for `helm install dapr "$(...)" ...` as deploy/k8s/dapr-values.yaml shows.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from devstack.build.dapr import GO_MODULE_DIR, go_mod_dapr_version
from devstack.settings import ROOT, pinned_dapr_version

MODULE = "github.com/dapr/dapr"
RELEASE = "dapr"
NAMESPACE = "dapr-system"
VALUES_FILE = ROOT / "deploy" / "k8s" / "dapr-values.yaml"
# The scheduler's StatefulSet at the pin: three replicas whatever the values say (the template
# names its three etcd members), each claiming one volume named after the pod.
SCHEDULER_REPLICAS = 3
SCHEDULER_STATEFULSET = "dapr-scheduler-server"
SCHEDULER_CLAIM = "dapr-scheduler-data-dir"
# dapr_scheduler.cluster.storageClassName in VALUES_FILE.
SCHEDULER_STORAGE_CLASS = "dapr-scheduler-local"
# What each replica's claim requests: the chart's default (dapr_scheduler.cluster.storageSize),
# which VALUES_FILE keeps. A local volume does not enforce it; its host filesystem is the limit.
SCHEDULER_STORAGE_SIZE = "16Gi"
# The user Dapr's images run as, and the scheduler pod's fsGroup in the chart.
DAPR_UID = 65532

Manifest = dict[str, Any]


class DaprChartError(RuntimeError):
    pass


def _go(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["go", *args], cwd=GO_MODULE_DIR, capture_output=True, text=True, timeout=900, check=False
    )


def module_dir(version: str | None = None) -> Path:
    """Dapr's module at `version` (the pin unless told) in the Go module cache, downloaded
    first if the cache lacks it (`go mod download`, as `make dapr` does anyway)."""
    version = version or pinned_dapr_version()
    if version != go_mod_dapr_version():
        raise DaprChartError(
            f"tools/dapr/go.mod requires Dapr {go_mod_dapr_version()}, not {version}; the chart"
            " comes from the module that go.mod pins"
        )
    listed = _go("env", "GOMODCACHE")
    if listed.returncode != 0 or not listed.stdout.strip():
        raise DaprChartError(f"`go env GOMODCACHE` failed: {listed.stderr.strip()}")
    # The module cache spells a path's upper-case letters as "!" + lower case; Dapr has none.
    directory = Path(listed.stdout.strip()) / f"{MODULE}@v{version}"
    if not directory.is_dir():
        downloaded = _go("mod", "download", f"{MODULE}@v{version}")
        if downloaded.returncode != 0:
            raise DaprChartError(f"go mod download {MODULE} failed: {downloaded.stderr.strip()}")
    if not directory.is_dir():
        raise DaprChartError(f"{directory} is missing after `go mod download`")
    return directory


def chart_dir(version: str | None = None) -> Path:
    """`charts/dapr` of Dapr's module at the pin: the chart a release of Dapr installs with."""
    chart = module_dir(version) / "charts" / "dapr"
    if not (chart / "Chart.yaml").is_file():
        raise DaprChartError(f"{chart} holds no Chart.yaml; Dapr's module layout changed")
    return chart


def release_args(version: str | None = None) -> list[str]:
    """What `helm install` and `helm template` take after the verb: release, chart, namespace,
    the values file, and the image tag (the pinned version, so the values file holds none)."""
    version = version or pinned_dapr_version()
    return [
        RELEASE, str(chart_dir(version)),
        "--namespace", NAMESPACE,
        "--values", str(VALUES_FILE),
        "--set", f"global.tag={version}",
    ]  # fmt: skip


def scheduler_claims() -> list[str]:
    """The PersistentVolumeClaims the scheduler's StatefulSet makes, one per replica."""
    return [
        f"{SCHEDULER_CLAIM}-{SCHEDULER_STATEFULSET}-{index}" for index in range(SCHEDULER_REPLICAS)
    ]


def scheduler_volumes(host_dir: Path, node: str, namespace: str = NAMESPACE) -> list[Manifest]:
    """A StorageClass without a provisioner and one `local` PersistentVolume per scheduler
    replica, in `host_dir/<index>` on `node`, each reserved for its replica's claim.

    `local`, not `hostPath`: the kubelet applies the pod's fsGroup to a local volume (the
    scheduler runs as 65532 and must write its etcd data there), and the scheduler's pods
    are bound to the node that holds their data. Made with `prepare_scheduler_dirs` first."""
    storage_class: Manifest = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": SCHEDULER_STORAGE_CLASS},
        "provisioner": "kubernetes.io/no-provisioner",
        # Bound when a pod uses the claim, so the scheduler lands where its volume is.
        "volumeBindingMode": "WaitForFirstConsumer",
        # The scheduler's jobs (workflow timers, reminders) outlive a `helm uninstall`.
        "reclaimPolicy": "Retain",
    }
    volumes: list[Manifest] = [
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": f"{SCHEDULER_STATEFULSET}-{index}-data"},
            "spec": {
                "capacity": {"storage": SCHEDULER_STORAGE_SIZE},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": SCHEDULER_STORAGE_CLASS,
                "volumeMode": "Filesystem",
                "claimRef": {"namespace": namespace, "name": claim},
                "local": {"path": str(host_dir / str(index))},
                "nodeAffinity": {
                    "required": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {
                                        "key": "kubernetes.io/hostname",
                                        "operator": "In",
                                        "values": [node],
                                    }
                                ]
                            }
                        ]
                    }
                },
            },
        }
        for index, claim in enumerate(scheduler_claims())
    ]
    return [storage_class, *volumes]


def prepare_scheduler_dirs(host_dir: Path) -> list[Path]:
    """The directories scheduler_volumes names, owned by Dapr's user (a local volume must
    exist before its pod starts; the owner makes it writable even without fsGroup)."""
    made = []
    for index in range(SCHEDULER_REPLICAS):
        directory = host_dir / str(index)
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o700)
        if os.geteuid() == 0:
            os.chown(directory, DAPR_UID, DAPR_UID)
        made.append(directory)
    return made


def main() -> None:
    try:
        print(chart_dir())
    except DaprChartError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
