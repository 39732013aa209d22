"""Replicas of the service: app + daprd pairs that share Redis, placement and the scheduler, and
the nginx configuration that puts one address in front of them.

Dapr spreads workflow instances over the replicas' sidecars through placement; the proxy spreads
HTTP requests and steps around a replica that does not answer (passive failover). Nothing else is
needed: every replica reads and writes the same state store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from devstack.settings import StackSettings

# Offsets inside a replica's block of ports (see StackSettings.replica_port_base).
_PORT_STRIDE = 10
_APP, _HTTP, _GRPC, _INTERNAL, _METRICS = range(5)
# The routes that stream Server-Sent Events: no buffering, and a read timeout far above the
# streams' 15 s keep-alive pings.
EVENT_ROUTES = r"^/(events|orders/[^/]+/events)$"


@dataclass(frozen=True)
class Replica:
    """One app and its sidecar, with the ports they listen on."""

    number: int  # 1-based, as it appears in names and logs
    suffix: str  # "" when it is the only replica (today's names: app, daprd), else "-<number>"
    app_port: int
    dapr_http_port: int
    dapr_grpc_port: int
    dapr_internal_grpc_port: int
    dapr_metrics_port: int

    @property
    def app_name(self) -> str:
        return f"app{self.suffix}"

    @property
    def daprd_name(self) -> str:
        return f"daprd{self.suffix}"

    @property
    def app_url(self) -> str:
        return f"http://127.0.0.1:{self.app_port}"

    @property
    def dapr_http_url(self) -> str:
        return f"http://127.0.0.1:{self.dapr_http_port}"

    def ports(self) -> dict[str, int]:
        return {
            f"{self.app_name} port": self.app_port,
            f"{self.daprd_name} HTTP port": self.dapr_http_port,
            f"{self.daprd_name} gRPC port": self.dapr_grpc_port,
            f"{self.daprd_name} internal gRPC port": self.dapr_internal_grpc_port,
            f"{self.daprd_name} metrics port": self.dapr_metrics_port,
        }


def replica_layout(settings: StackSettings) -> list[Replica]:
    """The replicas `settings` asks for. One replica listens exactly where the single app and
    daprd always did; with more, replica 1's daprd keeps the DAPR_* ports (so the sidecar URL
    `make run` prints, and the SDK clients of the tests, stay valid) and everything else comes
    from the block at REPLICA_PORT_BASE, the API port going to the proxy."""
    s = settings
    if s.replicas == 1:
        return [
            Replica(
                1, "", s.app_port, s.dapr_http_port, s.dapr_grpc_port,
                s.dapr_internal_grpc_port, s.dapr_metrics_port,
            )
        ]  # fmt: skip
    layout = []
    for number in range(1, s.replicas + 1):
        base = s.replica_port_base + _PORT_STRIDE * (number - 1)
        first = number == 1
        layout.append(
            Replica(
                number,
                f"-{number}",
                base + _APP,
                s.dapr_http_port if first else base + _HTTP,
                s.dapr_grpc_port if first else base + _GRPC,
                s.dapr_internal_grpc_port if first else base + _INTERNAL,
                s.dapr_metrics_port if first else base + _METRICS,
            )
        )
    return layout


def replica_block_size(replicas: int) -> int:
    """How many consecutive ports from REPLICA_PORT_BASE `replicas` replicas use."""
    return _PORT_STRIDE * replicas


def nginx_config(
    listen: str,
    health_listen: str,
    upstreams: Sequence[str],
    state_dir: str,
    access_log: str,
) -> str:
    """nginx in front of the apps at `upstreams` (host:port each), listening on `listen` for the
    API and on `health_listen` for its own health; pid and temporary files go to `state_dir`.
    The same text serves `make run` and docker compose (config/nginx-compose.conf).

    Failover is passive: a replica that refuses the connection, resets it or does not answer
    in time is marked down for `fail_timeout` and the request goes to the next one. So is a
    replica that answers 502: the app's answer when *its own* sidecar is not reachable (killed,
    restarting), and only for a request that is safe to repeat as it was (app.api.errors);
    that replica is broken alone, and another one serves the request. The app's 503 is passed
    on, not retried: it means the engine or the store cannot answer (every replica shares
    them, so another replica would say the same), and counting it as a failure marked all
    replicas down at once while Dapr moved a lost replica's workflows (measured: a burst of "no
    live upstreams" 502s).

    POSTs are retried too (`non_idempotent`), and each attempt carries the same
    `X-Request-Id` (nginx's `$request_id`, one per client request), which the app takes as the
    order id of a create that names none: a create repeated on another replica finds the order
    the first attempt may have recorded instead of making a second one. A create with its own
    `order_id` or `Idempotency-Key` returns the same order when repeated, and a repeated
    approve or cancel finds the decision already recorded (409 naming it).
    """
    servers = "\n".join(
        f"        server {upstream} max_fails=1 fail_timeout=3s;" for upstream in upstreams
    )
    temp = f"{state_dir}/temp"
    return f"""# Generated by devstack/stack/replicas.py (nginx_config); edit that, not this file.
daemon off;
# One worker is plenty for the API's request rate, and leaves the 2 cores to the replicas.
worker_processes 1;
pid {state_dir}/nginx.pid;
error_log stderr warn;

events {{
    worker_connections 4096;
}}

http {{
    log_format upstream '$time_iso8601 $request_method $uri $status $request_time '
                        'upstream=$upstream_addr upstream_status=$upstream_status '
                        'upstream_time=$upstream_response_time';
    access_log {access_log} upstream;
    client_body_temp_path {temp}-body;
    proxy_temp_path {temp}-proxy;
    fastcgi_temp_path {temp}-fastcgi;
    uwsgi_temp_path {temp}-uwsgi;
    scgi_temp_path {temp}-scgi;
    client_max_body_size 64k;

    upstream order_api {{
        # Event streams hold a connection for minutes: send new ones to the least busy replica.
        least_conn;
{servers}
        keepalive 64;
    }}

    server {{
        listen {listen} reuseport;

        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $http_host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        # One id per client request, the same on every replica tried: a create's order id when
        # the client names none, so a create repeated on another replica is the same order.
        proxy_set_header X-Request-Id $request_id;
        # A replica that is gone refuses at once; one that hangs is given a second.
        proxy_connect_timeout 1s;
        # Above the longest answer the API gives: GET /orders/{{id}}?wait= waits up to 30 s.
        proxy_read_timeout 60s;
        # 502: the replica's own sidecar is gone (the app says so only when repeating is safe).
        proxy_next_upstream error timeout http_502 non_idempotent;
        proxy_next_upstream_tries {len(upstreams)};
        proxy_next_upstream_timeout 10s;

        location ~ {EVENT_ROUTES} {{
            proxy_pass http://order_api;
            proxy_buffering off;
            proxy_cache off;
            proxy_read_timeout 1h;
        }}

        location / {{
            proxy_pass http://order_api;
        }}
    }}

    server {{
        listen {health_listen};
        access_log off;
        location = /healthz {{
            return 204;
        }}
        location = /status {{
            stub_status;
        }}
    }}
}}
"""


# The compose file's proxy: three replicas (profile "replicas"), by service name.
COMPOSE_UPSTREAMS = ("app:8000", "app-2:8000", "app-3:8000")


def compose_nginx_config() -> str:
    """config/nginx-compose.conf, which docker-compose.yml mounts into its proxy (a test checks
    the committed file is this)."""
    return nginx_config("8080", "8081", COMPOSE_UPSTREAMS, "/tmp", "/dev/stdout")
