"""A private compose project of the repo's docker-compose.yml: its own name, network, volumes.

Everything goes through the compose tool and the docker CLI; the tests reach the stack only on
loopback ports the project publishes and, for Redis (never published), through `docker exec`.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import signal
import subprocess
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from devstack.settings import APP_ID, ROOT
from devstack.stack import free_ports

COMPOSE_FILE = ROOT / "docker-compose.yml"
# Prometheus and Jaeger, and tracing on in the apps and sidecars, on top of COMPOSE_FILE.
OBSERVABILITY_FILE = ROOT / "docker-compose.observability.yml"
# Debian's Compose 1.29 (see README, Docker section); COMPOSE_COMMAND runs the same tests with
# another implementation, e.g. COMPOSE_COMMAND="docker compose" for a Compose v2 plugin.
COMPOSE_TOOL = shlex.split(os.environ.get("COMPOSE_COMMAND", "docker-compose"))
# Only what the tools need from the calling shell: nothing else may leak into interpolation.
PASSED_THROUGH = ("PATH", "HOME", "DOCKER_HOST", "DOCKER_CONFIG", "LANG")


class ComposeProject:
    def __init__(
        self, prefix: str, env: Mapping[str, str], overrides: tuple[Path, ...] = ()
    ) -> None:
        """A project of COMPOSE_FILE with the compose files `overrides` on top, in order."""
        self.name = f"{prefix}{uuid.uuid4().hex[:8]}"
        self.files = (COMPOSE_FILE, *overrides)
        app_port, dapr_port, proxy_port, prometheus_port, jaeger_port = free_ports(5)
        self.app_url = f"http://127.0.0.1:{app_port}"
        self.dapr_url = f"http://127.0.0.1:{dapr_port}"
        # The replicas' proxy (profile "replicas"), in front of app, app-2 and app-3.
        self.proxy_url = f"http://127.0.0.1:{proxy_port}"
        # Prometheus and Jaeger's UI and query API (OBSERVABILITY_FILE).
        self.prometheus_url = f"http://127.0.0.1:{prometheus_port}"
        self.jaeger_url = f"http://127.0.0.1:{jaeger_port}"
        self.api_token = secrets.token_hex(16)
        self.env = {
            **{key: os.environ[key] for key in PASSED_THROUGH if key in os.environ},
            "APP_HOST_PORT": str(app_port),
            "DAPR_HTTP_HOST_PORT": str(dapr_port),
            "PROXY_HOST_PORT": str(proxy_port),
            "PROMETHEUS_HOST_PORT": str(prometheus_port),
            "JAEGER_UI_HOST_PORT": str(jaeger_port),
            "DAPR_API_TOKEN": self.api_token,
            **env,
        }

    # -- the compose tool -------------------------------------------------------------------

    def compose(
        self, *args: str, env: Mapping[str, str] | None = None, timeout: float = 300
    ) -> str:
        files = [argument for path in self.files for argument in ("--file", str(path))]
        result = subprocess.run(
            [*COMPOSE_TOOL, "--project-name", self.name, *files, *args],
            cwd=ROOT,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(
                f"{' '.join(COMPOSE_TOOL)} {' '.join(args)} failed ({result.returncode}):\n{result.stderr}"
            )
        return result.stdout

    def up(self, **overrides: str) -> None:
        """`up -d` as a user runs it; overrides change settings the way a shell export would."""
        self.env.update(overrides)
        self.compose("up", "--detach", "--no-build")

    def recreate(self, service: str) -> None:
        """A new container for one service (new address on the network), the others left alone."""
        self.compose("up", "--detach", "--no-build", "--no-deps", "--force-recreate", service)

    def down(self, volumes: bool = False) -> None:
        self.compose("down", "--remove-orphans", *(["--volumes"] if volumes else []))

    def logs(self, tail: str = "60") -> str:
        """The containers' logs, the last `tail` lines of each ("all": everything)."""
        try:
            return self.compose("logs", "--no-color", "--tail", tail, timeout=60)
        except (AssertionError, subprocess.TimeoutExpired) as error:
            return f"(no logs: {error})"

    # -- containers -------------------------------------------------------------------------

    def container(self, service: str) -> str:
        container_id = self.compose("ps", "-q", service).strip()
        assert container_id, f"{service} has no container in {self.name}"
        return container_id

    def inspect(self, service: str) -> dict[str, Any]:
        output = subprocess.run(
            ["docker", "inspect", self.container(service)],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
        state: dict[str, Any] = json.loads(output)[0]
        return state

    def main_pid(self, service: str) -> int:
        pid = int(self.inspect(service)["State"]["Pid"])
        assert pid > 0, f"{service} is not running"
        return pid

    def kill_main_process(self, service: str) -> int:
        """`kill -9` the container's main process from the host; returns the pid killed."""
        pid = self.main_pid(service)
        os.kill(pid, signal.SIGKILL)
        return pid

    def wait_restarted(self, service: str, old_pid: int, seconds: float = 60.0) -> None:
        """The engine's restart policy brings the service back with a new main process."""
        deadline = time.monotonic() + seconds
        state: dict[str, Any] = {}
        while time.monotonic() < deadline:
            state = self.inspect(service)["State"]
            if state["Running"] and state["Pid"] not in (0, old_pid):
                return
            time.sleep(0.2)
        raise AssertionError(f"{service} not restarted within {seconds:.0f}s: {state}")

    # -- Redis, through the container (never published) ---------------------------------------

    def redis_cli(self, *args: str) -> str:
        result = subprocess.run(
            ["docker", "exec", self.container("redis"), "redis-cli", "--raw", *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return result.stdout

    def state(self, key: str) -> dict[str, Any] | None:
        raw = self.redis_cli("HGET", f"{APP_ID}||{key}", "data").strip()
        if not raw:
            return None
        value: dict[str, Any] = json.loads(raw)
        return value

    def keys(self, pattern: str) -> list[str]:
        prefix = f"{APP_ID}||"
        listed = self.redis_cli("--scan", "--pattern", f"{prefix}{pattern}").split()
        return [key.removeprefix(prefix) for key in listed]


class ProjectFactory(Protocol):
    """Makes a project (see the `project_factory` fixture) torn down after the test module."""

    def __call__(self, prefix: str, overrides: tuple[Path, ...] = ()) -> ComposeProject: ...
