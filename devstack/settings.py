"""Where the local stack listens and keeps its files; every value can be set from the environment."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent
ENV_FILE = ROOT / ".env"
APP_ID = "order-processor"


def pinned_dapr_version(env_file: Path = ENV_FILE) -> str:
    """The Dapr runtime version from `.env`, the single place it is pinned."""
    for line in env_file.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "DAPR_VERSION":
            return value.strip()
    raise RuntimeError(f"DAPR_VERSION is not set in {env_file}")


class StackSettings(BaseSettings):
    """Ports and paths of the local stack. Defaults match `dapr init --slim` + `dapr run`."""

    # No env_file: .env holds the version pin only, and a DAPR_VERSION exported in a shell
    # must not silently change which binaries run.
    model_config = SettingsConfigDict(extra="ignore")

    data_dir: Path = Field(default=ROOT / ".data", validation_alias="STACK_DATA_DIR")
    dapr_cache_dir: Path = Field(
        default=Path.home() / ".cache" / "order-processor" / "dapr",
        validation_alias="DAPR_CACHE_DIR",
    )
    jaeger_cache_dir: Path = Field(
        default=Path.home() / ".cache" / "order-processor" / "jaeger",
        validation_alias="JAEGER_CACHE_DIR",
    )
    # The Kubernetes dev cluster's binaries (`make k8s`; devstack/build/kubernetes.py).
    kubernetes_cache_dir: Path = Field(
        default=Path.home() / ".cache" / "order-processor" / "kubernetes",
        validation_alias="KUBERNETES_CACHE_DIR",
    )
    components_dir: Path = Field(default=ROOT / "components", validation_alias="COMPONENTS_DIR")
    redis_server: str = Field(default="redis-server", validation_alias="REDIS_SERVER")

    redis_port: int = Field(default=6379, validation_alias="REDIS_PORT")
    placement_port: int = Field(default=50005, validation_alias="PLACEMENT_PORT")
    placement_healthz_port: int = Field(default=58080, validation_alias="PLACEMENT_HEALTHZ_PORT")
    placement_metrics_port: int = Field(default=59090, validation_alias="PLACEMENT_METRICS_PORT")
    placement_raft_port: int = Field(default=8201, validation_alias="PLACEMENT_RAFT_PORT")
    scheduler_port: int = Field(default=50006, validation_alias="SCHEDULER_PORT")
    scheduler_healthz_port: int = Field(default=58081, validation_alias="SCHEDULER_HEALTHZ_PORT")
    scheduler_metrics_port: int = Field(default=59091, validation_alias="SCHEDULER_METRICS_PORT")
    scheduler_etcd_client_port: int = Field(
        default=2379, validation_alias="SCHEDULER_ETCD_CLIENT_PORT"
    )
    scheduler_etcd_peer_port: int = Field(default=2380, validation_alias="SCHEDULER_ETCD_PEER_PORT")
    dapr_http_port: int = Field(default=3500, validation_alias="DAPR_HTTP_PORT")
    dapr_grpc_port: int = Field(default=50001, validation_alias="DAPR_GRPC_PORT")
    dapr_internal_grpc_port: int = Field(default=50002, validation_alias="DAPR_INTERNAL_GRPC_PORT")
    dapr_metrics_port: int = Field(default=9090, validation_alias="DAPR_METRICS_PORT")
    app_port: int = Field(default=8000, validation_alias="APP_PORT")

    # Scale out: REPLICAS app + daprd pairs share Redis, placement and the scheduler, behind
    # nginx on APP_PORT (with 1, the app itself listens there and no proxy runs). Replica 1's
    # daprd keeps the DAPR_* ports; every other port of replica k (1-based) is
    # REPLICA_PORT_BASE + 10*(k-1) + 0 app, 1 daprd HTTP, 2 gRPC, 3 internal gRPC, 4 metrics.
    replicas: int = Field(default=1, ge=1, le=50, validation_alias="REPLICAS")
    replica_port_base: int = Field(default=18000, ge=1024, validation_alias="REPLICA_PORT_BASE")
    # nginx's own health endpoint (the supervisor's probe: it must not depend on the apps).
    proxy_health_port: int = Field(default=18999, validation_alias="PROXY_HEALTH_PORT")
    nginx: str = Field(default="nginx", validation_alias="NGINX")
    # Observability (`OBSERVABILITY=true make run`): Prometheus scraping the app and the Dapr
    # processes, Jaeger receiving the app's and daprd's traces (devstack/stack/observability.py).
    observability: bool = Field(default=False, validation_alias="OBSERVABILITY")
    prometheus_port: int = Field(default=9095, validation_alias="PROMETHEUS_PORT")
    prometheus_scrape_seconds: int = Field(default=5, ge=1, validation_alias="PROMETHEUS_SCRAPE")
    jaeger_ui_port: int = Field(default=16686, validation_alias="JAEGER_UI_PORT")
    jaeger_query_grpc_port: int = Field(default=16685, validation_alias="JAEGER_QUERY_GRPC_PORT")
    jaeger_otlp_grpc_port: int = Field(default=4317, validation_alias="JAEGER_OTLP_GRPC_PORT")
    jaeger_otlp_http_port: int = Field(default=4318, validation_alias="JAEGER_OTLP_HTTP_PORT")
    jaeger_health_port: int = Field(default=13133, validation_alias="JAEGER_HEALTH_PORT")
    # The launcher's own metrics (the supervisor's restarts and watchdog remedies, `make run`).
    supervisor_metrics_port: int = Field(default=9096, validation_alias="SUPERVISOR_METRICS_PORT")
    # Share of requests daprd traces (Dapr's samplingRate) when observability is on.
    tracing_sampling_rate: float = Field(
        default=1.0, ge=0, le=1, validation_alias="TRACING_SAMPLING_RATE"
    )

    # A port held only by a connection (not a listener) frees itself: wait this long for it
    # before refusing to start. A listener is refused at once, named with its pid and command.
    port_wait_seconds: float = Field(default=10.0, ge=0, validation_alias="PORT_WAIT")
    startup_timeout_seconds: float = Field(default=90.0, validation_alias="STACK_STARTUP_TIMEOUT")
    # How long a finished order's workflow history stays in the state store (0: purged at once);
    # the order itself keeps its outcome. Goes into the Dapr Configuration daprd runs with.
    order_history_retention_seconds: int = Field(
        default=86_400, ge=0, validation_alias="ORDER_HISTORY_RETENTION_SECONDS"
    )

    # Optional Dapr API token: daprd then refuses calls without a `dapr-api-token` header
    # (except /v1.0/healthz); the stack hands it to daprd and the app and its probes send it.
    dapr_api_token: str | None = Field(default=None, validation_alias="DAPR_API_TOKEN")
    # The helm binary that tests/deploy lints and renders the chart with (devstack/build/helm.py).
    helm_cache_dir: Path = Field(
        default=Path.home() / ".cache" / "order-processor" / "helm",
        validation_alias="HELM_CACHE_DIR",
    )

    # Supervision (`make run`): a component that exits is started again after a delay that
    # doubles from the first value up to the second, unless it failed `crash_limit` times within
    # `crash_window` seconds: then the stack stops, naming it.
    restart_backoff_seconds: float = Field(default=1.0, gt=0, validation_alias="RESTART_BACKOFF")
    restart_backoff_max_seconds: float = Field(
        default=30.0, gt=0, validation_alias="RESTART_BACKOFF_MAX"
    )
    crash_limit: int = Field(default=5, ge=1, validation_alias="CRASH_LIMIT")
    crash_window_seconds: float = Field(default=60.0, gt=0, validation_alias="CRASH_WINDOW")
    # Watchdog: every probe must answer within the timeout; a component that was healthy and
    # then fails its probe for `hang` seconds is killed (SIGKILL: a SIGSTOPped process handles
    # nothing else) and restarted. 10 s + daprd's start + the worker's reconnect keeps a frozen
    # daprd's outage well under a minute, while a probe slowed by load is not mistaken for a hang.
    watchdog_probe_timeout_seconds: float = Field(
        default=2.0, gt=0, validation_alias="WATCHDOG_PROBE_TIMEOUT"
    )
    watchdog_hang_seconds: float = Field(default=10.0, ge=0, validation_alias="WATCHDOG_HANG")
    # The Dapr 1.18.2 wedge: the app runs its worker but daprd counts none connected, or lacks
    # the workflow actor types, this long while every component is healthy: restart daprd.
    # A backstop: the app's own watchdog replaces its worker twice (6 s each, checked every
    # 2 s) and then asks daprd to shut down, about 24 s in; it goes first, so the two never
    # restart daprd back to back. 40 s + a restart still has the API ready within a minute.
    watchdog_wedge_seconds: float = Field(default=40.0, ge=0, validation_alias="WATCHDOG_WEDGE")

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def dapr_config_file(self) -> Path:
        """The Configuration daprd runs with (the same file under docker compose); with
        observability on, a copy with tracing switched on (devstack.stack.observability writes it)."""
        if self.observability:
            return self.data_dir / "observability" / "daprd-config.yaml"
        return ROOT / "config" / "daprd-config.yaml"

    @classmethod
    def port_variables(cls) -> list[str]:
        """The environment variable of every port setting, in field order (to move them all)."""
        return [
            str(field.validation_alias)
            for name, field in cls.model_fields.items()
            if name.endswith("_port")
        ]

    def ports(self) -> dict[str, int]:
        """Every port the stack binds, keyed by the environment variable that moves it (the
        observability ports only when it is on)."""
        return {
            str(field.validation_alias): getattr(self, name)
            for name, field in type(self).model_fields.items()
            if name.endswith("_port") and (self.observability or name not in OBSERVABILITY_PORTS)
        }


OBSERVABILITY_PORTS = frozenset(
    {
        "prometheus_port",
        "jaeger_ui_port",
        "jaeger_query_grpc_port",
        "jaeger_otlp_grpc_port",
        "jaeger_otlp_http_port",
        "jaeger_health_port",
        "supervisor_metrics_port",
    }
)
