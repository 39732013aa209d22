"""Start and stop the local Dapr stack as plain processes: Redis, placement, scheduler, daprd, app.

The same class serves `make run` (via `python -m devstack run`) and the integration tests'
session fixture, so what the tests exercise is exactly what a developer runs.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from devstack import dapr_config
from devstack.dapr_build import bin_dir
from devstack.settings import APP_ID, ROOT, StackSettings, pinned_dapr_version

SERVICE_ORDER = ("redis", "placement", "scheduler", "daprd", "app")
_PR_SET_PDEATHSIG = 1


class StackError(RuntimeError):
    pass


def _die_with_parent() -> None:
    # If the launcher is killed outright (no chance to clean up), the kernel stops its children:
    # no orphaned daprd holding ports after a crashed test run or a `kill -9` of `make run`.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


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


def isolated_settings(data_dir: Path, **overrides: object) -> StackSettings:
    """Settings for a second, private stack: every port free right now, data in `data_dir`,
    and any other settings by their variable names (`ORDER_HISTORY_RETENTION_SECONDS=5`).
    Used by the integration tests and the benchmark so they never collide with `make run`."""
    fields = [name for name in StackSettings.model_fields if name.endswith("_port")]
    ports = dict(zip(fields, free_ports(len(fields)), strict=True))
    aliases = {
        str(StackSettings.model_fields[name].validation_alias): port for name, port in ports.items()
    }
    return StackSettings.model_validate({**aliases, "STACK_DATA_DIR": str(data_dir), **overrides})


def http_status(url: str, timeout: float = 2.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except (OSError, ValueError):
        return None


def redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class Service:
    name: str
    argv: list[str]
    ready: Callable[[], bool]
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None


class Stack:
    """The five processes of the local stack, started in dependency order and stopped in reverse."""

    def __init__(
        self,
        settings: StackSettings | None = None,
        app_env: Mapping[str, str] | None = None,
        dapr_bin_dir: Path | None = None,
        report: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings or StackSettings()
        self.version = pinned_dapr_version()
        self.bin_dir = dapr_bin_dir or bin_dir(self.settings, self.version)
        self.app_env = dict(app_env or {})
        self._report = report or (lambda message: None)
        self.services = {service.name: service for service in self._define_services()}

    # -- definition -------------------------------------------------------------------------

    @property
    def redis_address(self) -> str:
        return f"127.0.0.1:{self.settings.redis_port}"

    @property
    def app_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.app_port}"

    @property
    def dapr_http_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.dapr_http_port}"

    def _define_services(self) -> list[Service]:
        s = self.settings
        data = s.data_dir
        dapr = self.bin_dir
        quiet_metrics = ["--metrics-listen-address", "127.0.0.1"]
        return [
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
            Service(
                "daprd",
                [
                    str(dapr / "daprd"), "--app-id", APP_ID,
                    "--dapr-http-port", str(s.dapr_http_port),
                    "--dapr-grpc-port", str(s.dapr_grpc_port),
                    "--dapr-internal-grpc-port", str(s.dapr_internal_grpc_port),
                    "--dapr-listen-addresses", "127.0.0.1",
                    "--metrics-port", str(s.dapr_metrics_port), *quiet_metrics,
                    "--resources-path", str(s.components_dir),
                    "--config", str(s.dapr_config_file),
                    "--placement-host-address", f"127.0.0.1:{s.placement_port}",
                    "--scheduler-host-address", f"127.0.0.1:{s.scheduler_port}",
                ],
                lambda: http_status(f"{self.dapr_http_url}/v1.0/healthz") == 204,
                # The component YAML reads the Redis address with envRef, so one file serves the
                # local stack, the Dapr CLI and docker compose.
                env={"REDIS_HOST": self.redis_address},
            ),
            Service(
                "app",
                [
                    sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory",
                    "--host", "127.0.0.1", "--port", str(s.app_port), "--no-access-log",
                    # Longer than clients' pools keep idle connections, so the server is not
                    # the one closing a connection a client is about to reuse.
                    "--timeout-keep-alive", "75",
                ],
                lambda: http_status(f"{self.app_url}/readyz") == 200,
                env={
                    "DAPR_HTTP_PORT": str(s.dapr_http_port),
                    "DAPR_GRPC_PORT": str(s.dapr_grpc_port),
                    "REDIS_HOST": self.redis_address,
                    **self.app_env,
                },
            ),
        ]  # fmt: skip

    # -- lifecycle --------------------------------------------------------------------------

    def check_ports_free(self) -> None:
        busy = [
            f"{port} ({name})" for name, port in self.settings.ports().items() if port_in_use(port)
        ]
        if busy:
            raise StackError(
                "port already in use: "
                + ", ".join(busy)
                + ". Stop whatever holds it, or set the named variable to a free port."
            )

    def check_binaries(self) -> None:
        missing = [
            name
            for name in ("daprd", "placement", "scheduler")
            if not (self.bin_dir / name).exists()
        ]
        if missing:
            raise StackError(f"Dapr binaries missing in {self.bin_dir}: {missing}; run `make dapr`")

    def start(self, services: tuple[str, ...] = SERVICE_ORDER) -> None:
        """Start `services` (all by default; the benchmark runs the engine without the app)."""
        self.check_binaries()
        self.check_ports_free()
        for directory in ("redis", "scheduler", "logs"):
            (self.settings.data_dir / directory).mkdir(parents=True, exist_ok=True)
        dapr_config.write(
            self.settings.dapr_config_file, self.settings.order_history_retention_seconds
        )
        try:
            for name in services:
                self.start_service(name)
        except BaseException:
            self.stop()
            raise

    def log_path(self, name: str) -> Path:
        return self.settings.log_dir / f"{name}.log"

    def start_service(self, name: str) -> None:
        """Launch one service and wait until its health probe passes."""
        service = self.services[name]
        if service.process is not None and service.process.poll() is None:
            raise StackError(f"{name} is already running (pid {service.process.pid})")
        log = self.log_path(name).open("ab")
        log.write(f"\n==== starting {name}: {' '.join(service.argv)}\n".encode())
        log.flush()
        env = {**os.environ, **service.env}
        service.process = subprocess.Popen(
            service.argv,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the launcher only; it stops children in order
            preexec_fn=_die_with_parent,
        )
        log.close()
        started = time.monotonic()
        self.wait_ready(name)
        self._report(f"{name} ready (pid {service.process.pid}, {time.monotonic() - started:.1f}s)")

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
        path = self.log_path(name)
        if not path.exists():
            return ""
        text = path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(f"  {name}| {line}" for line in text)

    def pid(self, name: str) -> int:
        process = self.services[name].process
        if process is None or process.poll() is not None:
            raise StackError(f"{name} is not running")
        return process.pid

    def is_running(self, name: str) -> bool:
        process = self.services[name].process
        return process is not None and process.poll() is None

    def kill(self, name: str) -> None:
        """`kill -9` one service and reap it (for fault tests)."""
        process = self.services[name].process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def stop_service(self, name: str, grace: float = 15.0) -> None:
        process = self.services[name].process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self, name: str) -> None:
        self.stop_service(name)
        self.start_service(name)

    def stop(self) -> None:
        for name in reversed(SERVICE_ORDER):
            self.stop_service(name)

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


@contextlib.contextmanager
def running_stack(
    settings: StackSettings | None = None, app_env: Mapping[str, str] | None = None
) -> Iterator[Stack]:
    with Stack(settings, app_env) as stack:
        yield stack
