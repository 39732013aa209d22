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

    startup_timeout_seconds: float = Field(default=90.0, validation_alias="STACK_STARTUP_TIMEOUT")
    # How long a finished order's workflow history stays in the state store (0: purged at once);
    # the order itself keeps its outcome. Goes into the Dapr Configuration daprd runs with.
    order_history_retention_seconds: int = Field(
        default=86_400, ge=0, validation_alias="ORDER_HISTORY_RETENTION_SECONDS"
    )

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def dapr_config_file(self) -> Path:
        return self.data_dir / "dapr-config.yaml"

    def ports(self) -> dict[str, int]:
        """Every port the stack binds, keyed by the environment variable that moves it."""
        return {
            str(field.validation_alias): getattr(self, name)
            for name, field in type(self).model_fields.items()
            if name.endswith("_port")
        }
