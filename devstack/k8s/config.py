"""Where the Kubernetes dev cluster keeps its files, listens and addresses its pods; every value
can be set from the environment (K8S_...)."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from devstack.settings import ROOT


def _default_node_ip() -> str:
    """The address this machine uses for its default route: the apiserver advertises it (the
    `kubernetes` Service's endpoint must not be a loopback address) and the kubelet serves on it.
    Connecting a UDP socket sends nothing; it only asks the kernel for the route's source."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))
            return str(sock.getsockname()[0])
        except OSError:
            return "127.0.0.1"


class ClusterSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="K8S_", extra="ignore")

    state_dir: Path = Field(default=ROOT / ".data" / "k8s")
    node_name: str = "devstack-node"
    node_ip: str = Field(default_factory=_default_node_ip)
    # Private ranges, kept on this machine: the service range gets a blackhole route, so a
    # cluster IP that kube-proxy does not translate goes nowhere instead of the default route.
    pod_cidr: str = "10.244.0.0/16"
    node_pod_cidr: str = "10.244.0.0/24"  # the bridge's range on the one node
    service_cidr: str = "10.96.0.0/16"
    cluster_domain: str = "cluster.local"
    bridge: str = "devstack-cni0"

    # Away from the defaults of the Dapr stack (its scheduler's etcd is on 2379) and of a
    # kubeadm cluster, so both can run beside this one.
    etcd_client_port: int = 12379
    etcd_peer_port: int = 12380
    apiserver_port: int = 16443
    controller_manager_port: int = 10257
    scheduler_port: int = 10259
    kubelet_port: int = 10250
    kubelet_healthz_port: int = 10248
    proxy_healthz_port: int = 10256
    proxy_metrics_port: int = 10249

    startup_timeout_seconds: float = 120.0
    ready_timeout_seconds: float = 180.0  # node Ready and CoreDNS answering, after start

    @property
    def apiserver_url(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def kubernetes_service_ip(self) -> str:
        """The first address of the service range: the `kubernetes` Service's cluster IP."""
        return str(next(ipaddress.ip_network(self.service_cidr).hosts()))

    @property
    def dns_service_ip(self) -> str:
        """The tenth address of the service range, CoreDNS's Service (kubeadm's choice)."""
        return str(ipaddress.ip_network(self.service_cidr).network_address + 10)

    @property
    def kubeconfig(self) -> Path:
        """The administrator's kubeconfig, the one written for the user."""
        return self.state_dir / "kubeconfig"
