"""Service configuration: every tunable is an environment variable with a default."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    # The quickstart's rule: orders above this total wait for a manager.
    approval_threshold: int = Field(default=50_000, ge=0)
    approval_timeout_seconds: float = Field(default=200.0, gt=0)
    # A step of an order that the state store or the sidecar keeps failing (past the activity's
    # quick retries, ~25 s) is tried again for this long, waiting from the first interval
    # doubling to the longest between tries, before the order is compensated and ended
    # step_failed. Fixed per order when it is accepted (it travels in the workflow's input).
    infrastructure_retry_hours: float = Field(default=24.0, gt=0)
    infrastructure_retry_first_interval_seconds: float = Field(default=10.0, gt=0)
    infrastructure_retry_max_interval_seconds: float = Field(default=300.0, gt=0)
    # Each activity run is cut short after this and retried as the store's or sidecar's absence
    # (all it waits on): a hung call cannot hold an order at its step for good.
    activity_timeout_seconds: float = Field(default=60.0, gt=0)
    # Fault injection for the fault matrix (app.workflows.failpoints, docs/fault-matrix.md):
    # the rules file the activities read. Unset, as in production: no failpoint, no cost.
    failpoints_file: Path | None = None
    # The manager endpoints' bearer token. Unset: read from `manager_token_file`, which is
    # created with a new token if it does not exist (app.manager_token); neither set, the
    # service refuses to start: no configuration lets anyone approve.
    manager_token: SecretStr | None = None
    manager_token_file: Path | None = None
    # Who the customers are. "off": nobody is known; anyone may order and read every order
    # (local walkthroughs). "jwt": every order route wants a bearer JWT, verified against
    # CUSTOMER_JWKS (issuer, audience, expiry, signature); its `sub` is the customer, who sees only
    # their own orders, and a `role` claim equal to CUSTOMER_MANAGER_ROLE makes a manager
    # (app.customer_tokens). MANAGER_TOKEN stays a manager's key either way.
    customer_auth: Literal["off", "jwt"] = "off"
    # The keys that sign customer tokens: a JWKS file's path, or an http(s) URL serving one
    # (fetched when first needed, cached for CUSTOMER_JWKS_CACHE_SECONDS, fetched again at once for
    # an unknown key id at most every 30 s). Only public keys belong there.
    customer_jwks: str | None = None
    customer_jwks_cache_seconds: float = Field(default=300.0, gt=0)
    # What every token must carry as `iss` and `aud`: the identity provider, and this service.
    customer_jwt_issuer: str | None = None
    customer_jwt_audience: str = "order-processor"
    # Asymmetric algorithms only: a shared-secret one (HS256) would let whoever can verify also
    # sign, and "none" is never accepted.
    customer_jwt_algorithms: list[
        Literal["RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "EdDSA"]
    ] = Field(default=["RS256", "ES256"], min_length=1)
    # Clock skew allowed on `exp`/`nbf`/`iat` between the identity provider and this service.
    customer_jwt_leeway_seconds: float = Field(default=10.0, ge=0, le=300)
    customer_manager_role: str = Field(default="manager", min_length=1)

    dapr_host: str = "127.0.0.1"
    # Sent to daprd on every call when set (daprd started with the same DAPR_API_TOKEN refuses
    # calls without it). The SDK's gRPC clients read the same variable from the environment.
    dapr_api_token: SecretStr | None = None
    dapr_http_port: int = 3500
    dapr_grpc_port: int = 50001
    statestore_name: str = "statestore"
    # How long start-up waits for the sidecar before giving up (daprd may start after the app).
    sidecar_wait_seconds: float = Field(default=60.0, gt=0)
    # Off: this process serves the API only and runs no workflow worker (another process on
    # the same app id does); orders and manager actions are accepted and wait for a worker.
    workflow_worker: bool = True
    # How often the sidecar's count of connected workers is checked, and how long it may stay
    # at zero before this process replaces its worker.
    worker_check_seconds: float = Field(default=2.0, gt=0)
    worker_grace_seconds: float = Field(default=6.0, ge=0)
    # How often manager actions the engine could not take at once are re-sent, and the start
    # outbox is looked at for orders whose workflow is still to be started.
    outbox_interval_seconds: float = Field(default=2.0, gt=0)
    # An order's workflow start, when the create could not make it (the engine did not answer
    # within a quarter of the request deadline), is tried again after this long, and as long
    # again between tries; whoever tries holds it that long (app.services.order_starts).
    start_retry_seconds: float = Field(default=5.0, gt=0)
    # Every request answers within this (plus any `?wait=` the client asked for): a frozen
    # sidecar or state store gets a prompt 503, not a hung connection.
    request_timeout_seconds: float = Field(default=2.0, gt=0)
    # On shutdown (SIGTERM), once the server has stopped taking requests: how long to wait for
    # changes still running behind requests already answered (a create or a decision past its
    # deadline's 503, a decision's delivery) before the clients close. The stack's own kill
    # deadline must allow for it: uvicorn's --timeout-graceful-shutdown plus this plus the
    # worker's stop (compose stop_grace_period, the chart's terminationGracePeriodSeconds).
    shutdown_drain_seconds: float = Field(default=7.0, ge=0)
    # How often the one poller of a watched order (live events, app.live) reads it.
    order_events_poll_seconds: float = Field(default=0.5, gt=0)
    # The auditor (GET /audit, python -m app.audit) calls an unfinished order late this long
    # after it was accepted, plus the approval wait when it needs one (its activities retry for
    # about 30 s each; a healthy order takes well under a second).
    audit_grace_seconds: float = Field(default=300.0, gt=0)
    log_level: str = "INFO"
    # Observability's per-order bookkeeping: the state store's in-flight sets behind the
    # `orders_in_flight` gauge (two compare-and-swaps per order). Off, the gauge is absent and
    # orders cost what they did; on, orders accepted while it was off are not in it.
    observability: bool = False
    # "json": one JSON object per line (containers, log shippers); "human": readable lines.
    log_format: Literal["human", "json"] = "human"
    # Tracing is on when this is set (an OTLP/gRPC collector, e.g. Jaeger's :4317): the standard
    # OpenTelemetry variable. Unset, no exporter and no instrumentation are installed.
    otel_exporter_otlp_endpoint: str | None = None
    # Not the app id: daprd reports its spans under the app id, and the two should be told apart.
    otel_service_name: str = "order-processor-app"

    @property
    def dapr_http_url(self) -> str:
        return f"http://{self.dapr_host}:{self.dapr_http_port}"

    @property
    def dapr_token(self) -> str | None:
        return self.dapr_api_token.get_secret_value() if self.dapr_api_token else None


@lru_cache
def get_settings() -> Settings:
    return Settings()
