"""Dapr's own Helm chart, from Dapr's Go module at the pin, rendered with deploy/k8s/dapr-values.yaml.

What a real install on the single-node cluster would apply (issue 21, point 2), checked without a
cluster: every manifest valid against the Kubernetes schemas, mTLS on, every image one of the
local ones `make dapr-images` builds (never pulled, no registry named), the single-node sizes, and
the scheduler's data on a volume that the volumes devstack makes for it can bind.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from devstack.build.dapr import BINARIES, KUBERNETES
from devstack.build.dapr_chart import (
    DAPR_UID,
    NAMESPACE,
    SCHEDULER_CLAIM,
    SCHEDULER_REPLICAS,
    SCHEDULER_STATEFULSET,
    SCHEDULER_STORAGE_CLASS,
    SCHEDULER_STORAGE_SIZE,
    VALUES_FILE,
    chart_dir,
    release_args,
    scheduler_volumes,
)
from devstack.build.helm import kubernetes_version
from devstack.images.local import DAPR_USER, dapr_image
from devstack.settings import ROOT, pinned_dapr_version
from tests.fixtures.helm import (
    Manifest,
    closed_schema,
    helm_binary,
    render_dapr_chart,
    run_helm,
    schema_problem,
)

WORKLOADS = ("Deployment", "StatefulSet")
# What each control-plane workload runs, by the chart's names for them.
CONTROL_PLANE = {
    "dapr-operator": "operator",
    "dapr-sentry": "sentry",
    "dapr-sidecar-injector": "injector",
    "dapr-placement-server": "placement",
    "dapr-scheduler-server": "scheduler",
}


@pytest.fixture(scope="module")
def rendered() -> list[Manifest]:
    return render_dapr_chart(helm_binary())


def _named(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    found = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, got {len(found)}"
    return found[0]


def _pods(manifests: list[Manifest]) -> Iterator[tuple[str, dict[str, Any]]]:
    for manifest in manifests:
        if manifest["kind"] in WORKLOADS:
            yield manifest["metadata"]["name"], manifest["spec"]["template"]["spec"]


def _containers(manifests: list[Manifest]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, pod in _pods(manifests):
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            yield name, container


def _injector_env(manifests: list[Manifest]) -> dict[str, str]:
    pod = _named(manifests, "Deployment", "dapr-sidecar-injector")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return {var["name"]: var["value"] for var in container["env"] if "value" in var}


# --- where the chart comes from --------------------------------------------------------------


def test_chart_is_read_from_the_pinned_module_not_the_repo() -> None:
    chart = chart_dir()
    assert chart.parent.parent.name == f"dapr@v{pinned_dapr_version()}"
    assert not chart.is_relative_to(ROOT)
    assert yaml.safe_load((chart / "Chart.yaml").read_text())["name"] == "dapr"
    subcharts = {path.name for path in (chart / "charts").iterdir()}
    assert {
        f"dapr_{part}" for part in ("operator", "sentry", "placement", "scheduler")
    } <= subcharts


def test_renders_the_whole_control_plane_and_dapr_crds(rendered: list[Manifest]) -> None:
    workloads = {m["metadata"]["name"]: m["kind"] for m in rendered if m["kind"] in WORKLOADS}
    assert workloads == {
        "dapr-operator": "Deployment",
        "dapr-sentry": "Deployment",
        "dapr-sidecar-injector": "Deployment",
        "dapr-placement-server": "StatefulSet",
        "dapr-scheduler-server": "StatefulSet",
    }
    assert [m["metadata"]["name"] for m in rendered if m["kind"] == "MutatingWebhookConfiguration"]
    crds = {m["spec"]["names"]["kind"] for m in rendered if m["kind"] == "CustomResourceDefinition"}
    assert {"Component", "Configuration", "Resiliency", "Subscription"} <= crds


def test_chart_lints_strictly_with_the_values() -> None:
    result = run_helm(helm_binary(), "lint", "--strict", *release_args()[1:])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def _leaves(values: dict[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for key, value in values.items():
        if isinstance(value, dict) and value:
            yield from _leaves(value, (*prefix, key))
        else:
            yield (*prefix, key)


def test_every_value_set_is_one_the_chart_has() -> None:
    # Dapr's chart has no values schema: a misspelt key would be ignored without a word.
    chart = chart_dir()
    defaults = yaml.safe_load((chart / "values.yaml").read_text())
    for subchart in (chart / "charts").iterdir():
        defaults[subchart.name] = yaml.safe_load((subchart / "values.yaml").read_text())
    unknown = []
    for path in _leaves(yaml.safe_load(VALUES_FILE.read_text())):
        node: Any = defaults
        for key in path:
            if not isinstance(node, dict) or key not in node:
                unknown.append(".".join(path))
                break
            node = node[key]
    assert unknown == []


def test_every_manifest_matches_the_kubernetes_schemas(rendered: list[Manifest]) -> None:
    version = ".".join(kubernetes_version())
    problems = []
    for manifest in (m for m in rendered if not m["apiVersion"].startswith("dapr.io/")):
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except jsonschema.ValidationError as error:
            problems.append(schema_problem(manifest, error))
    assert problems == []


def test_dapr_resources_match_the_crds_rendered_beside_them(rendered: list[Manifest]) -> None:
    crds = {
        m["spec"]["names"]["kind"]: m for m in rendered if m["kind"] == "CustomResourceDefinition"
    }
    resources = [m for m in rendered if m["apiVersion"].startswith("dapr.io/")]
    assert [m["kind"] for m in resources] == ["Configuration"]
    problems = []
    for manifest in resources:
        group_version = manifest["apiVersion"].split("/")[1]
        (served,) = [
            v for v in crds[manifest["kind"]]["spec"]["versions"] if v["name"] == group_version
        ]
        try:
            jsonschema.validate(manifest, closed_schema(served["schema"]["openAPIV3Schema"]))
        except jsonschema.ValidationError as error:
            problems.append(schema_problem(manifest, error))
    assert problems == []


# --- security ---------------------------------------------------------------------------------


def test_mtls_is_on_for_sidecars_and_the_control_plane(rendered: list[Manifest]) -> None:
    mtls = _named(rendered, "Configuration", "daprsystem")["spec"]["mtls"]
    assert mtls["enabled"] is True
    assert mtls["sentryAddress"] == f"dapr-sentry.{NAMESPACE}.svc.cluster.local:443"
    for name in ("dapr-placement-server", "dapr-scheduler-server"):
        pod = _named(rendered, "StatefulSet", name)["spec"]["template"]["spec"]
        assert "--tls-enabled" in pod["containers"][0]["args"], name
    # Sidecars get their certificates from sentry, trusting the bundle sentry publishes.
    env = _injector_env(rendered)
    assert env["DAPR_SENTRY_ADDRESS"] == mtls["sentryAddress"]
    assert env["DAPR_TRUST_ANCHORS_FILE"].endswith("ca.crt")
    # The trust bundle starts empty: sentry makes the root CA in the cluster, none is in a file.
    bundle = _named(rendered, "Secret", "dapr-trust-bundle")
    assert not bundle.get("data")


def test_every_image_is_a_local_build_of_the_pin(rendered: list[Manifest]) -> None:
    version = pinned_dapr_version()
    images = sorted((workload, container["image"]) for workload, container in _containers(rendered))
    assert images == sorted(
        (workload, dapr_image(program, version)) for workload, program in CONTROL_PLANE.items()
    )
    # The sidecar the injector adds to every Dapr-enabled pod: daprd, from the same build.
    assert _injector_env(rendered)["SIDECAR_IMAGE"] == dapr_image("daprd", version)
    used = {*CONTROL_PLANE.values(), "daprd"}
    assert used == set(KUBERNETES)
    assert used <= set(BINARIES)


def test_no_image_is_ever_pulled(rendered: list[Manifest]) -> None:
    policies = {workload: c["imagePullPolicy"] for workload, c in _containers(rendered)}
    assert set(policies.values()) == {"Never"}, policies
    assert _injector_env(rendered)["SIDECAR_IMAGE_PULL_POLICY"] == "Never"
    assert all("imagePullSecrets" not in pod for _, pod in _pods(rendered))


def test_no_registry_host_anywhere_in_the_output(rendered: list[Manifest]) -> None:
    # The chart's own default registry, read from the chart (so no host is named here).
    default_registry = yaml.safe_load((chart_dir() / "values.yaml").read_text())["global"][
        "registry"
    ]
    text = yaml.safe_dump_all(rendered)
    assert default_registry not in text
    references = [c["image"] for _, c in _containers(rendered)]
    references.append(_injector_env(rendered)["SIDECAR_IMAGE"])
    for reference in references:
        # The first part of a reference is a registry host when it has a dot or a port; the
        # local images' first part is `localhost`, which no pull could reach here.
        first = reference.split("/")[0]
        assert first == "localhost", reference
        assert not re.search(r"[.:]", first), reference


def test_nothing_is_granted_outside_daprs_namespace(rendered: list[Manifest]) -> None:
    # The chart's secret reader for the `default` namespace is off (deploy/k8s/dapr-values.yaml).
    namespaced = [m for m in rendered if m["kind"] in ("Role", "RoleBinding")]
    assert namespaced
    assert {m["metadata"]["namespace"] for m in namespaced} == {NAMESPACE}


def test_control_plane_and_sidecar_run_unprivileged(rendered: list[Manifest]) -> None:
    for workload, container in _containers(rendered):
        context = container["securityContext"]
        assert context["runAsNonRoot"] is True, workload
        assert context["readOnlyRootFilesystem"] is True, workload
        assert context["allowPrivilegeEscalation"] is False, workload
    env = _injector_env(rendered)
    assert env["SIDECAR_RUN_AS_NON_ROOT"] == "true"
    assert env["SIDECAR_READ_ONLY_ROOT_FILESYSTEM"] == "true"
    assert env["SIDECAR_DROP_ALL_CAPABILITIES"] == "true"
    # runAsNonRoot needs a numeric non-root user in the image: the local images' user.
    assert DAPR_USER == DAPR_UID != 0


# --- one node ---------------------------------------------------------------------------------


def test_single_node_sizes(rendered: list[Manifest]) -> None:
    replicas = {
        m["metadata"]["name"]: m["spec"]["replicas"] for m in rendered if m["kind"] in WORKLOADS
    }
    # HA off: one of each, but for the scheduler, which the chart at the pin fixes at three
    # (its embedded etcd cluster lists three members); on one node they share it.
    assert replicas == {
        "dapr-operator": 1,
        "dapr-sentry": 1,
        "dapr-sidecar-injector": 1,
        "dapr-placement-server": 1,
        "dapr-scheduler-server": SCHEDULER_REPLICAS,
    }
    scheduler = _named(rendered, "StatefulSet", SCHEDULER_STATEFULSET)["spec"]["template"]["spec"]
    affinity = scheduler["affinity"]["podAntiAffinity"]
    assert "requiredDuringSchedulingIgnoredDuringExecution" not in affinity


def test_scheduler_keeps_its_data_on_a_persistent_volume(rendered: list[Manifest]) -> None:
    statefulset = _named(rendered, "StatefulSet", SCHEDULER_STATEFULSET)["spec"]
    (claim,) = statefulset["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == SCHEDULER_CLAIM
    assert claim["spec"]["storageClassName"] == SCHEDULER_STORAGE_CLASS
    assert claim["spec"]["resources"]["requests"]["storage"] == SCHEDULER_STORAGE_SIZE
    pod = statefulset["template"]["spec"]
    # Not the in-memory emptyDir the chart offers: workflow timers must survive a restart.
    assert SCHEDULER_CLAIM not in {volume["name"] for volume in pod["volumes"]}
    (container,) = pod["containers"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == SCHEDULER_CLAIM]
    data_dir = next(a for a in container["args"] if a.startswith("--etcd-data-dir="))
    mount_path = mount["mountPath"].rstrip("/") + "/"
    assert data_dir.removeprefix("--etcd-data-dir=").startswith(mount_path)
    assert pod["securityContext"]["fsGroup"] == DAPR_UID


def test_scheduler_volumes_bind_to_its_claims(rendered: list[Manifest], tmp_path: Path) -> None:
    volumes = scheduler_volumes(tmp_path / "scheduler", node="node-1")
    (storage_class,) = [m for m in volumes if m["kind"] == "StorageClass"]
    persistent = [m for m in volumes if m["kind"] == "PersistentVolume"]
    statefulset = _named(rendered, "StatefulSet", SCHEDULER_STATEFULSET)
    claims = {
        f"{SCHEDULER_CLAIM}-{SCHEDULER_STATEFULSET}-{index}"
        for index in range(statefulset["spec"]["replicas"])
    }
    assert {m["spec"]["claimRef"]["name"] for m in persistent} == claims
    assert {m["spec"]["claimRef"]["namespace"] for m in persistent} == {NAMESPACE}
    assert storage_class["metadata"]["name"] == SCHEDULER_STORAGE_CLASS
    assert {m["spec"]["storageClassName"] for m in persistent} == {SCHEDULER_STORAGE_CLASS}
    assert {m["spec"]["capacity"]["storage"] for m in persistent} == {SCHEDULER_STORAGE_SIZE}
    assert len({m["spec"]["local"]["path"] for m in persistent}) == len(persistent)
    version = ".".join(kubernetes_version())
    for manifest in volumes:
        kubernetes_validate.validate(manifest, version, strict=True)


# --- the values file and the install command --------------------------------------------------


def test_values_file_holds_no_version() -> None:
    # The tag comes from .env on the command line (release_args): one pin, not two.
    values = yaml.safe_load(VALUES_FILE.read_text())
    assert "tag" not in values["global"]
    assert pinned_dapr_version() not in VALUES_FILE.read_text()


def test_readme_dapr_install_is_the_one_devstack_renders() -> None:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- dapr-kubernetes -->\s*```bash\n(.*?)```", text, re.DOTALL)
    assert block is not None, "README.md lost its Dapr-on-Kubernetes block"
    commands = [
        shlex.split(line.split("#")[0])
        for line in block.group(1).replace("\\\n", " ").splitlines()
        if line.split("#")[0].strip()
    ]
    (install,) = [c for c in commands if c[:2] == ["helm", "install"]]
    expected = release_args()
    assert install[2] == expected[0]
    assert install[3] == "$(.venv/bin/python -m devstack.build.dapr_chart)"
    rest = [
        arg.replace("$(grep ^DAPR_VERSION= .env | cut -d= -f2)", pinned_dapr_version())
        for arg in install[4:]
    ]
    assert [a for a in rest if a != "--create-namespace"] == [
        str(Path(a).relative_to(ROOT)) if a.startswith(str(ROOT)) else a for a in expected[2:]
    ]
