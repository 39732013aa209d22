"""Dapr's control plane and the project's chart on the dev cluster (issue 21, points 2 and 3):
README's Kubernetes steps, run as written (tests/k8s/steps.py), give a Ready app with an
injected daprd, and the walkthrough passes through the app's Service."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from typing import Any

import httpx
import pytest

from devstack.k8s.cluster import Cluster
from devstack.stack import free_ports
from tests.fixtures.k8s import wait_until
from tests.fixtures.manager import manager_headers
from tests.fixtures.readme import walk_through_approval
from tests.k8s.steps import DAPR_NAMESPACE, MANAGER_TOKEN, Release, readme_block

CONTROL_PLANE = {
    "deployment/dapr-operator",
    "deployment/dapr-sentry",
    "deployment/dapr-sidecar-injector",
    "statefulset/dapr-placement-server",
    "statefulset/dapr-scheduler-server",
}
# The workflow's steps through approval take a few seconds; the pod restart below far longer.
ORDER_SECONDS = 90.0


def _ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _order(api_url: str, order_id: str) -> dict[str, Any]:
    response = httpx.get(f"{api_url}/orders/{order_id}", timeout=5)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def _wait_for_order(api_url: str, order_id: str, accept: str, seconds: float) -> dict[str, Any]:
    """The order once `accept` is its status or its step, polled until the deadline."""

    def probe() -> dict[str, Any] | None:
        try:
            order = _order(api_url, order_id)
        except httpx.HTTPError:
            return None  # a replica going away, or none ready yet
        return order if accept in (order.get("status"), order.get("step")) else None

    return wait_until(probe, seconds, f"order {order_id} {accept}")


def test_dapr_control_plane_is_ready_with_mtls(cluster: Cluster, dapr: float) -> None:
    """Operator, sentry, injector, placement and the scheduler's three replicas all Ready, and
    sentry has made the trust bundle every sidecar's certificate chains to."""
    workloads = cluster.kubectl(
        "-n", DAPR_NAMESPACE, "get", "deployments,statefulsets", "-o", "json"
    )  # fmt: skip
    ready = {
        f"{item['kind'].lower()}/{item['metadata']['name']}": (
            item["status"].get("readyReplicas", 0),
            item["spec"]["replicas"],
        )
        for item in json.loads(workloads)["items"]
    }
    assert set(ready) == CONTROL_PLANE
    assert all(have == want for have, want in ready.values()), ready
    assert ready["statefulset/dapr-scheduler-server"] == (3, 3)
    bundle = json.loads(
        cluster.kubectl("-n", DAPR_NAMESPACE, "get", "secret", "dapr-trust-bundle", "-o", "json")
    )
    assert {"ca.crt", "issuer.crt", "issuer.key"} <= set(bundle["data"])


def test_app_pod_is_ready_with_an_injected_daprd_sidecar(release: Release) -> None:
    pods = release.pods()
    assert pods, "no pod of the release"
    for pod in pods:
        names = [c["name"] for c in pod["spec"]["containers"]]
        assert sorted(names) == ["app", "daprd"], names
    assert any(_ready(pod) for pod in pods)


def test_small_order_completes_through_the_service(release: Release) -> None:
    api_url = release.api_url
    order_id = f"k8s-small-{uuid.uuid4().hex[:8]}"
    created = httpx.post(
        f"{api_url}/orders", json={"item": "cars", "quantity": 1, "order_id": order_id}, timeout=10
    )
    assert created.status_code == 202, created.text
    assert created.json()["approval_required"] is False
    done = _wait_for_order(api_url, order_id, "COMPLETED", ORDER_SECONDS)
    assert done["result"] == {"processed": True, "reason": None}


async def test_readme_walkthrough_approves_a_large_order_through_the_service(
    release: Release,
) -> None:
    await walk_through_approval(release.api_url, MANAGER_TOKEN)


def test_readme_port_forward_reaches_readyz(release: Release) -> None:
    """README's last step, `kubectl port-forward service/... 8080:80`, on a free local port
    (8080 may be taken on this machine): API server, kubelet and the pod's network."""
    (line,) = [line for line in readme_block("kubernetes") if "port-forward" in line]
    command = line.split("#")[0].split()
    assert command[-1].startswith("8080:")
    (port,) = free_ports(1)
    command[-1] = command[-1].replace("8080", str(port), 1)
    env = release.shell.env()
    forward = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:

        def readyz() -> int | None:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=3).status_code
            except httpx.HTTPError:
                return None

        assert wait_until(readyz, 30, "readyz through port-forward") == 200
    finally:
        forward.terminate()
        forward.wait(10)


def test_app_runs_as_non_root_read_only_without_a_service_account_token(
    release: Release,
) -> None:
    """What the chart asks is what the cluster applied, seen from inside the app container."""
    pod = next(p for p in release.pods() if _ready(p))
    name = pod["metadata"]["name"]
    probe = (
        "import os, pathlib\n"
        "print(os.getuid(), os.getgid())\n"
        "try:\n    pathlib.Path('/srv/probe').write_text('x')\n    print('writable')\n"
        "except OSError as e:\n    print(e.strerror)\n"
        "pathlib.Path('/tmp/probe').write_text('x')\n"
        "print(os.path.exists('/var/run/secrets/kubernetes.io/serviceaccount'))\n"
    )
    out = release.cluster.kubectl(
        "-n", release.namespace, "exec", name, "-c", "app", "--", "python", "-c", probe
    ).splitlines()  # fmt: skip
    assert out == ["10001 10001", "Read-only file system", "False"]
    spec = pod["spec"]
    assert spec["automountServiceAccountToken"] is False
    for container in spec["containers"]:
        mounts = [m["mountPath"] for m in container.get("volumeMounts", [])]
        assert "/var/run/secrets/kubernetes.io/serviceaccount" not in mounts, container["name"]


def test_order_parked_at_approval_completes_once_after_its_pods_are_deleted(
    release: Release,
) -> None:
    """`kubectl delete pod` of every app pod while an order waits for a manager: the new pods
    pick the workflow up, one approval completes it, a second is refused, and the auditor
    finds every order so far paid once with no stock held."""
    api_url = release.api_url
    order_id = f"k8s-parked-{uuid.uuid4().hex[:8]}"
    created = httpx.post(
        f"{api_url}/orders", json={"item": "cars", "quantity": 4, "order_id": order_id}, timeout=10
    )
    assert created.status_code == 202, created.text
    _wait_for_order(api_url, order_id, "awaiting_approval", ORDER_SECONDS)
    old = {p["metadata"]["name"] for p in release.pods()}
    started = time.monotonic()
    release.cluster.kubectl(
        "-n", release.namespace, "delete", "pod", "-l", release.selector, "--wait=true"
    )  # fmt: skip

    def replaced() -> bool:
        pods = release.pods()
        fresh = [p for p in pods if p["metadata"]["name"] not in old]
        return bool(fresh) and all(_ready(p) for p in pods)

    wait_until(replaced, 180, "new app pods Ready")
    print(f"pods deleted and replaced, Ready again in {time.monotonic() - started:.1f}s")
    assert _order(api_url, order_id)["step"] == "awaiting_approval"
    approve = f"{api_url}/orders/{order_id}/approve"
    decision = {"approver": "alice"}
    headers = manager_headers(MANAGER_TOKEN)
    approved = httpx.post(approve, json=decision, headers=headers, timeout=10)
    assert approved.status_code == 202, approved.text
    done = _wait_for_order(api_url, order_id, "COMPLETED", ORDER_SECONDS)
    assert done["result"] == {"processed": True, "reason": None}
    again = httpx.post(approve, json=decision, headers=headers, timeout=10)
    assert again.status_code == 409, again.text
    # Every order so far (this one, the walkthrough's, the small one) paid once, no stock held.
    audit = httpx.get(f"{api_url}/audit", headers=headers, params={"wait": 20}, timeout=60)
    assert audit.status_code == 200, audit.text
    report = audit.json()
    assert (report["ok"], report["violations"]) == (True, []), report


@pytest.mark.usefixtures("release")
def test_nothing_was_pulled_from_a_registry(cluster: Cluster) -> None:
    """Every image the pods run was imported here (imagePullPolicy Never or present)."""
    events = cluster.kubectl("get", "events", "-A", "--field-selector", "reason=Pulling", "-o",
                             "name")  # fmt: skip
    assert events.strip() == ""
