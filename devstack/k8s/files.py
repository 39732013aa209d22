"""The configuration files the cluster's processes read, written into its state folder:
kubeconfigs, containerd's config, the CNI network, and the kubelet's and kube-proxy's
configuration objects. Pure text from the settings and paths; nothing here starts anything."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from devstack.k8s.config import ClusterSettings
from devstack.k8s.pki import Pki


def kubeconfig(server: str, pki: Pki, user: str, cert: str) -> str:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "devstack",
                "cluster": {"server": server, "certificate-authority": str(pki.ca)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate": str(pki.cert(cert)),
                    "client-key": str(pki.key(cert)),
                },
            }
        ],
        "contexts": [{"name": "devstack", "context": {"cluster": "devstack", "user": user}}],
        "current-context": "devstack",
        "preferences": {},
    }
    return yaml.safe_dump(config, sort_keys=False)


def containerd_config(state: Path, cni_conf_dir: Path, pause_image: str) -> str:
    """containerd 1.6's config (version 2): its own root, state and socket under `state`, the
    CRI plugin with runc under the cgroupfs driver (no systemd here) and the CNI bridge."""
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{state}/root"
state = "{state}/state"
oom_score = 0

[grpc]
  address = "{state}/containerd.sock"

[ttrpc]
  address = "{state}/containerd.sock.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{state}/opt"

[{cri}]
  sandbox_image = "{pause_image}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  max_container_log_line_size = 16384
  # This machine withholds CAP_SYS_RESOURCE even from root, so no process may lower its
  # oom_score_adj: runc failed every pod sandbox (CRI asks -998) with "can't get final
  # child's PID from pipe: EOF". Restricted, containerd raises any lower score to its own.
  restrict_oom_score_adj = true

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false

[{cri}.cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "{cni_conf_dir}"
  max_conf_num = 1
"""


def cni_network(settings: ClusterSettings) -> str:
    """One bridge for the node's pods, addresses from its pod range, and portmap for hostPort.
    ipMasq stays off: pods talk to the node and to each other only, never beyond it."""
    return json.dumps(
        {
            "cniVersion": "0.4.0",
            "name": "devstack",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": settings.bridge,
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        # Leases with the cluster's state, not in the machine-wide default.
                        "dataDir": str(settings.state_dir / "cni-ipam"),
                        "ranges": [[{"subnet": settings.node_pod_cidr}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
                {"type": "loopback"},
            ],
        },
        indent=2,
    )


def kubelet_config(settings: ClusterSettings, pki: Pki, runtime_socket: Path) -> str:
    """The kubelet's KubeletConfiguration. This machine has cgroup v1 and no systemd: the
    cgroupfs driver, and `failCgroupV1: false` (1.35+ refuse cgroup v1 otherwise). Image GC and
    disk eviction are held back: the images are imported, not pulled, so a collected one would
    not come back, and the disk is shared with other work."""
    state = settings.state_dir
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "containerRuntimeEndpoint": f"unix://{runtime_socket}",
        "address": settings.node_ip,
        "port": settings.kubelet_port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": settings.kubelet_healthz_port,
        "tlsCertFile": str(pki.cert("kubelet")),
        "tlsPrivateKeyFile": str(pki.key("kubelet")),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(pki.ca)},
        },
        "authorization": {"mode": "Webhook"},
        "clusterDomain": settings.cluster_domain,
        "clusterDNS": [settings.dns_service_ip],
        # No upstream resolver for pods with dnsPolicy Default: nothing resolves off-machine.
        "resolvConf": "",
        "podLogsDir": str(state / "pod-logs"),
        "staticPodPath": str(state / "manifests"),
        "failSwapOn": False,
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
        },
        "protectKernelDefaults": False,
        # How often a running pod's Secret and ConfigMap volumes are brought up to date (1m by
        # default). Dapr's injector, operator and placement wait for sentry's trust bundle to
        # appear in theirs: with the default, the injector sat 73 s on a missing ca.crt.
        "syncFrequency": "10s",
        # No CAP_SYS_RESOURCE here (see containerd_config): the kubelet keeps the score it has.
        "oomScoreAdj": 0,
        # Leave the shared machine's iptables to kube-proxy alone (the kubelet's chains would
        # outlive the cluster).
        "makeIPTablesUtilChains": False,
        "maxPods": 110,
    }
    return yaml.safe_dump(config, sort_keys=False)


def kube_proxy_config(settings: ClusterSettings, kubeconfig_path: Path) -> str:
    """kube-proxy in iptables mode. conntrack.maxPerCore 0 leaves the host's conntrack table
    size alone, and localhostNodePorts off leaves route_localnet alone: shared machine."""
    config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig_path)},
        "hostnameOverride": settings.node_name,
        "mode": "iptables",
        "clusterCIDR": settings.pod_cidr,
        "healthzBindAddress": f"127.0.0.1:{settings.proxy_healthz_port}",
        "metricsBindAddress": f"127.0.0.1:{settings.proxy_metrics_port}",
        "conntrack": {"maxPerCore": 0},
        "iptables": {"localhostNodePorts": False},
        "nodePortAddresses": ["primary"],  # NodePorts on the node's own address only
        "oomScoreAdj": 0,  # no CAP_SYS_RESOURCE here (see containerd_config)
    }
    return yaml.safe_dump(config, sort_keys=False)
