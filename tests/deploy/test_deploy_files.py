"""The container and Dapr CLI files must describe the same stack as devstack.

No Docker daemon is needed: compose files are checked with a real compose tool's `config`,
which parses, validates against its schema and interpolates `.env` without starting anything.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.build.jaeger import release_version
from devstack.settings import APP_ID, ROOT, StackSettings, pinned_dapr_version
from devstack.stack import Stack, isolated_settings
from devstack.stack.observability import COMPOSE_APPS, COMPOSE_FILES, COMPOSE_SIDECARS

COMPOSE_FILE = ROOT / "docker-compose.yml"
OBSERVABILITY_FILE = ROOT / "docker-compose.observability.yml"
DAPR_RUN_FILE = ROOT / "dapr.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DAPR_IMAGES = ("daprd", "placement", "scheduler")
SHELL_OVERRIDES = {
    "DAPR_VERSION",
    "MANAGER_TOKEN",
    "DAPR_API_TOKEN",
    "DAPR_IMAGE_REPO",
    "REDIS_IMAGE",
    "PYTHON_IMAGE",
    "NGINX_IMAGE",
    "PROMETHEUS_IMAGE",
    "JAEGER_IMAGE",
    "APP_IMAGE",
    "TRACING_SAMPLING_RATE",
    "COMPOSE_FILE",
    "COMPOSE_PROFILES",
}


def _default(field: str) -> Any:
    """devstack's default, not the environment's: the files must match what ships."""
    return StackSettings.model_fields[field].default


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path.name} is not a YAML mapping"
    return data


def _flag(command: list[str], name: str) -> str:
    assert name in command, f"{name} missing from {command}"
    return command[command.index(name) + 1]


def _run_compose(
    *args: str,
    api_token: str | None = "deploy-file-check",
    manager_token: str | None = "deploy-file-manager",
    files: tuple[Path, ...] = (COMPOSE_FILE,),
) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.fail("docker-compose is not installed: run `make deps`")
    # The shell's values would override .env and hide a wrong pin or an image default; the
    # tokens must not end up in an assertion message (the API token is required: a stand-in).
    env = {k: v for k, v in os.environ.items() if k not in SHELL_OVERRIDES}
    if api_token is not None:
        env["DAPR_API_TOKEN"] = api_token
    if manager_token is not None:
        env["MANAGER_TOKEN"] = manager_token
    return subprocess.run(
        [tool, *(argument for path in files for argument in ("-f", str(path))), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _load(COMPOSE_FILE)


@pytest.fixture(scope="module")
def run_file() -> dict[str, Any]:
    return _load(DAPR_RUN_FILE)


@pytest.fixture(scope="module")
def daprd_command(compose: dict[str, Any]) -> list[str]:
    command: list[str] = compose["services"]["daprd"]["command"]
    return command


def test_compose_file_validates_with_a_real_compose_tool() -> None:
    result = _run_compose("config", "-q")
    assert result.returncode == 0, result.stderr


def _resolved(files: tuple[Path, ...] = (COMPOSE_FILE,)) -> dict[str, Any]:
    result = _run_compose("config", files=files)
    assert result.returncode == 0, result.stderr
    services: dict[str, Any] = yaml.safe_load(result.stdout)["services"]
    return services


def test_dapr_images_read_the_pin_from_env_file(compose: dict[str, Any]) -> None:
    for name in DAPR_IMAGES:
        image = compose["services"][name]["image"]
        assert image.startswith(f"${{DAPR_IMAGE_REPO:-daprio}}/{name}:${{DAPR_VERSION"), image

    resolved = _resolved()
    version = pinned_dapr_version()
    for name in DAPR_IMAGES:
        assert resolved[name]["image"] == f"daprio/{name}:{version}"


def test_images_default_to_the_official_ones() -> None:
    # The variables exist for locally built stand-ins (`make images`); unset, a user with
    # registry access gets the official images and the official Python base.
    resolved = _resolved()
    assert resolved["redis"]["image"].startswith("redis:")
    assert resolved["app"]["build"]["args"]["PYTHON_IMAGE"].startswith("python:3.11")
    instructions = _dockerfile_instructions()
    assert ("ARG", "PYTHON_IMAGE=python:3.11-slim") in instructions
    assert ("FROM", "${PYTHON_IMAGE}") in instructions


def test_every_compose_service_is_restarted_by_the_engine(compose: dict[str, Any]) -> None:
    """A container that dies comes back with no human: the same policy for every service (the
    compose fault tests kill some of them; this holds the rest, e.g. the scheduler, to it)."""
    policies = {name: spec.get("restart") for name, spec in compose["services"].items()}
    assert set(policies.values()) == {"unless-stopped"}, policies
    assert {"redis", "placement", "scheduler", "daprd", "app", "proxy"} <= set(policies)


def test_compose_tool_refuses_to_start_without_an_api_token() -> None:
    result = _run_compose("config", "-q", api_token=None)
    assert result.returncode != 0
    assert "DAPR_API_TOKEN" in result.stderr


def test_compose_tool_refuses_to_start_without_a_manager_token() -> None:
    # A generated token would have to be shown in a log, where log shippers collect it.
    result = _run_compose("config", "-q", manager_token=None)
    assert result.returncode != 0
    assert "set MANAGER_TOKEN in your shell" in result.stderr


def test_api_token_comes_from_the_shell_for_app_and_sidecar(compose: dict[str, Any]) -> None:
    for service in ("app", "daprd"):
        token = compose["services"][service]["environment"]["DAPR_API_TOKEN"]
        assert token.startswith("${DAPR_API_TOKEN:?"), token


@pytest.mark.parametrize(
    "files", [(COMPOSE_FILE,), (COMPOSE_FILE, OBSERVABILITY_FILE)], ids=["compose", "observed"]
)
def test_published_ports_are_loopback_only(files: tuple[Path, ...]) -> None:
    for name, service in _resolved(files).items():
        for port in service.get("ports", []):
            # Compose 1.29 prints `host_ip:published:target/proto`, v2 the long syntax.
            host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
            assert host_ip == "127.0.0.1", (name, port)


def test_app_id_matches(daprd_command: list[str], run_file: dict[str, Any]) -> None:
    assert _flag(daprd_command, "--app-id") == APP_ID
    assert [app["appID"] for app in run_file["apps"]] == [APP_ID]


def test_dapr_ports_match_devstack(
    compose: dict[str, Any], daprd_command: list[str], run_file: dict[str, Any]
) -> None:
    http, grpc = _default("dapr_http_port"), _default("dapr_grpc_port")
    assert _flag(daprd_command, "--dapr-http-port") == str(http)
    assert _flag(daprd_command, "--dapr-grpc-port") == str(grpc)
    app_env = compose["services"]["app"]["environment"]
    assert (app_env["DAPR_HTTP_PORT"], app_env["DAPR_GRPC_PORT"]) == (str(http), str(grpc))
    app = run_file["apps"][0]
    assert (app["daprHTTPPort"], app["daprGRPCPort"]) == (http, grpc)


def test_app_reaches_the_sidecar_by_service_name(compose: dict[str, Any]) -> None:
    # No shared network namespace: a recreated app or daprd finds the other by name.
    services = compose["services"]
    assert services["app"]["environment"]["DAPR_HOST"] == "daprd"
    assert all("network_mode" not in service for service in services.values())
    assert "ports" not in services["redis"]


def test_control_plane_addresses_match(
    compose: dict[str, Any], daprd_command: list[str], run_file: dict[str, Any]
) -> None:
    placement, scheduler = _default("placement_port"), _default("scheduler_port")
    services = compose["services"]
    assert _flag(services["placement"]["command"], "--port") == str(placement)
    assert _flag(services["scheduler"]["command"], "--port") == str(scheduler)
    assert _flag(daprd_command, "--placement-host-address") == f"placement:{placement}"
    assert _flag(daprd_command, "--scheduler-host-address") == f"scheduler:{scheduler}"
    assert run_file["common"]["placementHostAddress"] == f"localhost:{placement}"
    assert run_file["common"]["schedulerHostAddress"] == f"localhost:{scheduler}"


def test_components_come_from_the_repo(
    compose: dict[str, Any], daprd_command: list[str], run_file: dict[str, Any]
) -> None:
    components_dir = _default("components_dir")
    mount = _flag(daprd_command, "--resources-path")
    volumes = compose["services"]["daprd"]["volumes"]
    assert f"./components:{mount}:ro" in volumes
    paths = run_file["common"]["resourcesPaths"]
    assert [(ROOT / p).resolve() for p in paths] == [components_dir]


def test_state_store_reads_redis_host_from_env(compose: dict[str, Any]) -> None:
    # REDIS_HOST in compose only matters if the component actually reads it.
    path = _default("components_dir") / "statestore.yaml"
    assert path.is_file(), f"{path} is missing"
    store = _load(path)
    assert store["metadata"]["name"] == compose["services"]["app"]["environment"]["STATESTORE_NAME"]
    host = {m["name"]: m for m in store["spec"]["metadata"]}["redisHost"]
    assert host.get("envRef") == "REDIS_HOST"
    assert compose["services"]["daprd"]["environment"]["REDIS_HOST"] == "redis:6379"


def test_sidecar_runs_with_the_configuration_devstack_gives_daprd(
    compose: dict[str, Any], daprd_command: list[str], tmp_path: Path
) -> None:
    path = _flag(daprd_command, "--config")
    mount = next(v for v in compose["services"]["daprd"]["volumes"] if v.startswith("./config:"))
    host_dir, container_dir = mount.split(":")[:2]
    committed = ROOT / host_dir / Path(path).relative_to(container_dir)
    stack = Stack(isolated_settings(tmp_path))
    assert committed == stack.settings.dapr_config_file
    assert _flag(stack.services["daprd"].argv, "--config") == str(committed)
    # Both hand daprd the retention to expand into the file, with the same default.
    default = str(_default("order_history_retention_seconds"))
    retention = compose["services"]["daprd"]["environment"]["ORDER_HISTORY_RETENTION_SECONDS"]
    assert retention == "${ORDER_HISTORY_RETENTION_SECONDS:-" + default + "}"
    assert stack.services["daprd"].env["ORDER_HISTORY_RETENTION_SECONDS"] == default
    policy = yaml.safe_load(committed.read_text())["spec"]["workflow"]["stateRetentionPolicy"]
    assert policy["completed"] == "${ORDER_HISTORY_RETENTION_SECONDS}s"


def test_redis_persists_with_aof(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    assert _flag(redis["command"], "--appendonly") == "yes"
    assert any(v.endswith(":/data") for v in redis["volumes"])


def test_manager_token_is_never_hardcoded(compose: dict[str, Any]) -> None:
    assert compose["services"]["app"]["environment"]["MANAGER_TOKEN"] == (
        "${MANAGER_TOKEN:?set MANAGER_TOKEN in your shell (a random secret)}"
    )


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = (line.strip() for line in text.splitlines())
    return [
        (keyword.upper(), rest.strip())
        for keyword, _, rest in (line.partition(" ") for line in lines if line and line[0] != "#")
    ]


def test_dockerfile_runs_as_non_root_with_a_healthcheck() -> None:
    instructions = _dockerfile_instructions()
    users = [arg for keyword, arg in instructions if keyword == "USER"]
    assert users, "no USER instruction: the app would run as root"
    assert users[-1].split(":")[0] not in {"root", "0"}
    assert any(keyword == "HEALTHCHECK" and "/healthz" in arg for keyword, arg in instructions)
    installs = [arg for keyword, arg in instructions if keyword == "RUN" and "pip install" in arg]
    assert installs
    assert all("--require-hashes" in arg for arg in installs)


def test_every_locked_install_resolves_nothing_and_is_checked_complete() -> None:
    # A pip that resolves (23.2, bundled with Python 3.11) picks extras of locked packages from
    # the index itself, newer than the lock: the install broke the day coverage 7.18 came out.
    dockerfile = [arg for keyword, arg in _dockerfile_instructions() if keyword == "RUN"]
    makefile = (ROOT / "Makefile").read_text().splitlines()
    for where, lines in (("Dockerfile", dockerfile), ("Makefile", makefile)):
        installs = [line for line in lines if "pip install" in line]
        assert installs, where
        for line in installs:
            assert "--no-deps" in line, (where, line)
            assert "--require-hashes" in line, (where, line)
        assert any("pip check" in line for line in lines), f"{where} never runs pip check"


# -- docker-compose.observability.yml -------------------------------------------------------

OBSERVED = (COMPOSE_FILE, OBSERVABILITY_FILE)


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host path of a resolved service's bind mounts (either syntax)."""
    mounts = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            mounts[volume["target"]] = volume["source"]
        else:
            source, target = str(volume).split(":")[:2]
            mounts[target] = source
    return mounts


def test_observability_file_validates_on_top_of_the_compose_file() -> None:
    result = _run_compose("config", "-q", files=OBSERVED)
    assert result.returncode == 0, result.stderr


def test_without_the_observability_file_nothing_traces() -> None:
    services = _resolved()
    assert not {"prometheus", "jaeger"} & set(services)
    for app in COMPOSE_APPS:
        assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in services[app]["environment"]
        assert "OBSERVABILITY" not in services[app]["environment"]
    for daprd in COMPOSE_SIDECARS:
        assert "/config/daprd-config.yaml" not in _mounts(services[daprd])


def test_every_app_and_sidecar_is_traced_with_the_observability_file(
    compose: dict[str, Any],
) -> None:
    # The services devstack's generated Prometheus config scrapes are the compose file's.
    apps = {
        name for name, s in compose["services"].items() if "DAPR_HOST" in s.get("environment", {})
    }
    sidecars = {
        name for name, s in compose["services"].items() if s.get("command", [""])[0] == "./daprd"
    }
    assert (apps, sidecars) == (set(COMPOSE_APPS), set(COMPOSE_SIDECARS))
    services = _resolved(OBSERVED)
    for app in apps:
        assert services[app]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4317"
        assert services[app]["environment"]["OBSERVABILITY"] == "true"
    traced = (ROOT / COMPOSE_FILES["daprd"]).resolve()
    for daprd in sidecars:
        config_path = _flag(services[daprd]["command"], "--config")
        assert Path(_mounts(services[daprd])[config_path]).resolve() == traced
        assert services[daprd]["environment"]["TRACING_SAMPLING_RATE"] == "1"


def test_observability_images_default_to_the_official_ones_at_the_pinned_versions() -> None:
    services = _resolved(OBSERVED)
    assert services["jaeger"]["image"] == f"jaegertracing/jaeger:{release_version()}"
    # Debian's package (the local stand-in) is 2.42.
    assert services["prometheus"]["image"] == "prom/prometheus:v2.42.0"
    for name, path in (("jaeger", "jaeger"), ("prometheus", "prometheus")):
        assert str((ROOT / COMPOSE_FILES[path]).resolve()) in _mounts(services[name]).values()
