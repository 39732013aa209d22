"""The dev cluster's pure parts: the pins and the version stamped into kube, the kubelet's
configuration for this machine, the images' archive layout, the CA's certificates and the DNS
answer parsing. The cluster itself runs in tests/k8s (make k8s-test)."""

from __future__ import annotations

import io
import json
import socket
import struct
import subprocess
import tarfile
import threading
from pathlib import Path

import yaml

from devstack.build import kubernetes as kubernetes_build
from devstack.build.go_tool import KUBERNETES
from devstack.k8s import files
from devstack.k8s.config import ClusterSettings
from devstack.k8s.dns import resolve_a
from devstack.k8s.images import BinaryImage, archive
from devstack.k8s.pki import Leaf, Pki


def test_pins_come_from_the_tool_modules() -> None:
    assert kubernetes_build.pinned_kubernetes_version() == "1.37.2"
    assert kubernetes_build.pinned_etcd_version() == "3.7.3"
    assert kubernetes_build.pinned_coredns_version() == "1.15.0"


def test_kube_reports_the_pinned_version_not_the_default_master() -> None:
    flags = kubernetes_build._kube_ldflags("1.37.2")
    assert "-X k8s.io/component-base/version.gitVersion=v1.37.2" in flags
    assert "-X k8s.io/client-go/pkg/version.gitMinor=37" in flags


def test_every_staging_module_is_replaced_by_the_release_of_the_pin() -> None:
    go_mod = (KUBERNETES.module_dir / "go.mod").read_text()
    replaced = [line for line in go_mod.splitlines() if "=> k8s.io/" in line]
    assert replaced
    assert all(line.rstrip().endswith(" v0.37.2") for line in replaced)


def test_kubelet_runs_on_cgroup_v1_with_cgroupfs_and_keeps_its_oom_score(tmp_path: Path) -> None:
    settings = ClusterSettings(state_dir=tmp_path, node_ip="192.0.2.2")
    config = yaml.safe_load(files.kubelet_config(settings, Pki(tmp_path), tmp_path / "c.sock"))
    assert config["failCgroupV1"] is False
    assert config["cgroupDriver"] == "cgroupfs"
    assert config["oomScoreAdj"] == 0
    assert config["clusterDNS"] == ["10.96.0.10"]
    assert config["resolvConf"] == ""


def test_containerd_never_lowers_an_oom_score_and_uses_its_own_socket(tmp_path: Path) -> None:
    text = files.containerd_config(tmp_path, tmp_path / "cni", "localhost/devstack/pause:x")
    assert "restrict_oom_score_adj = true" in text
    assert f'address = "{tmp_path}/containerd.sock"' in text
    assert "SystemdCgroup = false" in text


def test_pod_network_keeps_its_leases_with_the_cluster_and_masquerades_nothing(
    tmp_path: Path,
) -> None:
    network = json.loads(files.cni_network(ClusterSettings(state_dir=tmp_path)))
    bridge = network["plugins"][0]
    assert bridge["ipMasq"] is False
    assert bridge["ipam"]["dataDir"] == str(tmp_path / "cni-ipam")


def test_image_archive_has_the_layout_docker_save_writes(tmp_path: Path) -> None:
    binary = tmp_path / "pause"
    binary.write_bytes(b"\x7fELF-not-really")
    image = BinaryImage("pause", binary, ["/pause"])
    with tarfile.open(fileobj=io.BytesIO(archive(image))) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))  # type: ignore[arg-type]
        [entry] = manifest
        assert entry["RepoTags"] == [image.reference]
        config = json.load(outer.extractfile(entry["Config"]))  # type: ignore[arg-type]
        layer = outer.extractfile("layer.tar")
        assert layer is not None
        with tarfile.open(fileobj=io.BytesIO(layer.read())) as inner:
            assert inner.getmember("pause").mode == 0o755
    assert config["config"]["Entrypoint"] == ["/pause"]
    assert image.reference.startswith("localhost/devstack/pause:")


def test_ca_signs_server_certificates_for_every_name_given(tmp_path: Path) -> None:
    pki = Pki(tmp_path)
    pki.ensure([Leaf("apiserver", "kube-apiserver", sans=("kubernetes", "10.96.0.1"))])
    verified = subprocess.run(
        ["openssl", "verify", "-CAfile", str(pki.ca), str(pki.cert("apiserver"))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verified.returncode == 0, verified.stderr
    text = subprocess.run(
        ["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", str(pki.cert("apiserver"))],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "DNS:kubernetes" in text
    assert "IP Address:10.96.0.1" in text


def test_resolve_a_reads_the_addresses_of_an_answer() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        port = server.getsockname()[1]

        def answer() -> None:
            query, client = server.recvfrom(512)
            header = query[:2] + struct.pack("!HHHHH", 0x8180, 1, 1, 0, 0)
            record = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 30, 4) + socket.inet_aton("10.96.0.1")
            server.sendto(header + query[12:] + record, client)

        thread = threading.Thread(target=answer)
        thread.start()
        addresses = resolve_a("127.0.0.1", "kubernetes.default.svc.cluster.local", port=port)
        thread.join()
    assert addresses == ["10.96.0.1"]
