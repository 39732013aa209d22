"""OBSERVABILITY: what devstack adds to the stack, and the files it generates for it."""

from __future__ import annotations

from pathlib import Path

import yaml

from devstack.build.jaeger import pinned_jaeger_version, release_version
from devstack.settings import OBSERVABILITY_PORTS, ROOT, StackSettings
from devstack.stack import SERVICE_ORDER, Stack, isolated_settings
from devstack.stack.observability import COMPOSE_FILES, compose_files, jaeger_config


def observed(tmp_path: Path, on: bool = True) -> Stack:
    return Stack(isolated_settings(tmp_path, OBSERVABILITY=on), dapr_bin_dir=tmp_path)


def test_off_the_stack_is_unchanged_and_its_ports_are_not_claimed(tmp_path: Path) -> None:
    stack = observed(tmp_path, on=False)

    assert stack.service_order == SERVICE_ORDER
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in stack.services["app"].env
    assert "OBSERVABILITY" not in stack.services["app"].env
    assert stack.settings.dapr_config_file.name == "daprd-config.yaml"
    assert "config" in stack.settings.dapr_config_file.parts
    claimed = set(stack.settings.ports())
    assert not claimed & {"PROMETHEUS_PORT", "JAEGER_UI_PORT", "JAEGER_OTLP_GRPC_PORT"}


def test_on_prometheus_and_jaeger_start_before_the_dapr_processes(tmp_path: Path) -> None:
    stack = observed(tmp_path)

    order = stack.service_order
    assert order.index("jaeger") < order.index("daprd") < order.index("app")
    assert order.index("prometheus") < order.index("daprd")
    assert set(order) == {*SERVICE_ORDER, "jaeger", "prometheus"}
    assert len(stack.settings.ports()) == len(set(stack.settings.ports().values()))
    assert {name.upper() for name in OBSERVABILITY_PORTS} <= set(stack.settings.ports())


def test_the_app_exports_to_jaeger_and_keeps_its_in_flight_sets(tmp_path: Path) -> None:
    stack = observed(tmp_path)

    env = stack.services["app"].env
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == (
        f"http://127.0.0.1:{stack.settings.jaeger_otlp_grpc_port}"
    )
    assert env["OBSERVABILITY"] == "true"


def test_daprd_runs_with_tracing_to_jaeger_and_the_rest_of_its_configuration(
    tmp_path: Path,
) -> None:
    stack = observed(tmp_path)

    config = yaml.safe_load(stack.settings.dapr_config_file.read_text())

    tracing = config["spec"]["tracing"]
    assert tracing["samplingRate"] == "1"
    assert tracing["otel"] == {
        "endpointAddress": f"127.0.0.1:{stack.settings.jaeger_otlp_grpc_port}",
        "isSecure": False,
        "protocol": "grpc",
    }
    # The retention policy of config/daprd-config.yaml is kept.
    assert "stateRetentionPolicy" in config["spec"]["workflow"]
    assert str(stack.settings.dapr_config_file) in stack.services["daprd"].argv


def test_prometheus_scrapes_the_app_and_every_dapr_process_on_loopback(tmp_path: Path) -> None:
    s = observed(tmp_path).settings

    config = yaml.safe_load((s.data_dir / "observability" / "prometheus.yml").read_text())

    targets = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]
    }
    assert targets == {
        "order-processor": [f"127.0.0.1:{s.app_port}"],
        "daprd": [f"127.0.0.1:{s.dapr_metrics_port}"],
        "placement": [f"127.0.0.1:{s.placement_metrics_port}"],
        "scheduler": [f"127.0.0.1:{s.scheduler_metrics_port}"],
    }


def test_under_make_run_prometheus_also_scrapes_the_supervisor(tmp_path: Path) -> None:
    settings = isolated_settings(tmp_path, OBSERVABILITY=True)
    Stack(settings, dapr_bin_dir=tmp_path, supervise=True)

    text = (settings.data_dir / "observability" / "prometheus.yml").read_text()

    assert f"127.0.0.1:{settings.supervisor_metrics_port}" in text


def test_jaeger_listens_on_loopback_only(tmp_path: Path) -> None:
    s = observed(tmp_path).settings

    config = yaml.safe_load((s.data_dir / "observability" / "jaeger.yaml").read_text())

    endpoints = [
        config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"],
        config["receivers"]["otlp"]["protocols"]["http"]["endpoint"],
        config["extensions"]["jaeger_query"]["http"]["endpoint"],
        config["extensions"]["jaeger_query"]["grpc"]["endpoint"],
        config["extensions"]["healthcheckv2"]["http"]["endpoint"],
    ]
    assert all(endpoint.startswith("127.0.0.1:") for endpoint in endpoints)


def test_the_jaeger_pin_is_read_from_its_go_module() -> None:
    assert pinned_jaeger_version() == "1.76.0"
    assert release_version() == "2.13.0"  # Jaeger's own pairing of its v1 and v2 tags
    assert StackSettings().jaeger_cache_dir.name == "jaeger"


def test_with_replicas_every_app_and_daprd_is_scraped_and_exports(tmp_path: Path) -> None:
    settings = isolated_settings(tmp_path, OBSERVABILITY=True, REPLICAS=2)
    stack = Stack(settings, dapr_bin_dir=tmp_path)

    config = yaml.safe_load((settings.data_dir / "observability" / "prometheus.yml").read_text())

    targets = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]
    }
    assert targets["order-processor"] == [f"127.0.0.1:{r.app_port}" for r in stack.replicas]
    assert targets["daprd"] == [f"127.0.0.1:{r.dapr_metrics_port}" for r in stack.replicas]
    assert len(stack.replicas) == 2
    for replica in stack.replicas:
        assert "OTEL_EXPORTER_OTLP_ENDPOINT" in stack.services[replica.app_name].env


def test_the_compose_configuration_files_are_the_generated_ones() -> None:
    for path, text in compose_files().items():
        assert (ROOT / path).read_text() == text, (
            f"{path} is stale; regenerate: .venv/bin/python -m devstack.observability"
        )


def test_compose_daprd_traces_to_jaeger_by_name_at_the_rate_from_its_environment() -> None:
    text = compose_files()[COMPOSE_FILES["daprd"]]

    config = yaml.safe_load(text)

    assert config["spec"]["tracing"] == {
        "samplingRate": "${TRACING_SAMPLING_RATE}",
        "otel": {"endpointAddress": "jaeger:4317", "isSecure": False, "protocol": "grpc"},
    }
    # The retention policy of config/daprd-config.yaml is kept.
    assert "stateRetentionPolicy" in config["spec"]["workflow"]


def test_compose_prometheus_scrapes_every_app_and_dapr_process_by_service_name() -> None:
    config = yaml.safe_load(compose_files()[COMPOSE_FILES["prometheus"]])

    targets = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]
    }
    assert targets == {
        "order-processor": ["app:8000", "app-2:8000", "app-3:8000"],
        "daprd": ["daprd:9090", "daprd-2:9090", "daprd-3:9090"],
        "placement": ["placement:9090"],
        "scheduler": ["scheduler:9090"],
    }


def test_compose_jaeger_listens_on_its_default_ports_in_its_container() -> None:
    config = yaml.safe_load(compose_files()[COMPOSE_FILES["jaeger"]])

    assert config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert config["extensions"]["jaeger_query"]["http"]["endpoint"] == "0.0.0.0:16686"
    # Otherwise the same pipeline as `make run`'s Jaeger.
    assert config["service"] == yaml.safe_load(jaeger_config(StackSettings()))["service"]
