"""The process definitions of a stack: a service (its command, environment and readiness) and
the extras a stack is given when it is built (observability's Jaeger and Prometheus, the
benchmark's daprd flags), so that nobody rewrites a built stack's services from outside."""

from __future__ import annotations

import json
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from devstack.settings import StackSettings
from devstack.stack.replicas import Replica


@dataclass
class Service:
    name: str
    argv: list[str]
    ready: Callable[[], bool]
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None


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
