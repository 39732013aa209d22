"""The Helm chart (deploy/helm/order-processor) lints, renders, and its output is valid.

`helm` is the real one, built from its Go module (devstack/build/helm.py, `make helm`). Every
rendered manifest is checked against the Kubernetes 1.37 schemas that kubernetes-validate ships
(1.37: the client-go that helm links, so the schemas and `.Capabilities` agree), and Dapr's
Component and Configuration against the openAPIV3Schema of Dapr's own CRDs, read from the Dapr
module that `make dapr` downloaded: nothing of Dapr's is copied into the repo.
"""

from __future__ import annotations

import base64
import copy
import re
import secrets
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from app.config import Settings
from devstack.build.dapr_chart import chart_dir
from devstack.build.helm import kubernetes_version
from devstack.settings import APP_ID, ROOT, StackSettings
from tests.fixtures.helm import (
    CHART,
    RELEASE,
    Manifest,
    app_container,
    closed_schema,
    helm_binary,
    only,
    render_chart,
    run_helm,
    schema_problem,
    set_args,
)

DAPR_KINDS = {"Component": "components.yaml", "Configuration": "configuration.yaml"}
# Variables the chart sets that the app's Settings of issue 11 (observability) read; until that
# lands, Settings ignores them (extra="ignore"). Every other variable must be a Settings field.
AWAITING_SETTINGS = {"LOG_FORMAT", "OTEL_EXPORTER_OTLP_ENDPOINT"}
Render = Callable[..., list[Manifest]]


@pytest.fixture(scope="module")
def helm() -> Path:
    return helm_binary()


@pytest.fixture(scope="module")
def render(helm: Path) -> Render:
    def rendered(*, sets: dict[str, str] | None = None, release: str = RELEASE) -> list[Manifest]:
        return render_chart(helm, sets=sets, release=release)

    return rendered


@pytest.fixture(scope="module")
def tokens() -> dict[str, str]:
    # Made here, per run: the chart must carry them only in the Secrets it creates.
    return {"api": secrets.token_urlsafe(24), "manager": secrets.token_urlsafe(24)}


# A production-like set: three fixed replicas, tracing on, secrets created by the chart, customer
# JWTs verified against a JWKS from a ConfigMap.
def _scaled_values(tokens: dict[str, str]) -> dict[str, str]:
    return {
        "replicaCount": "3",
        "autoscaling.enabled": "false",
        "tracing.enabled": "true",
        "tracing.samplingRate": "0.25",
        "workflow.historyRetentionSeconds": "3600",
        "image.repository": "registry.example/shop/order-processor",
        "image.tag": "1.2.3",
        "secrets.create": "true",
        "secrets.daprApiToken": tokens["api"],
        "secrets.managerToken": tokens["manager"],
        "customerAuth.mode": "jwt",
        "customerAuth.issuer": "https://id.example/realms/shop",
        "customerAuth.jwksConfigMap": "shop-jwks",
    }


@pytest.fixture(scope="module")
def defaults(render: Render) -> list[Manifest]:
    return render()


@pytest.fixture(scope="module")
def scaled(render: Render, tokens: dict[str, str]) -> list[Manifest]:
    return render(sets=_scaled_values(tokens))


def _env(manifests: list[Manifest]) -> dict[str, dict[str, Any]]:
    return {var["name"]: var for var in app_container(manifests).get("env", [])}


def _annotations(manifests: list[Manifest]) -> dict[str, str]:
    annotations: dict[str, str] = only(manifests, "Deployment")["spec"]["template"]["metadata"][
        "annotations"
    ]
    return annotations


# --- lint and schemas ------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["defaults", "scaled"])
def test_chart_lints_strictly(helm: Path, tokens: dict[str, str], variant: str) -> None:
    sets = _scaled_values(tokens) if variant == "scaled" else {}
    result = run_helm(helm, "lint", "--strict", str(CHART), *set_args(sets))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def test_helm_renders_for_the_kubernetes_version_of_the_schemas(helm: Path, tmp_path: Path) -> None:
    # Built without the version ldflags, helm would render for Kubernetes 1.20: `.Capabilities`
    # and the chart's kubeVersion check would not be those of the schemas validated against.
    probe = tmp_path / "probe"
    (probe / "templates").mkdir(parents=True)
    (probe / "Chart.yaml").write_text("apiVersion: v2\nname: probe\nversion: 0.1.0\n")
    (probe / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: probe}\n"
        "data: {version: '{{ .Capabilities.KubeVersion.Version }}'}\n"
    )
    result = run_helm(helm, "template", "probe", str(probe))
    assert result.returncode == 0, result.stderr
    version = yaml.safe_load(result.stdout)["data"]["version"]
    major, minor = kubernetes_version()
    assert version == f"v{major}.{minor}.0"
    assert kubernetes_validate.utils.latest_version() == f"{major}.{minor}.0"


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("replicaCont=3", "additional properties 'replicaCont' not allowed"),
        ("autoscaling.enabled=yes", "/autoscaling/enabled"),
        ("workflow.failedRetention=7d", "/workflow/failedRetention"),
        ("app.logFormat=xml", "/app/logFormat"),
        ("customerAuth.mode=oauth", "/customerAuth/mode"),
        ("customerAuth.mode=jwt", "/customerAuth"),
    ],
)
def test_values_schema_refuses_a_wrong_value(helm: Path, setting: str, complaint: str) -> None:
    # values.schema.json: a typo fails `helm install` instead of being silently ignored.
    result = run_helm(helm, "template", RELEASE, str(CHART), "--set", setting)
    assert result.returncode != 0
    assert complaint in result.stderr


def test_chart_refuses_a_cluster_older_than_its_kube_version(helm: Path) -> None:
    result = run_helm(helm, "template", RELEASE, str(CHART), "--kube-version", "1.29.0")
    assert result.returncode != 0
    assert "kubeVersion" in result.stderr


def test_every_kind_the_chart_promises_is_rendered(
    defaults: list[Manifest], scaled: list[Manifest]
) -> None:
    native = ["Deployment", "Service", "PodDisruptionBudget"]
    dapr = ["Component", "Configuration"]
    assert sorted(m["kind"] for m in defaults) == sorted(
        [*native, "HorizontalPodAutoscaler", *dapr]
    )
    # Autoscaling off: fixed replicas and no HPA; the chart creates the two token Secrets.
    assert sorted(m["kind"] for m in scaled) == sorted([*native, "Secret", "Secret", *dapr])


@pytest.mark.parametrize("variant", ["defaults", "scaled"])
def test_kubernetes_manifests_match_the_kubernetes_schemas(
    request: pytest.FixtureRequest, variant: str
) -> None:
    manifests: list[Manifest] = request.getfixturevalue(variant)
    version = ".".join(kubernetes_version())
    native = [m for m in manifests if m["kind"] not in DAPR_KINDS]
    assert native
    problems = []
    for manifest in native:
        # strict: additional properties are errors, so a misplaced or misspelt field fails.
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except jsonschema.ValidationError as error:
            problems.append(schema_problem(manifest, error))
    assert problems == []


def _dapr_crd_schema(kind: str) -> dict[str, Any]:
    crd_file = chart_dir() / "crds" / DAPR_KINDS[kind]
    crd = yaml.safe_load(crd_file.read_text())
    assert crd["spec"]["names"]["kind"] == kind
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    return closed_schema(version["schema"]["openAPIV3Schema"])


@pytest.fixture(scope="module")
def dapr_schemas() -> dict[str, dict[str, Any]]:
    return {kind: _dapr_crd_schema(kind) for kind in DAPR_KINDS}


@pytest.mark.parametrize("variant", ["defaults", "scaled"])
def test_dapr_resources_match_dapr_crds(
    request: pytest.FixtureRequest, dapr_schemas: dict[str, dict[str, Any]], variant: str
) -> None:
    manifests: list[Manifest] = request.getfixturevalue(variant)
    problems = []
    for kind, schema in dapr_schemas.items():
        manifest = only(manifests, kind)
        assert manifest["apiVersion"] == "dapr.io/v1alpha1"
        try:
            jsonschema.validate(manifest, schema)
        except jsonschema.ValidationError as error:
            problems.append(schema_problem(manifest, error))
    assert problems == []


def test_dapr_crd_check_refuses_a_misspelt_field(
    defaults: list[Manifest], dapr_schemas: dict[str, dict[str, Any]]
) -> None:
    configuration = copy.deepcopy(only(defaults, "Configuration"))
    workflow = configuration["spec"]["workflow"]
    workflow["stateRetentionPolicies"] = workflow.pop("stateRetentionPolicy")
    with pytest.raises(jsonschema.ValidationError, match="stateRetentionPolicies"):
        jsonschema.validate(configuration, dapr_schemas["Configuration"])


# --- what the pods run with ------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["defaults", "scaled"])
def test_pods_carry_the_dapr_sidecar_annotations(
    request: pytest.FixtureRequest, variant: str
) -> None:
    manifests: list[Manifest] = request.getfixturevalue(variant)
    annotations = _annotations(manifests)
    assert annotations["dapr.io/enabled"] == "true"
    assert annotations["dapr.io/app-id"] == APP_ID
    # The sidecar runs with the Configuration this release renders.
    assert annotations["dapr.io/config"] == only(manifests, "Configuration")["metadata"]["name"]
    # daprd and the app read the API token from one Secret (Dapr's injector reads key `token`).
    api_token = _env(manifests)["DAPR_API_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert api_token == {"name": annotations["dapr.io/api-token-secret"], "key": "token"}


def test_no_app_port_so_daprd_does_not_wait_for_the_app(defaults: list[Manifest]) -> None:
    # daprd with an app port holds its readiness until that port answers, and the app only
    # listens once daprd is ready (its start-up waits for the sidecar): a deadlock. The app's
    # worker dials daprd over gRPC and nothing invokes the app through Dapr, so it needs none.
    assert "dapr.io/app-port" not in _annotations(defaults)


def test_app_port_can_be_set_for_an_app_that_listens_first(render: Render) -> None:
    assert _annotations(render(sets={"dapr.appPort": "8000"}))["dapr.io/app-port"] == "8000"


def test_pod_needs_no_kubernetes_api_token(defaults: list[Manifest]) -> None:
    # Without the token mounted, daprd's built-in Kubernetes secret store could not start, so
    # it is off; the state store's password still arrives (the operator resolves secretKeyRef).
    pod = only(defaults, "Deployment")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert _annotations(defaults)["dapr.io/disable-builtin-k8s-secret-store"] == "true"
    assert only(defaults, "Component")["auth"] == {"secretStore": "kubernetes"}


def test_probes_use_the_health_endpoints_on_the_served_port(defaults: list[Manifest]) -> None:
    container = app_container(defaults)
    assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    startup = container["startupProbe"]
    assert startup["httpGet"] == {"path": "/healthz", "port": "http"}
    # The app waits up to sidecar_wait_seconds for daprd before it listens: the start-up probe
    # must outlast that, or the kubelet kills a replica whose sidecar is merely slow.
    budget = startup["periodSeconds"] * startup["failureThreshold"]
    assert budget > Settings().sidecar_wait_seconds


def test_containers_run_unprivileged_with_a_read_only_root(defaults: list[Manifest]) -> None:
    pod = only(defaults, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the Dockerfile's user
    context = app_container(defaults)["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    resources = app_container(defaults)["resources"]
    assert set(resources["requests"]) == {"cpu", "memory"}
    assert set(resources["limits"]) == {"cpu", "memory"}


def test_app_settings_match_the_apps_own(defaults: list[Manifest], scaled: list[Manifest]) -> None:
    env = _env(defaults)
    fields = {name.upper() for name in Settings.model_fields}
    assert set(env) - fields <= AWAITING_SETTINGS, set(env) - fields
    plain = {name: var["value"] for name, var in env.items() if "value" in var}
    settings = Settings.model_validate({name.lower(): value for name, value in plain.items()})
    defaults_of_the_app = Settings()
    assert settings.approval_threshold == defaults_of_the_app.approval_threshold
    assert settings.approval_timeout_seconds == defaults_of_the_app.approval_timeout_seconds
    assert settings.request_timeout_seconds == defaults_of_the_app.request_timeout_seconds
    assert plain["STATESTORE_NAME"] == only(defaults, "Component")["metadata"]["name"]
    assert plain["LOG_FORMAT"] == "json"
    # Tracing off: the app exports nothing; on: to the collector daprd exports to.
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in env
    otel = only(scaled, "Configuration")["spec"]["tracing"]["otel"]
    endpoint = _env(scaled)["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"]
    assert endpoint == f"http://{otel['endpointAddress']}"


def test_customer_auth_is_off_by_default_and_jwt_reads_a_mounted_jwks(
    defaults: list[Manifest], scaled: list[Manifest]
) -> None:
    assert _env(defaults)["CUSTOMER_AUTH"]["value"] == "off"
    assert "CUSTOMER_JWKS" not in _env(defaults)
    env = {name: var["value"] for name, var in _env(scaled).items() if "value" in var}
    settings = Settings.model_validate({name.lower(): value for name, value in env.items()})
    assert settings.customer_auth == "jwt"
    assert settings.customer_jwt_issuer == "https://id.example/realms/shop"
    jwks = Path(env["CUSTOMER_JWKS"])
    mounts = {m["name"]: m["mountPath"] for m in app_container(scaled)["volumeMounts"]}
    assert mounts["customer-jwks"] == str(jwks.parent)
    volumes = only(scaled, "Deployment")["spec"]["template"]["spec"]["volumes"]
    (volume,) = [v for v in volumes if v["name"] == "customer-jwks"]
    assert volume["configMap"]["name"] == "shop-jwks"
    assert volume["configMap"]["items"] == [{"key": "jwks.json", "path": jwks.name}]


def test_manager_token_comes_from_a_secret(defaults: list[Manifest]) -> None:
    # A replica without it would make up its own: approvals would depend on the replica.
    reference = _env(defaults)["MANAGER_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert reference["key"] == "token"
    assert reference.get("optional", False) is False


def test_image_comes_from_values(defaults: list[Manifest], scaled: list[Manifest]) -> None:
    assert app_container(defaults)["image"] == "order-processor:0.1.0"
    assert app_container(scaled)["image"] == "registry.example/shop/order-processor:1.2.3"


# --- replicas, disruption, autoscaling -------------------------------------------------------


def _pod_labels(manifests: list[Manifest]) -> dict[str, str]:
    labels: dict[str, str] = only(manifests, "Deployment")["spec"]["template"]["metadata"]["labels"]
    return labels


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


@pytest.mark.parametrize("variant", ["defaults", "scaled"])
def test_selectors_match_the_pods(request: pytest.FixtureRequest, variant: str) -> None:
    manifests: list[Manifest] = request.getfixturevalue(variant)
    labels = _pod_labels(manifests)
    deployment = only(manifests, "Deployment")
    assert _selects(deployment["spec"]["selector"]["matchLabels"], labels)
    assert _selects(
        only(manifests, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"], labels
    )
    assert _selects(only(manifests, "Service")["spec"]["selector"], labels)
    assert only(manifests, "Service")["spec"]["ports"][0]["targetPort"] == "http"


def test_selectors_do_not_match_another_release(render: Render, defaults: list[Manifest]) -> None:
    other = _pod_labels(render(release="other"))
    assert not _selects(
        only(defaults, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"], other
    )


def test_hpa_scales_the_deployment_on_theapp_container(defaults: list[Manifest]) -> None:
    hpa = only(defaults, "HorizontalPodAutoscaler")
    deployment = only(defaults, "Deployment")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": deployment["apiVersion"],
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    (metric,) = hpa["spec"]["metrics"]
    assert metric["containerResource"]["container"] == app_container(defaults)["name"]
    assert metric["containerResource"]["name"] == "cpu"
    # Utilization is of the request: without one the HPA cannot compute it.
    assert "cpu" in app_container(defaults)["resources"]["requests"]
    assert hpa["spec"]["minReplicas"] >= 2
    assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
    # The HPA owns the count: a fixed one here would be reset by every `helm upgrade`.
    assert "replicas" not in deployment["spec"]


def test_fixed_replicas_without_autoscaling(scaled: list[Manifest]) -> None:
    assert only(scaled, "Deployment")["spec"]["replicas"] == 3


def test_disruption_budget_lets_a_drain_progress(defaults: list[Manifest]) -> None:
    spec = only(defaults, "PodDisruptionBudget")["spec"]
    assert spec.get("maxUnavailable") == 1
    assert "minAvailable" not in spec


# --- secrets ---------------------------------------------------------------------------------


def test_default_output_holds_no_secret(defaults: list[Manifest]) -> None:
    assert [m for m in defaults if m["kind"] == "Secret"] == []
    for name in ("DAPR_API_TOKEN", "MANAGER_TOKEN"):
        assert set(_env(defaults)[name]) == {"name", "valueFrom"}
    metadata = {m["name"]: m for m in only(defaults, "Component")["spec"]["metadata"]}
    assert set(metadata["redisPassword"]) == {"name", "secretKeyRef"}
    text = yaml.safe_dump_all(defaults)
    assert "password:" not in text.lower().replace("redispassword", "")


def test_tokens_passed_in_appear_only_in_the_secrets(
    scaled: list[Manifest], tokens: dict[str, str]
) -> None:
    created = {m["metadata"]["name"]: m for m in scaled if m["kind"] == "Secret"}
    api_secret = _annotations(scaled)["dapr.io/api-token-secret"]
    manager_secret = _env(scaled)["MANAGER_TOKEN"]["valueFrom"]["secretKeyRef"]["name"]
    assert base64.b64decode(created[api_secret]["data"]["token"]).decode() == tokens["api"]
    assert base64.b64decode(created[manager_secret]["data"]["token"]).decode() == tokens["manager"]
    rest = yaml.safe_dump_all([m for m in scaled if m["kind"] != "Secret"])
    for token in tokens.values():
        assert token not in rest
        assert base64.b64encode(token.encode()).decode() not in rest


def test_creating_secrets_without_values_is_refused(helm: Path) -> None:
    result = run_helm(helm, "template", RELEASE, str(CHART), "--set", "secrets.create=true")
    assert result.returncode != 0
    assert "secrets.daprApiToken" in result.stderr


def test_values_file_holds_no_secret_value() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["secrets"]["daprApiToken"] == ""
    assert values["secrets"]["managerToken"] == ""
    assert values["secrets"]["create"] is False


# --- the Dapr resources ----------------------------------------------------------------------


def test_state_store_is_the_redis_actor_store(defaults: list[Manifest]) -> None:
    component = only(defaults, "Component")
    assert component["spec"]["type"] == "state.redis"
    metadata = {m["name"]: m for m in component["spec"]["metadata"]}
    assert metadata["actorStateStore"]["value"] == "true"
    assert metadata["redisHost"]["value"]
    assert metadata["redisPassword"]["secretKeyRef"] == {"name": "redis", "key": "redis-password"}
    assert component["auth"] == {"secretStore": "kubernetes"}
    assert component["scopes"] == [APP_ID]


def _local_retention_policy(retention_seconds: int) -> dict[str, str]:
    """config/daprd-config.yaml's policy as daprd reads it, with the period expanded."""
    text = StackSettings().dapr_config_file.read_text()
    text = text.replace("${ORDER_HISTORY_RETENTION_SECONDS}", str(retention_seconds))
    policy: dict[str, str] = yaml.safe_load(text)["spec"]["workflow"]["stateRetentionPolicy"]
    return policy


def test_retention_matches_the_local_configuration(
    defaults: list[Manifest], scaled: list[Manifest]
) -> None:
    default = StackSettings.model_fields["order_history_retention_seconds"].default
    policy = only(defaults, "Configuration")["spec"]["workflow"]["stateRetentionPolicy"]
    assert policy == _local_retention_policy(default)
    policy = only(scaled, "Configuration")["spec"]["workflow"]["stateRetentionPolicy"]
    assert policy == _local_retention_policy(3600)


def test_zero_retention_purges_at_once(render: Render) -> None:
    manifests = render(sets={"workflow.historyRetentionSeconds": "0"})
    policy = only(manifests, "Configuration")["spec"]["workflow"]["stateRetentionPolicy"]
    assert policy["completed"] == "0s"


def test_tracing_is_off_by_default_and_on_by_value(
    defaults: list[Manifest], scaled: list[Manifest]
) -> None:
    # "0", not absent: an absent rate still samples (1 in 10,000, or all with an OTLP env).
    assert only(defaults, "Configuration")["spec"]["tracing"] == {"samplingRate": "0"}
    tracing = only(scaled, "Configuration")["spec"]["tracing"]
    assert tracing["samplingRate"] == "0.25"
    assert tracing["otel"]["endpointAddress"]
    assert tracing["otel"]["protocol"] == "grpc"
    assert tracing["otel"]["isSecure"] is False


# --- the README's install steps --------------------------------------------------------------


def _readme_commands() -> list[list[str]]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- kubernetes -->\s*```bash\n(.*?)```", text, re.DOTALL)
    assert block is not None, "README.md lost its Kubernetes block"
    joined = block.group(1).replace("\\\n", " ")
    lines = (line.split("#")[0].strip() for line in joined.splitlines())
    return [shlex.split(line) for line in lines if line]


def _flag_value(command: list[str], *names: str) -> str:
    for name in names:
        if name in command:
            return command[command.index(name) + 1]
    raise AssertionError(f"none of {names} in {command}")


def test_readme_install_renders_and_creates_the_secrets_the_pods_read(helm: Path) -> None:
    commands = _readme_commands()
    (install,) = [c for c in commands if c[:2] == ["helm", "install"]]
    chart = install[3]
    namespace = _flag_value(install, "--namespace", "-n")
    result = run_helm(helm, "template", *install[2:])
    assert (ROOT / chart).resolve() == CHART
    assert result.returncode == 0, result.stderr
    manifests = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    deployment, service = only(manifests, "Deployment"), only(manifests, "Service")
    rollout = next(c for c in commands if "rollout" in c)
    assert rollout == [
        "kubectl", "-n", namespace, "rollout", "status",
        f"deployment/{deployment['metadata']['name']}",
    ]  # fmt: skip
    forward = next(c for c in commands if "port-forward" in c)
    assert forward[:4] == ["kubectl", "-n", namespace, "port-forward"]
    assert forward[4:] == [
        f"service/{service['metadata']['name']}",
        f"8080:{service['spec']['ports'][0]['port']}",
    ]

    created = set()
    for command in commands:
        if command[:2] == ["kubectl", "-n"] and command[3:6] == ["create", "secret", "generic"]:
            assert command[2] == namespace  # secretKeyRef and the operator read the pod's own
            for literal in (a for a in command if a.startswith("--from-literal=")):
                created.add((command[6], literal.removeprefix("--from-literal=").split("=")[0]))
    read = {
        (ref["name"], ref["key"])
        for var in app_container(manifests)["env"]
        if (ref := var.get("valueFrom", {}).get("secretKeyRef"))
    }
    read |= {
        (m["secretKeyRef"]["name"], m["secretKeyRef"]["key"])
        for m in only(manifests, "Component")["spec"]["metadata"]
        if "secretKeyRef" in m
    }
    read.add((_annotations(manifests)["dapr.io/api-token-secret"], "token"))
    assert read == created
