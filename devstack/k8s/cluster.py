"""The single-node cluster as plain processes: containerd, etcd, kube-apiserver,
kube-controller-manager, kube-scheduler, kubelet and kube-proxy, started in that order, each
waited on until healthy, then kept up by devstack's supervisor (restart what exits or hangs,
give up on a crash loop); CoreDNS runs on the cluster itself as a Deployment (addons).

The machine has no systemd and PID 1 is no init, so nothing here is a unit: the launcher is the
parent of every process, and each dies with it (PR_SET_PDEATHSIG)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from devstack.build.kubernetes import ClusterBinaries
from devstack.k8s import addons, files
from devstack.k8s.config import ClusterSettings
from devstack.k8s.dns import resolve_a
from devstack.k8s.images import BinaryImage, Containerd
from devstack.k8s.pki import Leaf, Pki
from devstack.settings import StackSettings
from devstack.stack.process import (
    Service,
    http_status,
    kill_service,
    launch_service,
    service_log_tail,
    terminate_service,
)
from devstack.stack.supervisor import Policy, Probe, Supervisor

ORDER = (
    "containerd",
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
)
# The components that talk to the apiserver as themselves: their certificate's CN is the user
# the default RBAC roles name (kubeadm's naming), and each gets its own kubeconfig.
CLIENTS = {
    "admin": ("kubernetes-admin", "system:masters"),
    "kube-controller-manager": ("system:kube-controller-manager", ""),
    "kube-scheduler": ("system:kube-scheduler", ""),
    "kube-proxy": ("system:kube-proxy", ""),
}


class ClusterError(RuntimeError):
    pass


class Cluster:
    def __init__(
        self,
        settings: ClusterSettings,
        binaries: ClusterBinaries,
        report: Callable[[str], None],
    ) -> None:
        self.settings = settings
        self.binaries = binaries
        self._report = report
        state = settings.state_dir
        self.pki = Pki(state / "pki")
        self.containerd_dir = state / "containerd"
        self.containerd = Containerd(self.containerd_dir / "containerd.sock")
        self.pause = BinaryImage("pause", binaries.pause, ["/pause"])
        self.coredns = BinaryImage(
            "coredns", binaries.coredns, ["/coredns"], ports=["53/udp", "53/tcp"]
        )
        self.services = {service.name: service for service in self._define_services()}
        self.supervisor: Supervisor | None = None

    # -- layout -----------------------------------------------------------------------------

    def kubeconfig_path(self, user: str) -> Path:
        if user == "admin":
            return self.settings.kubeconfig
        return self.settings.state_dir / "kubeconfigs" / f"{user}.kubeconfig"

    def log_path(self, name: str) -> Path:
        return self.settings.state_dir / "logs" / f"{name}.log"

    def _leaves(self) -> list[Leaf]:
        s = self.settings
        domain = s.cluster_domain
        apiserver_names = (
            "kubernetes", "kubernetes.default", "kubernetes.default.svc",
            f"kubernetes.default.svc.{domain}", "localhost",
            "127.0.0.1", s.kubernetes_service_ip, s.node_ip,
        )  # fmt: skip
        return [
            Leaf("apiserver", "kube-apiserver", sans=apiserver_names),
            Leaf("apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters"),
            Leaf("kubelet", f"system:node:{s.node_name}", "system:nodes",
                 sans=(s.node_name, "localhost", "127.0.0.1", s.node_ip)),
            *(Leaf(name, cn, org) for name, (cn, org) in CLIENTS.items()),
        ]  # fmt: skip

    def _define_services(self) -> list[Service]:
        s = self.settings
        kube = str(self.binaries.kube)
        pki = self.pki
        state = s.state_dir
        etcd_url = f"http://127.0.0.1:{s.etcd_client_port}"

        def kubeconfigs(user: str) -> list[str]:
            path = str(self.kubeconfig_path(user))
            return [
                f"--kubeconfig={path}",
                f"--authentication-kubeconfig={path}",
                f"--authorization-kubeconfig={path}",
            ]

        return [
            Service(
                "containerd",
                ["containerd", "--config", str(self.containerd_dir / "config.toml")],
                ready=lambda: self._probe_containerd() is None,
            ),
            Service(
                "etcd",
                [
                    str(self.binaries.etcd),
                    "--name=devstack",
                    f"--data-dir={state / 'etcd'}",
                    f"--listen-client-urls={etcd_url}",
                    f"--advertise-client-urls={etcd_url}",
                    f"--listen-peer-urls=http://127.0.0.1:{s.etcd_peer_port}",
                    f"--initial-advertise-peer-urls=http://127.0.0.1:{s.etcd_peer_port}",
                    f"--initial-cluster=devstack=http://127.0.0.1:{s.etcd_peer_port}",
                    "--listen-metrics-urls=",
                ],
                ready=lambda: _http_ok(f"{etcd_url}/health"),
            ),
            Service(
                "kube-apiserver",
                [
                    kube,
                    "kube-apiserver",
                    f"--etcd-servers={etcd_url}",
                    "--bind-address=0.0.0.0",
                    f"--secure-port={s.apiserver_port}",
                    f"--advertise-address={s.node_ip}",
                    f"--service-cluster-ip-range={s.service_cidr}",
                    f"--client-ca-file={pki.ca}",
                    f"--tls-cert-file={pki.cert('apiserver')}",
                    f"--tls-private-key-file={pki.key('apiserver')}",
                    f"--kubelet-client-certificate={pki.cert('apiserver-kubelet-client')}",
                    f"--kubelet-client-key={pki.key('apiserver-kubelet-client')}",
                    "--kubelet-preferred-address-types=InternalIP",
                    f"--service-account-issuer=https://kubernetes.default.svc.{s.cluster_domain}",
                    f"--service-account-key-file={pki.service_account_public}",
                    f"--service-account-signing-key-file={pki.service_account_key}",
                    "--authorization-mode=Node,RBAC",
                    "--enable-admission-plugins=NodeRestriction",
                    "--allow-privileged=true",
                    "--profiling=false",
                ],
                ready=lambda: self._probe_https(s.apiserver_port, "/readyz", verify=True) is None,
            ),
            Service(
                "kube-controller-manager",
                [
                    kube,
                    "kube-controller-manager",
                    *kubeconfigs("kube-controller-manager"),
                    "--bind-address=127.0.0.1",
                    f"--secure-port={s.controller_manager_port}",
                    "--leader-elect=false",
                    "--use-service-account-credentials=true",
                    f"--service-account-private-key-file={pki.service_account_key}",
                    f"--root-ca-file={pki.ca}",
                    f"--cluster-signing-cert-file={pki.ca}",
                    f"--cluster-signing-key-file={pki.key('ca')}",
                    "--allocate-node-cidrs=true",
                    f"--cluster-cidr={s.pod_cidr}",
                    f"--service-cluster-ip-range={s.service_cidr}",
                    "--node-cidr-mask-size=24",
                    "--profiling=false",
                ],
                ready=lambda: self._probe_https(s.controller_manager_port, "/healthz") is None,
            ),
            Service(
                "kube-scheduler",
                [
                    kube,
                    "kube-scheduler",
                    *kubeconfigs("kube-scheduler"),
                    "--bind-address=127.0.0.1",
                    f"--secure-port={s.scheduler_port}",
                    "--leader-elect=false",
                    "--profiling=false",
                ],
                ready=lambda: self._probe_https(s.scheduler_port, "/healthz") is None,
            ),
            Service(
                "kubelet",
                [
                    kube,
                    "kubelet",
                    f"--config={state / 'kubelet' / 'config.yaml'}",
                    f"--kubeconfig={self.kubeconfig_path('kubelet')}",
                    f"--root-dir={state / 'kubelet' / 'root'}",
                    f"--hostname-override={s.node_name}",
                    f"--node-ip={s.node_ip}",
                ],
                ready=lambda: _http_ok(f"http://127.0.0.1:{s.kubelet_healthz_port}/healthz"),
            ),
            Service(
                "kube-proxy",
                [kube, "kube-proxy", f"--config={state / 'kube-proxy.yaml'}"],
                ready=lambda: _http_ok(f"http://127.0.0.1:{s.proxy_healthz_port}/healthz"),
            ),
        ]

    # -- probes -----------------------------------------------------------------------------

    def _probe_containerd(self) -> str | None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2.0)
            try:
                sock.connect(str(self.containerd.socket))
            except OSError as error:
                return f"its socket refuses connections ({error})"
        return None

    def _probe_https(self, port: int, path: str, verify: bool = False) -> str | None:
        """A health endpoint over TLS; the apiserver's certificate is checked against the CA,
        the controller-manager's and scheduler's are self-signed (loopback only)."""
        context = ssl.create_default_context(cafile=str(self.pki.ca) if verify else None)
        if not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        try:
            with urllib.request.urlopen(
                f"https://127.0.0.1:{port}{path}", timeout=2.0, context=context
            ) as response:
                return None if response.status == 200 else f"{path} answered {response.status}"
        except urllib.error.HTTPError as error:
            return f"{path} answered {error.code}"
        except (OSError, ValueError) as error:
            return f"{path}: {error}"

    def liveness_probe(self, name: str) -> Probe:
        ready = self.services[name].ready
        return lambda: None if ready() else f"{name} does not answer its health check"

    # -- files and host state ---------------------------------------------------------------

    def prepare(self) -> None:
        """Certificates, config files and the service range's route: everything before start."""
        s = self.settings
        if os.geteuid() != 0:
            raise ClusterError(
                "the cluster needs root: containerd, the kubelet and kube-proxy set up the"
                " machine's cgroups, mounts and iptables"
            )
        state = s.state_dir
        for directory in ("logs", "kubeconfigs", "kubelet", "manifests", "pod-logs", "cni"):
            (state / directory).mkdir(parents=True, exist_ok=True)
        self.containerd_dir.mkdir(parents=True, exist_ok=True)
        self.pki.ensure(self._leaves())
        self._link_commands()
        for user in CLIENTS:
            _write(
                self.kubeconfig_path(user), files.kubeconfig(s.apiserver_url, self.pki, user, user)
            )
        _write(
            self.kubeconfig_path("kubelet"),
            files.kubeconfig(s.apiserver_url, self.pki, f"system:node:{s.node_name}", "kubelet"),
        )
        _write(
            self.containerd_dir / "config.toml",
            files.containerd_config(self.containerd_dir, state / "cni", self.pause.reference),
        )
        _write(state / "cni" / "10-devstack.conflist", files.cni_network(s))
        _write(
            state / "kubelet" / "config.yaml",
            files.kubelet_config(s, self.pki, self.containerd.socket),
        )
        _write(
            state / "kube-proxy.yaml",
            files.kube_proxy_config(s, self.kubeconfig_path("kube-proxy")),
        )
        self._route_service_range()
        self._allow_pod_traffic()

    @property
    def bin_dir(self) -> Path:
        """`kubectl` and the components by name, links to `kube` (it dispatches on argv[0])."""
        return self.settings.state_dir / "bin"

    def _link_commands(self) -> None:
        self.bin_dir.mkdir(parents=True, exist_ok=True)
        for name in ("kubectl", *ORDER[2:]):
            link = self.bin_dir / name
            link.unlink(missing_ok=True)
            link.symlink_to(self.binaries.kube)

    @property
    def _service_link(self) -> str:
        return "devstack-svc0"

    def _route_service_range(self) -> None:
        """Send the service range into an empty bridge: a cluster IP that kube-proxy translates
        (in PREROUTING for pods, OUTPUT for this machine) is rerouted to its pod; one it does
        not goes nowhere, instead of out of the default route. A `blackhole` route would do the
        latter but breaks the former for this machine's own connections: the route is looked
        up before OUTPUT's DNAT, and a blackhole fails sendto with EINVAL (tried). No dummy
        link: this kernel has no dummy driver ("Unknown device type")."""
        link = self._service_link
        if subprocess.run(["ip", "link", "show", link], capture_output=True).returncode != 0:
            _run(["ip", "link", "add", link, "type", "bridge"])
        _run(["ip", "link", "set", link, "up"])
        _run(["ip", "route", "replace", self.settings.service_cidr, "dev", link])

    def _pod_forward_rule(self) -> list[str]:
        bridge = self.settings.bridge
        return ["FORWARD", "-i", bridge, "-o", bridge, "-m", "comment",
                "--comment", "devstack k8s: pod to pod", "-j", "ACCEPT"]  # fmt: skip

    def _allow_pod_traffic(self) -> None:
        """Let pods reach each other across the bridge. Docker sets the FORWARD policy to DROP,
        and with bridge-nf-call-iptables on, even frames between two ports of the pods' bridge
        pass FORWARD: a pod's DNS query to CoreDNS (direct or through kube-dns) was dropped.
        One rule, bridge to same bridge only: nothing from a pod is forwarded off the node."""
        rule = self._pod_forward_rule()
        if subprocess.run(["iptables", "-C", *rule], capture_output=True).returncode != 0:
            _run(["iptables", "-I", *rule[:1], "1", *rule[1:]])

    def _disallow_pod_traffic(self) -> None:
        rule = self._pod_forward_rule()
        while subprocess.run(["iptables", "-D", *rule], capture_output=True).returncode == 0:
            pass

    def _unroute_service_range(self) -> None:
        """The route goes with its bridge; the pods' bridge (the CNI plugin made it) goes too."""
        for link in (self._service_link, self.settings.bridge):
            subprocess.run(["ip", "link", "del", link], capture_output=True)

    # -- processes (devstack.stack.supervisor.Components) -----------------------------------

    def launch(self, name: str) -> int:
        return launch_service(self.services[name], self.log_path(name))

    def returncode(self, name: str) -> int | None:
        process = self.services[name].process
        return None if process is None else process.poll()

    def kill(self, name: str) -> None:
        kill_service(self.services[name])

    def log_tail(self, name: str, lines: int = 30) -> str:
        return service_log_tail(self.log_path(name), name, lines)

    def _start_service(self, name: str) -> None:
        service = self.services[name]
        started = time.monotonic()
        pid = self.launch(name)
        deadline = started + self.settings.startup_timeout_seconds
        while time.monotonic() < deadline:
            code = self.returncode(name)
            if code is not None:
                raise ClusterError(
                    f"{name} exited with {code} while starting\n{self.log_tail(name)}"
                )
            if service.ready():
                self._report(f"{name} ready (pid {pid}, {time.monotonic() - started:.1f}s)")
                return
            time.sleep(0.3)
        raise ClusterError(f"{name} not healthy after the start timeout\n{self.log_tail(name)}")

    # -- the cluster ------------------------------------------------------------------------

    def start(self, policy: Policy) -> None:
        """Start every process in order, then CoreDNS; supervised from then on."""
        self.prepare()
        try:
            for name in ORDER:
                self._start_service(name)
                if name == "containerd":
                    self.containerd.ensure(self.pause)
            self.supervisor = Supervisor(
                self, ORDER, {name: self.liveness_probe(name) for name in ORDER}, policy,
                self._report,
            )  # fmt: skip
            self.supervisor.start()
            self.install_addons()
            self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        done = subprocess.run(
            [str(self.binaries.kube), "kubectl", f"--kubeconfig={self.settings.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            check=False,
        )
        if check and done.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def apply(self, objects: Sequence[dict[str, Any]]) -> None:
        document = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-",
                     input=json.dumps(document))  # fmt: skip

    def install_addons(self) -> None:
        image = self.containerd.ensure(self.coredns)
        self.apply(addons.coredns(self.settings, image))

    def node_ready(self) -> bool:
        out = self.kubectl(
            "get", "node", self.settings.node_name, "--ignore-not-found",
            "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}", check=False,
        )  # fmt: skip
        return out.strip() == "True"

    def dns_answers(self) -> bool:
        """CoreDNS, through the kube-dns Service, resolves the apiserver's Service name."""
        name = f"kubernetes.default.svc.{self.settings.cluster_domain}"
        addresses = resolve_a(self.settings.dns_service_ip, name)
        return self.settings.kubernetes_service_ip in addresses

    def wait_ready(self) -> None:
        s = self.settings
        deadline = time.monotonic() + s.ready_timeout_seconds
        for what, check in (
            ("node Ready", self.node_ready),
            ("CoreDNS answering", self.dns_answers),
        ):
            while not check():
                if time.monotonic() > deadline:
                    raise ClusterError(
                        f"no {what} within {s.ready_timeout_seconds:.0f}s\n"
                        + self.kubectl("get", "pods", "-A", "-o", "wide", check=False)
                        + self.log_tail("kubelet")
                    )
                time.sleep(1.0)
            self._report(what)

    def _ctr(self, *args: str) -> subprocess.CompletedProcess[str]:
        ctr = ["ctr", "--address", str(self.containerd.socket), "--namespace", "k8s.io"]
        return subprocess.run([*ctr, *args], capture_output=True, text=True, check=False)

    def _stop_pods(self) -> None:
        """With the kubelet gone, kill what runs in containerd's `k8s.io` namespace and delete
        the pods' network namespaces, so neither a container nor a veth outlives the cluster.
        (No CRI client is built to stop the sandboxes properly; on the next start the kubelet
        finds them dead and releases their addresses.)"""
        begun = time.monotonic()
        tasks = self._ctr("tasks", "list", "--quiet").stdout.split()
        for task in tasks:
            self._ctr("tasks", "kill", "--signal", "SIGKILL", task)
        # The CRI deletes a task itself once it has exited; wait for that, then delete any left.
        deadline = time.monotonic() + 10
        left = set(tasks)
        while left and time.monotonic() < deadline:
            left &= set(self._ctr("tasks", "list", "--quiet").stdout.split())
            time.sleep(0.1)
        for task in left:
            self._ctr("tasks", "delete", "--force", task)
        self._report(f"{len(tasks)} pod containers killed ({time.monotonic() - begun:.1f}s)")
        namespaces = set()
        for container in self._ctr("containers", "list", "--quiet").stdout.split():
            try:
                spec = json.loads(self._ctr("containers", "info", container).stdout)["Spec"]
            except (ValueError, KeyError):
                continue
            for namespace in spec.get("linux", {}).get("namespaces", []):
                path = namespace.get("path", "")
                if namespace.get("type") == "network" and path.startswith(
                    ("/var/run/netns/", "/run/netns/")
                ):
                    namespaces.add(Path(path).name)
        for name in sorted(namespaces):
            subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)

    def _unmount_state(self) -> None:
        """Unmount what the kubelet and the CRI mounted under the state folder (the kubelet's
        root, projected volumes, sandboxes' /dev/shm): with the sandboxes killed rather than
        stopped, nobody else does, and a mount left there makes the folder undeletable (a
        pytest tmp folder then fails every later session's cleanup)."""
        root = str(self.settings.state_dir.resolve())
        mounts = [
            line.split()[1].replace("\\040", " ")
            for line in Path("/proc/mounts").read_text().splitlines()
        ]
        for point in sorted((m for m in mounts if m == root or m.startswith(root + "/")),
                            key=len, reverse=True):  # fmt: skip
            if subprocess.run(["umount", point], capture_output=True).returncode != 0:
                subprocess.run(["umount", "--lazy", point], capture_output=True)

    def _remove_iptables_chains(self) -> None:
        """kube-proxy --cleanup leaves the KUBE-FIREWALL chain (the guard against non-local
        packets to 127.0.0.0/8) and the canaries; remove them too, for IPv4 and IPv6."""
        for tool in ("iptables", "ip6tables"):
            for chain in ("INPUT", "OUTPUT"):
                subprocess.run([tool, "-D", chain, "-j", "KUBE-FIREWALL"], capture_output=True)
            subprocess.run([tool, "-F", "KUBE-FIREWALL"], capture_output=True)
            subprocess.run([tool, "-X", "KUBE-FIREWALL"], capture_output=True)
            for table in ("filter", "nat", "mangle"):
                for chain in ("KUBE-KUBELET-CANARY", "KUBE-PROXY-CANARY", "KUBE-IPTABLES-HINT"):
                    subprocess.run([tool, "-t", table, "-X", chain], capture_output=True)

    def stop_service(self, name: str, grace: float = 15.0) -> None:
        if self.returncode(name) is not None or self.services[name].process is None:
            return
        begun = time.monotonic()
        terminate_service(self.services[name], grace)
        self._report(f"{name} stopped ({time.monotonic() - begun:.1f}s)")

    def stop(self) -> None:
        supervisor = self.supervisor
        if supervisor is not None:
            supervisor.pause()
        try:
            for name in reversed(ORDER):
                self.stop_service(name)
                if name == "kubelet" and self.returncode("containerd") is None:
                    # Before the apiserver: it waits for its clients' requests to drain (15 s
                    # of grace then SIGKILL while CoreDNS still watched it).
                    self._stop_pods()
            subprocess.run(
                [str(self.binaries.kube), "kube-proxy", "--cleanup"], capture_output=True
            )
            self._unmount_state()
            self._remove_iptables_chains()
            self._disallow_pod_traffic()
            self._unroute_service_range()
        finally:
            if supervisor is not None:
                supervisor.finish()
                self.supervisor = None


def _http_ok(url: str) -> bool:
    return http_status(url) == 200


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o600)


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ClusterError(f"{' '.join(command)} failed: {done.stderr.strip()}")


def supervision_policy(stack: StackSettings, settings: ClusterSettings) -> Policy:
    """`make run`'s restart rules, but a longer hang deadline: the apiserver's /readyz takes
    seconds under load. No conditions: the Dapr wedge check does not apply here."""
    return Policy(
        backoff_initial=stack.restart_backoff_seconds,
        backoff_max=stack.restart_backoff_max_seconds,
        crash_limit=stack.crash_limit,
        crash_window=stack.crash_window_seconds,
        hang_after=30.0,
        start_timeout=settings.startup_timeout_seconds,
        condition_grace=0,
    )


@contextlib.contextmanager
def running_cluster(
    settings: ClusterSettings,
    binaries: ClusterBinaries,
    report: Callable[[str], None],
    policy: Policy,
) -> Iterator[Cluster]:
    """A cluster that is up (node Ready, CoreDNS answering) inside, stopped after: the tests'."""
    cluster = Cluster(settings, binaries, report)
    cluster.start(policy)
    try:
        yield cluster
    finally:
        cluster.stop()
