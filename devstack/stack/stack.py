"""Start and stop the local Dapr stack as plain processes: Redis, placement, scheduler, daprd, app
(with REPLICAS > 1: one daprd and app per replica, and nginx in front of the apps).

The same class serves `make run` (via `python -m devstack run`) and every private stack of the
tests, the benchmark and the soak (devstack/stack/private.py), so what they exercise is exactly
what a developer runs.
"""

from __future__ import annotations

import os
import secrets
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any

from devstack.build.dapr import bin_dir
from devstack.settings import APP_ID, StackSettings, pinned_dapr_version
from devstack.stack import observability
from devstack.stack.ports import PortsBusy, port_in_use, wait_until_free
from devstack.stack.process import (
    Extras,
    ExtrasFactory,
    Layout,
    Service,
    http_json,
    http_status,
    kill_service,
    launch_service,
    redis_answers,
    service_log_tail,
    terminate_service,
)
from devstack.stack.replicas import Replica, nginx_config, replica_layout
from devstack.stack.supervisor import Condition, Policy, Probe, Supervisor

# The services of a one-replica stack, in start order (Stack.service_order has a stack's own).
SERVICE_ORDER = ("redis", "placement", "scheduler", "daprd", "app")
INFRASTRUCTURE = ("redis", "placement", "scheduler")
# What every stack is given unless its caller says otherwise: Prometheus and Jaeger when
# OBSERVABILITY is on (devstack/stack/observability.py; nothing when it is off).
DEFAULT_EXTRAS: tuple[ExtrasFactory, ...] = (observability.extras,)
PROXY = "proxy"
# The workflow actor types the app's worker registers with daprd (namespace "default").
WORKFLOW_ACTOR_TYPES = (
    f"dapr.internal.default.{APP_ID}.workflow",
    f"dapr.internal.default.{APP_ID}.activity",
)


class StackError(RuntimeError):
    pass


def _ephemeral_ports_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def free_port_block(count: int, attempts: int = 200) -> int:
    """The first of `count` consecutive ports that are all free right now (the replicas' block).

    Taken below the kernel's ephemeral range: there, any outgoing connection (or another
    test's `free_ports`) can take a port of the block between this check and the replica's
    start, and it did (uvicorn: address already in use)."""
    rng = secrets.SystemRandom()
    low, high = 10_000, max(_ephemeral_ports_start(), 10_000 + 2 * count)
    for _ in range(attempts):
        start = rng.randrange(low, high - count)
        if not any(port_in_use(port) for port in range(start, start + count)):
            return start
    raise StackError(f"no {count} consecutive free ports found")


def free_ports(count: int) -> list[int]:
    """Distinct ports the kernel reports free right now (for tests; a race is unlikely, not impossible)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def workflow_engine_problem(metadata: Any) -> str | None:
    """What daprd's own metadata says is wrong with the workflow engine, None if nothing.

    The 1.18.2 wedge (README): the app's worker is connected, yet daprd counts no connected
    worker or has lost the workflow actor types, so no work item reaches the app.
    """
    if not isinstance(metadata, dict):
        return None
    workflows = metadata.get("workflows") or {}
    workers = int(workflows.get("connectedWorkers", 0) or 0)
    if workers < 1:
        return "daprd counts no connected workflow worker while the app runs one"
    actors = (metadata.get("actorRuntime") or {}).get("activeActors") or []
    registered = {str(actor.get("type")) for actor in actors if isinstance(actor, dict)}
    missing = [kind for kind in WORKFLOW_ACTOR_TYPES if kind not in registered]
    if missing:
        return f"daprd lacks the workflow actor types {', '.join(missing)}"
    return None


class Stack:
    """The processes of the local stack, started in dependency order and stopped in reverse:
    Redis, placement and the scheduler, then each replica's daprd and app, then the proxy."""

    def __init__(
        self,
        settings: StackSettings | None = None,
        app_env: Mapping[str, str] | None = None,
        dapr_bin_dir: Path | None = None,
        report: Callable[[str], None] | None = None,
        supervise: bool = False,
        extras: Sequence[ExtrasFactory] = DEFAULT_EXTRAS,
    ) -> None:
        """`supervise`: once started, restart what exits and replace what hangs (`make run`;
        the supervision tests). Without it a dead component stays dead until restarted by hand.
        `extras`: what the stack is given besides its own processes, each made once, here."""
        self.settings = settings or StackSettings()
        if not self.settings.dapr_api_token:
            # The Dapr API is never open, not even on loopback: without the token any local
            # process could raise a manager's event. One per stack, handed to daprd and the app.
            token = secrets.token_urlsafe(24)
            self.settings = self.settings.model_copy(update={"dapr_api_token": token})
        self.version = pinned_dapr_version()
        self.bin_dir = dapr_bin_dir or bin_dir(self.settings, self.version)
        self.app_env = dict(app_env or {})
        self._report = report or (lambda message: None)
        self.supervise = supervise
        self.supervisor: Supervisor | None = None
        self.replicas = replica_layout(self.settings)
        layout = Layout(self.settings, self.replicas, supervise)
        given = [make(layout) for make in extras]
        self.extra_names = frozenset(service.name for extra in given for service in extra.services)
        self.services = {service.name: service for service in self._define_services(given)}

    # -- definition -------------------------------------------------------------------------

    @property
    def redis_address(self) -> str:
        return f"127.0.0.1:{self.settings.redis_port}"

    @property
    def app_url(self) -> str:
        """The API: the app itself with one replica, the proxy in front of them with more."""
        return f"http://127.0.0.1:{self.settings.app_port}"

    @property
    def proxied(self) -> bool:
        return len(self.replicas) > 1

    @property
    def service_order(self) -> tuple[str, ...]:
        """This stack's services in start order."""
        return tuple(self.services)

    @property
    def proxy_dir(self) -> Path:
        return self.settings.data_dir / "proxy"

    def replica_of(self, name: str) -> Replica | None:
        """The replica whose app or daprd `name` is (None for the shared services)."""
        for replica in self.replicas:
            if name in (replica.app_name, replica.daprd_name):
                return replica
        return None

    @property
    def manager_token_file(self) -> Path:
        """Where the apps keep a generated manager token (mode 0600), MANAGER_TOKEN unset."""
        return self.settings.data_dir / "manager-token"

    @property
    def dapr_http_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.dapr_http_port}"

    @property
    def dapr_headers(self) -> dict[str, str]:
        """Headers for daprd's API: the token when the stack sets one."""
        token = self.settings.dapr_api_token
        return {"dapr-api-token": token} if token else {}

    def _token_env(self) -> dict[str, str]:
        token = self.settings.dapr_api_token
        return {"DAPR_API_TOKEN": token} if token else {}

    def _define_services(self, extras: Sequence[Extras]) -> list[Service]:
        """Its own services in start order, each extra's right after the one it names."""
        services = self._own_services()
        for extra in extras:
            at = next((i + 1 for i, x in enumerate(services) if x.name == extra.after), 0)
            services[at:at] = extra.services
            for name, args in extra.args.items():
                services[[x.name for x in services].index(name)].argv += args
            for replica in self.replicas:
                app_env = next(x for x in services if x.name == replica.app_name).env
                for variable, value in extra.app_env.items():
                    app_env.setdefault(variable, value)
        return services

    def _own_services(self) -> list[Service]:
        s = self.settings
        data = s.data_dir
        dapr = self.bin_dir
        quiet_metrics = ["--metrics-listen-address", "127.0.0.1"]
        services = [
            Service(
                "redis",
                [
                    s.redis_server, "--port", str(s.redis_port), "--bind", "127.0.0.1",
                    "--dir", str(data / "redis"),
                    # AOF: every acknowledged write is in the log before the reply, so a restart
                    # (or kill -9 of Redis) loses nothing; fsync each second bounds what an OS
                    # crash could lose.
                    "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
                    "--daemonize", "no", "--protected-mode", "yes",
                ],
                lambda: redis_answers(s.redis_port),
            ),
            Service(
                "placement",
                [
                    str(dapr / "placement"), "--port", str(s.placement_port),
                    "--listen-address", "127.0.0.1",
                    "--healthz-port", str(s.placement_healthz_port),
                    "--healthz-listen-address", "127.0.0.1",
                    "--metrics-port", str(s.placement_metrics_port), *quiet_metrics,
                    "--initial-cluster", f"dapr-placement-0=127.0.0.1:{s.placement_raft_port}",
                ],
                lambda: http_status(f"http://127.0.0.1:{s.placement_healthz_port}/healthz") == 200,
            ),
            Service(
                "scheduler",
                [
                    str(dapr / "scheduler"), "--port", str(s.scheduler_port),
                    "--listen-address", "127.0.0.1",
                    "--healthz-port", str(s.scheduler_healthz_port),
                    "--healthz-listen-address", "127.0.0.1",
                    "--metrics-port", str(s.scheduler_metrics_port), *quiet_metrics,
                    "--etcd-data-dir", str(data / "scheduler"),
                    "--etcd-client-port", str(s.scheduler_etcd_client_port),
                    "--etcd-initial-cluster",
                    f"dapr-scheduler-server-0=http://127.0.0.1:{s.scheduler_etcd_peer_port}",
                    "--identity-directory-write", str(data / "scheduler-identity"),
                ],
                lambda: http_status(f"http://127.0.0.1:{s.scheduler_healthz_port}/healthz") == 200,
            ),
        ]  # fmt: skip
        for replica in self.replicas:
            services.extend(self._replica_services(replica))
        if self.proxied:
            services.append(self._proxy_service())
        return services

    def _replica_services(self, replica: Replica) -> list[Service]:
        """One replica's daprd and app: the sidecar first, the app talks only to its own."""
        s = self.settings
        dapr = self.bin_dir
        quiet_metrics = ["--metrics-listen-address", "127.0.0.1"]
        return [
            Service(
                replica.daprd_name,
                [
                    str(dapr / "daprd"), "--app-id", APP_ID,
                    "--dapr-http-port", str(replica.dapr_http_port),
                    "--dapr-grpc-port", str(replica.dapr_grpc_port),
                    "--dapr-internal-grpc-port", str(replica.dapr_internal_grpc_port),
                    "--dapr-listen-addresses", "127.0.0.1",
                    "--metrics-port", str(replica.dapr_metrics_port), *quiet_metrics,
                    "--resources-path", str(s.components_dir),
                    "--config", str(s.dapr_config_file),
                    "--placement-host-address", f"127.0.0.1:{s.placement_port}",
                    "--scheduler-host-address", f"127.0.0.1:{s.scheduler_port}",
                ],
                lambda: http_status(f"{replica.dapr_http_url}/v1.0/healthz") == 204,
                # The component YAML reads the Redis address with envRef, so one file serves the
                # local stack, the Dapr CLI and docker compose.
                env={
                    "REDIS_HOST": self.redis_address,
                    # Expanded by daprd in the Configuration file (config/daprd-config.yaml).
                    "ORDER_HISTORY_RETENTION_SECONDS": str(s.order_history_retention_seconds),
                    **self._token_env(),
                },
            ),
            Service(
                replica.app_name,
                [
                    sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory",
                    "--host", "127.0.0.1", "--port", str(replica.app_port), "--no-access-log",
                    # Longer than clients' pools keep idle connections, so the server is not
                    # the one closing a connection a client is about to reuse.
                    "--timeout-keep-alive", "75",
                    # On SIGTERM: 3 s for requests in flight (every change answers within the
                    # 2 s request deadline), then the app drains what outlived its request
                    # (SHUTDOWN_DRAIN_SECONDS, 7 s), within stop_service's 15 s grace.
                    "--timeout-graceful-shutdown", "3",
                ],
                lambda: http_status(f"{replica.app_url}/readyz") == 200,
                env={
                    "DAPR_HTTP_PORT": str(replica.dapr_http_port),
                    "DAPR_GRPC_PORT": str(replica.dapr_grpc_port),
                    "REDIS_HOST": self.redis_address,
                    **self._token_env(),
                    # Used when MANAGER_TOKEN is not set: every replica reads the same token
                    # from there, and the first to start generates it (app.manager_token).
                    "MANAGER_TOKEN_FILE": str(self.manager_token_file),
                    **self.app_env,
                },
            ),
        ]  # fmt: skip

    def _proxy_service(self) -> Service:
        """nginx on the API port, in front of every replica's app (config: devstack.stack.replicas)."""
        s = self.settings
        return Service(
            PROXY,
            [
                s.nginx, "-e", "stderr",
                "-p", str(self.proxy_dir), "-c", str(self.proxy_dir / "nginx.conf"),
            ],
            lambda: http_status(f"http://127.0.0.1:{s.proxy_health_port}/healthz") == 204,
        )  # fmt: skip

    def write_proxy_config(self) -> None:
        self.settings.log_dir.mkdir(parents=True, exist_ok=True)
        self.proxy_dir.mkdir(parents=True, exist_ok=True)
        config = nginx_config(
            f"127.0.0.1:{self.settings.app_port}",
            f"127.0.0.1:{self.settings.proxy_health_port}",
            [f"127.0.0.1:{replica.app_port}" for replica in self.replicas],
            str(self.proxy_dir),
            str(self.log_path("proxy-access")),
        )
        (self.proxy_dir / "nginx.conf").write_text(config)

    # -- lifecycle --------------------------------------------------------------------------

    def ports(self) -> dict[str, int]:
        """Every port this stack binds, named by its variable or its replica."""
        named = self.settings.ports()
        if not self.proxied:
            named.pop("PROXY_HEALTH_PORT", None)
        # Replica 1 (the only one, or the first) keeps some of the variables' ports: a port is
        # named by its variable where it has one, by its replica otherwise.
        by_port = {
            port: name for replica in self.replicas for name, port in replica.ports().items()
        }
        by_port.update({port: name for name, port in named.items()})
        return {name: port for port, name in by_port.items()}

    def check_ports_free(self) -> None:
        """Every port free, after waiting a little for those only connections hold (an
        outgoing connection can take a port of Dapr's, which lie in the ephemeral range)."""
        try:
            wait_until_free(self.ports(), self.settings.port_wait_seconds, self._report)
        except PortsBusy as error:
            raise StackError(str(error)) from None

    def check_binaries(self) -> None:
        missing = [
            name
            for name in ("daprd", "placement", "scheduler")
            if not (self.bin_dir / name).exists()
        ]
        if missing:
            raise StackError(f"Dapr binaries missing in {self.bin_dir}: {missing}; run `make dapr`")

    def start(self, services: tuple[str, ...] | None = None) -> None:
        """Start `services` (all by default; the benchmark runs the engine without the app)."""
        services = self.service_order if services is None else services
        self.check_binaries()
        self.check_ports_free()
        for directory in ("redis", "scheduler", "logs"):
            (self.settings.data_dir / directory).mkdir(parents=True, exist_ok=True)
        if PROXY in services:
            self.write_proxy_config()
        try:
            for name in services:
                self.start_service(name)
        except BaseException:
            self.stop()
            raise
        if self.supervise:
            self.supervisor = self._supervisor(services)
            self.supervisor.start()

    def _supervisor(self, services: tuple[str, ...]) -> Supervisor:
        s = self.settings
        policy = Policy(
            backoff_initial=s.restart_backoff_seconds,
            backoff_max=s.restart_backoff_max_seconds,
            crash_limit=s.crash_limit,
            crash_window=s.crash_window_seconds,
            hang_after=s.watchdog_hang_seconds,
            start_timeout=s.startup_timeout_seconds,
            condition_grace=s.watchdog_wedge_seconds,
        )
        conditions = [
            Condition(replica.daprd_name, partial(self.workflow_engine_problem, replica))
            for replica in self.replicas
            if replica.daprd_name in services and replica.app_name in services
        ]
        return Supervisor(
            self,
            services,
            {name: self.liveness_probe(name) for name in services},
            policy,
            self.event,
            conditions,
        )

    def event(self, line: str) -> None:
        """A supervision event: to the report (the `make run` terminal) and `devstack.log`."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        with self.log_path("devstack").open("a") as log:
            log.write(f"{stamp} {line}\n")
        self._report(line)

    @property
    def supervision_failure(self) -> str | None:
        """Why the supervisor gave up (a crash loop), None while it keeps the stack up."""
        return None if self.supervisor is None else self.supervisor.gave_up

    def liveness_probe(self, name: str) -> Probe:
        """Is the process doing its job, answered within the watchdog's deadline. Unlike
        `ready`, the app's probe is /healthz: its /readyz also fails while daprd is away."""
        s = self.settings
        timeout = s.watchdog_probe_timeout_seconds

        def expect(url: str, status: int, what: str) -> Probe:
            def probe() -> str | None:
                got = http_status(url, timeout)
                if got == status:
                    return None
                answer = "no answer" if got is None else f"answered {got}"
                return f"GET {what} {answer} within {timeout:.0f}s"

            return probe

        def redis() -> str | None:
            if redis_answers(s.redis_port, timeout):
                return None
            return f"no PONG to PING within {timeout:.0f}s"

        replica = self.replica_of(name)
        if replica is not None and name == replica.daprd_name:
            return expect(f"{replica.dapr_http_url}/v1.0/healthz", 204, "/v1.0/healthz")
        if replica is not None:
            return expect(f"{replica.app_url}/healthz", 200, "/healthz")
        probes: dict[str, Probe] = {
            PROXY: expect(f"http://127.0.0.1:{s.proxy_health_port}/healthz", 204, "/healthz"),
            "redis": redis,
            "placement": expect(
                f"http://127.0.0.1:{s.placement_healthz_port}/healthz", 200, "/healthz"
            ),
            "scheduler": expect(
                f"http://127.0.0.1:{s.scheduler_healthz_port}/healthz", 200, "/healthz"
            ),
        }
        if name in self.extra_names:
            ready = self.services[name].ready
            return lambda: None if ready() else f"{name} is not ready"
        return probes[name]

    def expects_workflow_worker(self, replica: Replica | None = None) -> bool:
        app = self.services[(replica or self.replicas[0]).app_name]
        value = {**os.environ, **app.env}.get("WORKFLOW_WORKER", "true")
        return value.strip().lower() not in ("false", "0", "no", "off")

    def workflow_engine_problem(self, replica: Replica | None = None) -> str | None:
        """The wedge check, asked of the replica's daprd's metadata (None when daprd does not
        answer: the health probe deals with that, and a half-answer is no evidence of a wedge).
        Each daprd counts only the workers connected to it, so a replica is judged alone."""
        replica = replica or self.replicas[0]
        if not self.expects_workflow_worker(replica):
            return None
        metadata = http_json(
            f"{replica.dapr_http_url}/v1.0/metadata",
            self.settings.watchdog_probe_timeout_seconds,
            self.dapr_headers,
        )
        return workflow_engine_problem(metadata)

    def log_path(self, name: str) -> Path:
        return self.settings.log_dir / f"{name}.log"

    def start_service(self, name: str) -> None:
        """Launch one service and wait until its health probe passes."""
        service = self.services[name]
        if service.process is not None and service.process.poll() is None:
            raise StackError(f"{name} is already running (pid {service.process.pid})")
        started = time.monotonic()
        pid = self.launch(name)
        self.wait_ready(name)
        self._report(f"{name} ready (pid {pid}, {time.monotonic() - started:.1f}s)")

    def launch(self, name: str) -> int:
        """Start one service's process, not waiting for it to be healthy; its pid."""
        return launch_service(self.services[name], self.log_path(name))

    def wait_ready(self, name: str, timeout: float | None = None) -> None:
        service = self.services[name]
        deadline = time.monotonic() + (timeout or self.settings.startup_timeout_seconds)
        while time.monotonic() < deadline:
            if service.process is None or service.process.poll() is not None:
                code = None if service.process is None else service.process.returncode
                raise StackError(f"{name} exited with {code} while starting\n{self.log_tail(name)}")
            if service.ready():
                return
            time.sleep(0.2)
        raise StackError(
            f"{name} not healthy after {timeout or self.settings.startup_timeout_seconds:.0f}s\n{self.log_tail(name)}"
        )

    def log_tail(self, name: str, lines: int = 30) -> str:
        return service_log_tail(self.log_path(name), name, lines)

    def pid(self, name: str) -> int:
        process = self.services[name].process
        if process is None or process.poll() is not None:
            raise StackError(f"{name} is not running")
        return process.pid

    def returncode(self, name: str) -> int | None:
        """None while running (or never started), the exit status once ended; reaps it."""
        process = self.services[name].process
        return None if process is None else process.poll()

    def is_running(self, name: str) -> bool:
        process = self.services[name].process
        return process is not None and process.poll() is None

    def kill(self, name: str) -> None:
        """`kill -9` one service and reap it (for fault tests)."""
        kill_service(self.services[name])

    def stop_service(self, name: str, grace: float = 15.0) -> None:
        terminate_service(self.services[name], grace)

    def restart(self, name: str) -> None:
        self.stop_service(name)
        self.start_service(name)

    def stop(self) -> None:
        supervisor = self.supervisor
        if supervisor is not None:
            # No restarts while stopping; the supervisor's thread ends only after the services
            # are down (see Supervisor._run on why it must outlive them).
            supervisor.pause()
        try:
            for name in reversed(self.service_order):
                self.stop_service(name)
        finally:
            if supervisor is not None:
                supervisor.finish()
                self.supervisor = None

    def exited(self) -> list[str]:
        """Services that were started and have since died."""
        return [
            name
            for name, service in self.services.items()
            if service.process is not None and service.process.poll() is not None
        ]

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
