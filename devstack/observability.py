"""The observability processes of the local stack: Prometheus and Jaeger (`OBSERVABILITY=true`).

Kept out of devstack/stack.py, which only calls `attach` (and `supervisor_metrics` from the
launcher). With observability on:

- Jaeger (built from its Go module, devstack/jaeger_build.py) receives OTLP on loopback and keeps
  traces in memory; its query API and UI are on JAEGER_UI_PORT.
- daprd runs with a copy of config/daprd-config.yaml whose `tracing` section sends its spans to
  Jaeger (samplingRate TRACING_SAMPLING_RATE), and the app gets OTEL_EXPORTER_OTLP_ENDPOINT, so
  one order's app and sidecar spans share a trace.
- Prometheus (Debian's package) scrapes the app's /metrics, daprd, placement and scheduler, and,
  under `make run`, the launcher's supervisor; its data lives in the stack's data dir.

Both start before the Dapr processes (daprd exports to Jaeger from its first span) and stop
after them; the supervisor restarts them like any other component.
"""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from devstack.jaeger_build import jaeger_binary
from devstack.settings import StackSettings

if TYPE_CHECKING:
    from devstack.stack import Service, Stack
    from devstack.supervisor import Supervisor

NAMES: Final = ("jaeger", "prometheus")
PROMETHEUS: Final = "prometheus"
# Started right after Redis: before daprd and the app, which export to Jaeger from the start.
_AFTER: Final = "redis"


def attach(stack: Stack) -> None:
    """Add Jaeger and Prometheus to `stack` (when observability is on): their services (right
    after Redis in the start order: before daprd and the apps, which export to Jaeger from the
    start), the daprd Configuration with tracing, the apps' exporter endpoint."""
    s = stack.settings
    if not s.observability:
        return
    directory = s.data_dir / "observability"
    directory.mkdir(parents=True, exist_ok=True)
    write_dapr_config(s)
    (directory / "jaeger.yaml").write_text(jaeger_config(s))
    (directory / "prometheus.yml").write_text(prometheus_config(stack))
    services = list(stack.services.items())
    at = next((i + 1 for i, (name, _) in enumerate(services) if name == _AFTER), 0)
    added = [(service.name, service) for service in _services(stack)]
    # The stack starts its services in this dict's order and stops them in reverse.
    stack.services = dict([*services[:at], *added, *services[at:]])
    for replica in stack.replicas:
        app_env = stack.services[replica.app_name].env
        app_env.setdefault("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_endpoint(s))
        # The app's own switch: the per-order bookkeeping behind the in-flight gauge.
        app_env.setdefault("OBSERVABILITY", "true")


def otlp_endpoint(settings: StackSettings) -> str:
    return f"http://127.0.0.1:{settings.jaeger_otlp_grpc_port}"


def _services(stack: Stack) -> list[Service]:
    from devstack.stack import Service, http_status

    s = stack.settings
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


def liveness(stack: Stack, name: str) -> str | None:
    """The watchdog's probe for an observability process: its readiness endpoint."""
    return None if stack.services[name].ready() else f"{name} is not ready"


def write_dapr_config(settings: StackSettings) -> None:
    """config/daprd-config.yaml plus a `tracing` section sending daprd's spans to Jaeger."""
    from devstack.settings import ROOT

    base = (ROOT / "config" / "daprd-config.yaml").read_text()
    # The section is appended under `spec:`, so `spec` must be the file's last top-level key.
    if not re.search(r"^spec:\n(?:(?:[ #].*)?\n)*\Z", base + "\n", re.MULTILINE):
        raise ValueError("config/daprd-config.yaml must end with its `spec:` section")
    tracing = (
        "  # Added by devstack/observability.py (OBSERVABILITY=true): spans to Jaeger over OTLP.\n"
        "  tracing:\n"
        f'    samplingRate: "{settings.tracing_sampling_rate:g}"\n'
        "    otel:\n"
        f'      endpointAddress: "127.0.0.1:{settings.jaeger_otlp_grpc_port}"\n'
        "      isSecure: false\n"
        "      protocol: grpc\n"
    )
    settings.dapr_config_file.write_text(base.rstrip("\n") + "\n" + tracing)


def jaeger_config(settings: StackSettings) -> str:
    """Jaeger v2 (an OpenTelemetry collector build): OTLP in, in-memory storage, query API."""
    s = settings
    return f"""\
# Generated by devstack/observability.py: every listener on loopback, on the stack's ports.
service:
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
      endpoint: 127.0.0.1:{s.jaeger_health_port}
  jaeger_query:
    storage:
      traces: memory
    # Jaeger would trace its own queries into itself: noise beside the orders.
    enable_tracing: false
    http:
      endpoint: 127.0.0.1:{s.jaeger_ui_port}
    grpc:
      endpoint: 127.0.0.1:{s.jaeger_query_grpc_port}
  jaeger_storage:
    backends:
      memory:
        memory:
          max_traces: 100000
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{s.jaeger_otlp_grpc_port}
      http:
        endpoint: 127.0.0.1:{s.jaeger_otlp_http_port}
processors:
  batch:
exporters:
  jaeger_storage_exporter:
    trace_storage: memory
"""


def prometheus_config(stack: Stack) -> str:
    """Scrape jobs for every app replica, every daprd, placement, scheduler (and the launcher
    when it supervises), all on loopback. Each replica is scraped itself, not through nginx:
    its counters are its own process's."""
    s = stack.settings
    jobs = [
        ("order-processor", [replica.app_port for replica in stack.replicas]),
        ("daprd", [replica.dapr_metrics_port for replica in stack.replicas]),
        ("placement", [s.placement_metrics_port]),
        ("scheduler", [s.scheduler_metrics_port]),
    ]
    if stack.supervise:
        jobs.append(("devstack", [s.supervisor_metrics_port]))
    scrape = "".join(
        f"  - job_name: {job}\n    static_configs:\n      - targets: ["
        + ", ".join(f"'127.0.0.1:{port}'" for port in ports)
        + "]\n"
        for job, ports in jobs
    )
    return (
        "# Generated by devstack/observability.py.\n"
        "global:\n"
        f"  scrape_interval: {s.prometheus_scrape_seconds}s\n"
        f"  evaluation_interval: {s.prometheus_scrape_seconds}s\n"
        "scrape_configs:\n" + scrape
    )


class SupervisorMetrics(Collector):
    """The launcher's supervision, read from the supervisor at scrape time."""

    def __init__(self, stack: Stack) -> None:
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


def supervisor_metrics(stack: Stack) -> tuple[WSGIServer, threading.Thread] | None:
    """Serve the supervisor's counters on loopback (`make run` with observability on), for the
    Prometheus job `devstack`. None when observability is off."""
    if not stack.settings.observability:
        return None
    registry = CollectorRegistry()
    registry.register(SupervisorMetrics(stack))
    return start_http_server(
        stack.settings.supervisor_metrics_port, addr="127.0.0.1", registry=registry
    )


__all__ = ["attach", "liveness", "supervisor_metrics"]
