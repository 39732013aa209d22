"""The observability processes of the local stack: Prometheus and Jaeger (`OBSERVABILITY=true`).

A set of extras the stack is given when it is built (`extras`, one of Stack's DEFAULT_EXTRAS;
the launcher serves `supervisor_metrics`). With observability on:

- Jaeger (built from its Go module, devstack/build/jaeger.py) receives OTLP on loopback and keeps
  traces in memory; its query API and UI are on JAEGER_UI_PORT.
- daprd runs with a copy of config/daprd-config.yaml whose `tracing` section sends its spans to
  Jaeger (samplingRate TRACING_SAMPLING_RATE), and the app gets OTEL_EXPORTER_OTLP_ENDPOINT, so
  one order's app and sidecar spans share a trace.
- Prometheus (Debian's package) scrapes the app's /metrics, daprd, placement and scheduler, and,
  under `make run`, the launcher's supervisor; its data lives in the stack's data dir.

Both start before the Dapr processes (daprd exports to Jaeger from its first span) and stop
after them; the supervisor restarts them like any other component.

docker-compose.observability.yml does the same for the container stack with three committed
files written from the same recipes by `compose_files` (`python -m devstack.observability`
rewrites them; a unit test fails when one is stale): daprd's traced Configuration, Jaeger's
and Prometheus's configurations, with the compose services' names instead of loopback ports.
"""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from devstack.build.jaeger import jaeger_binary
from devstack.settings import ROOT, StackSettings
from devstack.stack.process import Extras, Layout, Service, http_status
from devstack.stack.supervisor import Supervisor

PROMETHEUS: Final = "prometheus"
# Started right after Redis: before daprd and the app, which export to Jaeger from the start.
_AFTER: Final = "redis"


def extras(layout: Layout) -> Extras:
    """Jaeger and Prometheus for a stack being built (nothing when observability is off): their
    services, right after Redis in the start order (before daprd and the apps, which export to
    Jaeger from the start); the daprd Configuration with tracing; the apps' exporter endpoint."""
    s = layout.settings
    if not s.observability:
        return Extras()
    directory = s.data_dir / "observability"
    directory.mkdir(parents=True, exist_ok=True)
    write_dapr_config(s)
    (directory / "jaeger.yaml").write_text(jaeger_config(s))
    (directory / "prometheus.yml").write_text(prometheus_config(layout))
    return Extras(
        services=_services(s),
        after=_AFTER,
        # The app's own switch: the per-order bookkeeping behind the in-flight gauge.
        app_env={"OTEL_EXPORTER_OTLP_ENDPOINT": otlp_endpoint(s), "OBSERVABILITY": "true"},
    )


def otlp_endpoint(settings: StackSettings) -> str:
    return f"http://127.0.0.1:{settings.jaeger_otlp_grpc_port}"


def _services(s: StackSettings) -> list[Service]:
    directory = s.data_dir / "observability"
    prometheus = shutil.which("prometheus") or "prometheus"
    return [
        Service(
            "jaeger",
            [str(jaeger_binary(s)), "--config", str(directory / "jaeger.yaml")],
            lambda: http_status(f"http://127.0.0.1:{s.jaeger_health_port}/status") == 200,
        ),
        Service(
            PROMETHEUS,
            [
                prometheus,
                f"--config.file={directory / 'prometheus.yml'}",
                f"--storage.tsdb.path={directory / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{s.prometheus_port}",
                # The Debian build's default would point at /usr/share; the UI works either way.
                "--storage.tsdb.retention.time=2d",
            ],
            lambda: http_status(f"http://127.0.0.1:{s.prometheus_port}/-/ready") == 200,
        ),
    ]


def write_dapr_config(settings: StackSettings) -> None:
    """config/daprd-config.yaml plus a `tracing` section sending daprd's spans to Jaeger."""
    settings.dapr_config_file.write_text(
        traced_dapr_config(
            f"{settings.tracing_sampling_rate:g}", f"127.0.0.1:{settings.jaeger_otlp_grpc_port}"
        )
    )


def traced_dapr_config(sampling_rate: str, otlp_endpoint: str) -> str:
    """config/daprd-config.yaml with a `tracing` section: spans to `otlp_endpoint` (host:port,
    OTLP/gRPC). The one recipe for `make run` and compose (config/daprd-config-tracing.yaml)."""
    base = (ROOT / "config" / "daprd-config.yaml").read_text()
    # The section is appended under `spec:`, so `spec` must be the file's last top-level key.
    if not re.search(r"^spec:\n(?:(?:[ #].*)?\n)*\Z", base + "\n", re.MULTILINE):
        raise ValueError("config/daprd-config.yaml must end with its `spec:` section")
    tracing = (
        "  # Added by devstack/stack/observability.py (observability on): spans to Jaeger over OTLP.\n"
        "  tracing:\n"
        f'    samplingRate: "{sampling_rate}"\n'
        "    otel:\n"
        f'      endpointAddress: "{otlp_endpoint}"\n'
        "      isSecure: false\n"
        "      protocol: grpc\n"
    )
    return base.rstrip("\n") + "\n" + tracing


def jaeger_config(settings: StackSettings) -> str:
    """Jaeger for `make run`: every listener on loopback, on the stack's ports."""
    s = settings
    return _jaeger_config(
        "# Generated by devstack/stack/observability.py: every listener on loopback, on the stack's"
        " ports.\n",
        JaegerPorts(
            f"127.0.0.1:{s.jaeger_health_port}",
            f"127.0.0.1:{s.jaeger_ui_port}",
            f"127.0.0.1:{s.jaeger_query_grpc_port}",
            f"127.0.0.1:{s.jaeger_otlp_grpc_port}",
            f"127.0.0.1:{s.jaeger_otlp_http_port}",
        ),
    )


@dataclass(frozen=True)
class JaegerPorts:
    """Where Jaeger listens (host:port each)."""

    health: str
    ui: str
    query_grpc: str
    otlp_grpc: str
    otlp_http: str


def _jaeger_config(header: str, listen: JaegerPorts) -> str:
    """Jaeger v2 (an OpenTelemetry collector build): OTLP in, in-memory storage, query API."""
    return f"""\
{header}service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  healthcheckv2:
    use_v2: true
    http:
      endpoint: {listen.health}
  jaeger_query:
    storage:
      traces: memory
    # Jaeger would trace its own queries into itself: noise beside the orders.
    enable_tracing: false
    http:
      endpoint: {listen.ui}
    grpc:
      endpoint: {listen.query_grpc}
  jaeger_storage:
    backends:
      memory:
        memory:
          max_traces: 100000
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: {listen.otlp_grpc}
      http:
        endpoint: {listen.otlp_http}
processors:
  batch:
exporters:
  jaeger_storage_exporter:
    trace_storage: memory
"""


def prometheus_config(stack: Layout) -> str:
    """Scrape jobs for every app replica, every daprd, placement, scheduler (and the launcher
    when it supervises), all on loopback. Each replica is scraped itself, not through nginx:
    its counters are its own process's."""
    s = stack.settings
    jobs = [
        ("order-processor", [f"127.0.0.1:{replica.app_port}" for replica in stack.replicas]),
        ("daprd", [f"127.0.0.1:{replica.dapr_metrics_port}" for replica in stack.replicas]),
        ("placement", [f"127.0.0.1:{s.placement_metrics_port}"]),
        ("scheduler", [f"127.0.0.1:{s.scheduler_metrics_port}"]),
    ]
    if stack.supervise:
        jobs.append(("devstack", [f"127.0.0.1:{s.supervisor_metrics_port}"]))
    header = "# Generated by devstack/stack/observability.py.\n"
    return _prometheus_config(header, s.prometheus_scrape_seconds, jobs)


def _prometheus_config(
    header: str, scrape_seconds: int, jobs: Sequence[tuple[str, Sequence[str]]]
) -> str:
    scrape = "".join(
        f"  - job_name: {job}\n    static_configs:\n      - targets: ["
        + ", ".join(f"'{target}'" for target in targets)
        + "]\n"
        for job, targets in jobs
    )
    return (
        header + "global:\n"
        f"  scrape_interval: {scrape_seconds}s\n"
        f"  evaluation_interval: {scrape_seconds}s\n"
        "scrape_configs:\n" + scrape
    )


# -- docker compose (docker-compose.observability.yml) ----------------------------------------

# Inside the compose network every process has its own container, so each listens on its
# image's default port; the names are the compose file's services.
COMPOSE_APPS: Final = ("app", "app-2", "app-3")
COMPOSE_SIDECARS: Final = ("daprd", "daprd-2", "daprd-3")
COMPOSE_APP_PORT: Final = 8000
DAPR_METRICS_PORT: Final = 9090  # daprd's, placement's and the scheduler's default
# Jaeger's own defaults, which its official image exposes.
COMPOSE_JAEGER: Final = JaegerPorts(
    health="0.0.0.0:13133",
    ui="0.0.0.0:16686",
    query_grpc="0.0.0.0:16685",
    otlp_grpc="0.0.0.0:4317",
    otlp_http="0.0.0.0:4318",
)
COMPOSE_FILES: Final = {
    "prometheus": "config/prometheus-compose.yml",
    "jaeger": "config/jaeger-compose.yaml",
    "daprd": "config/daprd-config-tracing.yaml",
}


def compose_files() -> dict[str, str]:
    """The configuration files docker-compose.observability.yml mounts, by repo path (a test
    checks the committed files are these)."""
    generated = "# Generated by devstack/stack/observability.py (compose_files); edit that, not this file.\n"
    prometheus = _prometheus_config(
        generated + "# app-2, app-3 and their sidecars are scraped too: down unless the profile\n"
        "# `replicas` runs.\n",
        StackSettings.model_fields["prometheus_scrape_seconds"].default,
        [
            ("order-processor", [f"{app}:{COMPOSE_APP_PORT}" for app in COMPOSE_APPS]),
            ("daprd", [f"{daprd}:{DAPR_METRICS_PORT}" for daprd in COMPOSE_SIDECARS]),
            ("placement", [f"placement:{DAPR_METRICS_PORT}"]),
            ("scheduler", [f"scheduler:{DAPR_METRICS_PORT}"]),
        ],
    )
    jaeger = _jaeger_config(
        generated + "# Listening on the container's addresses: the compose file publishes only"
        " the UI,\n# on loopback.\n",
        COMPOSE_JAEGER,
    )
    # daprd expands ${TRACING_SAMPLING_RATE} from its environment when it loads the file.
    daprd = generated + traced_dapr_config(
        "${TRACING_SAMPLING_RATE}", f"jaeger:{COMPOSE_JAEGER.otlp_grpc.rpartition(':')[2]}"
    )
    return {
        COMPOSE_FILES["prometheus"]: prometheus,
        COMPOSE_FILES["jaeger"]: jaeger,
        COMPOSE_FILES["daprd"]: daprd,
    }


def write_compose_files() -> None:
    for path, text in compose_files().items():
        (ROOT / path).write_text(text)


class Supervised(Protocol):
    """What the supervisor's metrics read from a running stack (devstack.stack.Stack)."""

    @property
    def settings(self) -> StackSettings: ...

    @property
    def supervisor(self) -> Supervisor | None: ...


class SupervisorMetrics(Collector):
    """The launcher's supervision, read from the supervisor at scrape time."""

    def __init__(self, stack: Supervised) -> None:
        self._stack = stack

    def collect(self) -> Iterable[Metric]:
        supervisor: Supervisor | None = self._stack.supervisor
        remedies = CounterMetricFamily(
            "devstack_watchdog_remedies",
            "Components the devstack watchdog killed to restart them (hung, or the daprd wedge).",
        )
        restarts = CounterMetricFamily(
            "devstack_restarts",
            "Components the devstack supervisor started again after they exited or were killed.",
            labels=["component"],
        )
        if supervisor is not None:
            remedies.add_metric([], supervisor.remedies)
            for name, count in sorted(supervisor.restarts.items()):
                restarts.add_metric([name], count)
        return [remedies, restarts]


def supervisor_metrics(stack: Supervised) -> tuple[WSGIServer, threading.Thread] | None:
    """Serve the supervisor's counters on loopback (`make run` with observability on), for the
    Prometheus job `devstack`. None when observability is off."""
    if not stack.settings.observability:
        return None
    registry = CollectorRegistry()
    registry.register(SupervisorMetrics(stack))
    return start_http_server(
        stack.settings.supervisor_metrics_port, addr="127.0.0.1", registry=registry
    )


__all__ = ["compose_files", "extras", "supervisor_metrics", "write_compose_files"]

if __name__ == "__main__":
    write_compose_files()
