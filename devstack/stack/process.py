"""The process definitions of a stack: a service (its command, environment and readiness) and
the extras a stack is given when it is built (observability's Jaeger and Prometheus, the
benchmark's daprd flags), so that nobody rewrites a built stack's services from outside."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.settings import ROOT, StackSettings
from devstack.stack.replicas import Replica


@dataclass
class Service:
    name: str
    argv: list[str]
    ready: Callable[[], bool]
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None


_PR_SET_PDEATHSIG = 1
# Loaded once here, not in the forked child: the supervisor starts processes from a thread, and
# a child of a multi-threaded parent should do as little as possible before exec (dlopen takes
# loader locks another thread may have held at fork time).
_LIBC = ctypes.CDLL(None, use_errno=True)


def _die_with_parent() -> None:
    # If the launcher is killed outright (no chance to clean up), the kernel stops its children:
    # no orphaned daprd holding ports after a crashed test run or a `kill -9` of `make run`.
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def launch_service(service: Service, log_path: Path) -> int:
    """Start the service's process, its output appended to `log_path`, not waiting for it to be
    healthy; its pid. It runs in its own session (Ctrl-C reaches the launcher only, which stops
    children in order) and dies with the launcher."""
    with log_path.open("ab") as log:
        log.write(f"\n==== starting {service.name}: {' '.join(service.argv)}\n".encode())
        log.flush()
        service.process = subprocess.Popen(
            service.argv,
            cwd=ROOT,
            env={**os.environ, **service.env},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    return service.process.pid


def kill_service(service: Service) -> None:
    """`kill -9` the service's process and reap it (works on a SIGSTOPped process too)."""
    process = service.process
    if process is not None and process.poll() is None:
        process.kill()
        process.wait()


def terminate_service(service: Service, grace: float) -> None:
    """SIGTERM, then SIGKILL if the process has not ended within `grace` seconds."""
    process = service.process
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def service_log_tail(log_path: Path, name: str, lines: int = 30) -> str:
    """The last lines of a service's log, each prefixed with its name (for error messages)."""
    if not log_path.exists():
        return ""
    text = log_path.read_text(errors="replace").splitlines()[-lines:]
    return "\n".join(f"  {name}| {line}" for line in text)


@dataclass(frozen=True)
class Extras:
    """What a stack is given beyond its own processes: `services` started right after `after`
    (stopped right before it) and watched by their readiness; `app_env` for every app where the
    stack's own caller set nothing else; `args` appended to a service's command."""

    services: Sequence[Service] = ()
    after: str = "redis"
    app_env: Mapping[str, str] = field(default_factory=dict)
    args: Mapping[str, Sequence[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Layout:
    """What extras are made from: the stack's settings, replicas and whether it is supervised."""

    settings: StackSettings
    replicas: Sequence[Replica]
    supervise: bool


# Called once, when a stack is built.
ExtrasFactory = Callable[[Layout], Extras]


def http_status(url: str, timeout: float = 2.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except (OSError, ValueError):
        return None


def http_json(url: str, timeout: float, headers: Mapping[str, str]) -> Any:
    """The JSON body of a 200 answer, or None for anything else (no answer, error, not JSON)."""
    request = urllib.request.Request(url, headers=dict(headers))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except (OSError, ValueError):
        return None


def redis_answers(port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False
