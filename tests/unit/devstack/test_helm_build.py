"""helm's build: what the pins say, what the binary is stamped with, and when it is rebuilt."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from devstack.build import helm as helm_build
from devstack.build.go_tool import module_digest
from devstack.settings import ROOT, StackSettings

GO_MOD = """module example/tools/helm

go 1.26.5

tool helm.sh/helm/v3/cmd/helm

require helm.sh/helm/v3 v3.22.0

require (
\tk8s.io/api v0.37.0 // indirect
\tk8s.io/client-go v0.37.2 // indirect
)
"""


def test_versions_come_from_the_go_module(tmp_path: Path) -> None:
    go_mod = tmp_path / "go.mod"
    go_mod.write_text(GO_MOD)
    assert helm_build.pinned_helm_version(go_mod) == "3.22.0"
    # client-go v0.37.x is Kubernetes 1.37: what helm renders for and the schemas checked.
    assert helm_build.kubernetes_version(go_mod) == ("1", "37")


def test_a_go_module_without_the_requirement_is_refused(tmp_path: Path) -> None:
    go_mod = tmp_path / "go.mod"
    go_mod.write_text("module example\n\ngo 1.26.5\n")
    with pytest.raises(helm_build.HelmBuildError, match=r"helm\.sh/helm/v3"):
        helm_build.pinned_helm_version(go_mod)


def test_the_committed_pin_links_the_kubernetes_of_the_schema_package() -> None:
    # tests/deploy validates against kubernetes-validate's schemas for helm's Kubernetes version;
    # a helm bump to a newer client-go needs the schema package bumped with it.
    _, minor = helm_build.kubernetes_version()
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]["dev"]
    (pin,) = [r for r in dev if r.startswith("kubernetes-validate==")]
    assert pin.split("==")[1].startswith(f"1.{minor}.")


def test_ldflags_stamp_the_versions_helm_reports() -> None:
    flags = helm_build._ldflags()
    assert f"internal/version.version=v{helm_build.pinned_helm_version()}" in flags
    _, minor = helm_build.kubernetes_version()
    for package in ("pkg/chartutil", "pkg/lint/rules"):
        assert f"helm.sh/helm/v3/{package}.k8sVersionMinor={minor}" in flags


def _stamped_binary(tmp_path: Path, stamp: str) -> Path:
    settings = StackSettings(HELM_CACHE_DIR=tmp_path)
    binary = helm_build.helm_binary(settings)
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    (binary.parent / ".build-stamp").write_text(stamp + "\n")
    return binary


def test_a_binary_stamped_with_the_module_digest_is_reused(tmp_path: Path) -> None:
    binary = _stamped_binary(tmp_path, module_digest(helm_build.GO_MODULE_DIR))
    assert helm_build.binary_current(binary)


def test_a_changed_module_rebuilds(tmp_path: Path) -> None:
    assert not helm_build.binary_current(_stamped_binary(tmp_path, "an older digest"))


def test_a_missing_binary_rebuilds(tmp_path: Path) -> None:
    binary = _stamped_binary(tmp_path, module_digest(helm_build.GO_MODULE_DIR))
    binary.unlink()
    assert not helm_build.binary_current(binary)
