"""The dev cluster itself (issue 21, first point): up from the pinned builds, a node that is
Ready, CoreDNS answering for Services, and a pod from an image built here running."""

from __future__ import annotations

import json

import pytest

from devstack.build.kubernetes import ClusterBinaries
from devstack.k8s.cluster import Cluster
from devstack.k8s.dns import resolve_a
from devstack.stack.process import http_json
from tests.fixtures.k8s import build_smoke_image, wait_until


def test_node_reports_the_pinned_version_and_is_ready(cluster: Cluster) -> None:
    node = json.loads(cluster.kubectl("get", "node", cluster.settings.node_name, "-o", "json"))
    assert node["status"]["nodeInfo"]["kubeletVersion"] == f"v{cluster.binaries.kube.parent.name}"
    assert cluster.node_ready()


def test_coredns_resolves_the_api_service_name_to_its_cluster_ip(cluster: Cluster) -> None:
    s = cluster.settings
    name = f"kubernetes.default.svc.{s.cluster_domain}"
    assert resolve_a(s.dns_service_ip, name) == [s.kubernetes_service_ip]


def test_coredns_leaves_names_outside_the_cluster_unresolved(cluster: Cluster) -> None:
    assert resolve_a(cluster.settings.dns_service_ip, "example.org") == []


@pytest.mark.usefixtures("docker_engine")
def test_pod_from_a_locally_built_image_serves_through_its_service_and_resolves_names(
    cluster: Cluster, binaries: ClusterBinaries
) -> None:
    """The smoke workload, built by `docker build` and imported into containerd, runs; its
    Service resolves through CoreDNS and carries a request from this machine to the pod
    (kube-proxy), and the pod's own resolver (search domains, kube-dns) finds the API."""
    image = build_smoke_image(binaries.smoke, "test")
    cluster.containerd.import_docker_image(image)
    cluster.kubectl(
        "run", "smoke", f"--image={image}", "--image-pull-policy=Never", "--port=8080",
        "--restart=Never",
    )  # fmt: skip
    cluster.kubectl("expose", "pod", "smoke", "--port=80", "--target-port=8080")
    try:
        wait_until(
            lambda: (
                cluster.kubectl("get", "pod", "smoke", "-o", "jsonpath={.status.phase}")
                == "Running"
            ),
            120,
            "pod smoke Running",
        )
        service_ip = cluster.kubectl("get", "service", "smoke", "-o", "jsonpath={.spec.clusterIP}")
        s = cluster.settings
        name = f"smoke.default.svc.{s.cluster_domain}"
        assert wait_until(lambda: resolve_a(s.dns_service_ip, name), 30, name) == [service_ip]
        url = f"http://{service_ip}/resolve?name=kubernetes.default"
        answer = wait_until(lambda: http_json(url, 2.0, {}), 30, f"GET {url}")
        assert answer == [s.kubernetes_service_ip]
    finally:
        cluster.kubectl("delete", "pod,service", "smoke", "--wait=false", check=False)


def test_a_killed_component_is_started_again_by_the_supervisor(cluster: Cluster) -> None:
    scheduler = cluster.services["kube-scheduler"]
    assert scheduler.process is not None
    killed = scheduler.process.pid
    cluster.kill("kube-scheduler")

    def restarted() -> bool:
        process = scheduler.process
        return process is not None and process.pid != killed and scheduler.ready()

    wait_until(restarted, 60, "kube-scheduler restarted and healthy")


def test_apiserver_reaches_the_kubelet_for_a_pods_logs(cluster: Cluster) -> None:
    """`kubectl logs` goes apiserver -> kubelet: its client certificate, the kubelet's webhook
    authorization and serving certificate, and the CRI's log files all in one request."""
    logs = cluster.kubectl("-n", "kube-system", "logs", "deployment/coredns")
    assert f"CoreDNS-{cluster.binaries.coredns.parent.name}" in logs
