"""The local images' recipe: where Debian comes from, what decides a rebuild, what Dapr's holds."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from devstack.build.dapr import KUBERNETES, STANDALONE
from devstack.images import local
from devstack.images.local import (
    DAPR_USER,
    JAEGER_ENTRYPOINT,
    JAEGER_USER,
    DebianImage,
    ImageBuildError,
    LocalImages,
    _dapr_rootfs,
    _static_rootfs,
    build_dapr_images,
    build_dapr_kubernetes_images,
    dapr_image,
    debian_images,
    debian_mirror,
    host_ca_bundle,
)

MIRROR = "http://mirror.invalid/debian"


def _apt(tmp_path: Path, sources: str | None = None, one_line: str | None = None) -> Path:
    (tmp_path / "sources.list.d").mkdir()
    if sources is not None:
        (tmp_path / "sources.list.d" / "debian.sources").write_text(sources)
    if one_line is not None:
        (tmp_path / "sources.list").write_text(one_line)
    return tmp_path


def test_mirror_comes_from_a_deb822_sources_file(tmp_path: Path) -> None:
    apt = _apt(
        tmp_path,
        "Types: deb\n# a comment\nURIs: " + MIRROR + "\nSuites: bookworm bookworm-updates\n"
        "Components: main\n\nTypes: deb\nURIs: http://other.invalid/security\n"
        "Suites: bookworm-security\n",
    )
    assert debian_mirror(apt) == MIRROR


def test_mirror_comes_from_a_one_line_sources_list(tmp_path: Path) -> None:
    apt = _apt(tmp_path, one_line=f"# old style\ndeb [arch=amd64] {MIRROR} bookworm main\n")
    assert debian_mirror(apt) == MIRROR


def test_no_bookworm_source_is_an_error_naming_the_folder(tmp_path: Path) -> None:
    apt = _apt(tmp_path, one_line=f"deb {MIRROR} trixie main\n")
    with pytest.raises(ImageBuildError, match=str(tmp_path)):
        debian_mirror(apt)


def test_host_ca_bundle_is_the_one_pip_is_told_to_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "corporate.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("PIP_CERT", str(bundle))
    assert host_ca_bundle() == bundle


def test_a_changed_ca_bundle_rebuilds_only_the_python_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "bundle.pem"
    monkeypatch.setenv("PIP_CERT", str(bundle))
    bundle.write_text("one")
    before = {image.name: image.digest() for image in debian_images()}
    bundle.write_text("two")
    after = {image.name: image.digest() for image in debian_images()}
    assert after["redis"] == before["redis"]
    assert after["python"] != before["python"]


def test_digest_covers_packages_and_image_settings() -> None:
    def image(packages: tuple[str, ...], changes: tuple[str, ...]) -> DebianImage:
        return DebianImage("x", "t", packages, changes, lambda rootfs: None)

    base = image(("redis-server",), ("USER redis",))
    assert base.digest() == image(("redis-server",), ("USER redis",)).digest()
    assert base.digest() != image(("redis-server", "curl"), ("USER redis",)).digest()
    assert base.digest() != image(("redis-server",), ("USER root",)).digest()


def test_dapr_image_has_the_official_layout(tmp_path: Path) -> None:
    binary = tmp_path / "daprd"
    binary.write_bytes(b"\x7fELF static")
    with tarfile.open(fileobj=io.BytesIO(_dapr_rootfs(binary))) as tar:
        members = {member.name: member for member in tar.getmembers()}
        passwd = tar.extractfile("etc/passwd")
        assert passwd is not None
        users = passwd.read().decode()
    assert members["daprd"].mode == 0o755
    assert members["tmp"].mode == members["var/lock"].mode == 0o1777
    assert members["home/nonroot"].uid == DAPR_USER
    assert f"nonroot:x:{DAPR_USER}:{DAPR_USER}:" in users
    # Same input, same bytes: the digest of the tar decides whether to re-import.
    assert _dapr_rootfs(binary) == _dapr_rootfs(binary)


def test_jaeger_image_has_the_official_layout(tmp_path: Path) -> None:
    binary = tmp_path / "jaeger"
    binary.write_bytes(b"\x7fELF static")
    rootfs = _static_rootfs(binary, JAEGER_ENTRYPOINT, ("jaeger", JAEGER_USER))
    with tarfile.open(fileobj=io.BytesIO(rootfs)) as tar:
        members = {member.name: member for member in tar.getmembers()}
        passwd = tar.extractfile("etc/passwd")
        assert passwd is not None
        users = passwd.read().decode()
    assert JAEGER_ENTRYPOINT == "cmd/jaeger/jaeger-linux"
    assert members["cmd/jaeger/jaeger-linux"].mode == 0o755
    assert members["cmd/jaeger"].isdir()
    assert members["tmp"].mode == 0o1777
    assert f"jaeger:x:{JAEGER_USER}:{JAEGER_USER}:" in users


def test_every_image_the_compose_files_select_is_exported() -> None:
    images = LocalImages("repo", "redis", "python", "nginx", "prometheus", "jaeger")

    assert set(images.compose_env()) == {
        "DAPR_IMAGE_REPO",
        "REDIS_IMAGE",
        "PYTHON_IMAGE",
        "NGINX_IMAGE",
        "PROMETHEUS_IMAGE",
        "JAEGER_IMAGE",
    }


def test_prometheus_image_is_debians_package_run_like_the_official_image() -> None:
    prometheus = next(image for image in debian_images() if image.name == "prometheus")

    assert prometheus.packages == ("prometheus",)
    assert 'ENTRYPOINT ["/usr/bin/prometheus"]' in prometheus.changes
    assert "WORKDIR /prometheus" in prometheus.changes


def _record_imports(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    imported: list[str] = []
    monkeypatch.setattr(local, "image_digest_label", lambda tag: None)
    monkeypatch.setattr(local, "_import", lambda tag, rootfs, digest, changes: imported.append(tag))
    return imported


def _binaries(tmp_path: Path) -> Path:
    for name in {*STANDALONE, *KUBERNETES}:
        (tmp_path / name).write_bytes(b"\x7fELF static")
    return tmp_path


def test_compose_gets_only_the_three_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    imported = _record_imports(monkeypatch)
    build_dapr_images(_binaries(tmp_path), "1.2.3", lambda line: None)
    assert imported == [dapr_image(name, "1.2.3") for name in STANDALONE]


def test_kubernetes_gets_the_control_plane_and_the_sidecar(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    imported = _record_imports(monkeypatch)
    references = build_dapr_kubernetes_images(_binaries(tmp_path), "1.2.3", lambda line: None)
    assert references == imported
    assert references == [f"localhost/order-processor/{name}:1.2.3" for name in KUBERNETES]
