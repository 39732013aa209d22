"""What the Stack gives the supervisor: probes with reasons, the wedge check, the API token,
and process control that works on a frozen (SIGSTOPped) process."""

from __future__ import annotations

import http.server
import json
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from devstack.settings import StackSettings
from devstack.stack import WORKFLOW_ACTOR_TYPES, Stack, free_ports, workflow_engine_problem


def settings(tmp_path: Path, **values: Any) -> StackSettings:
    aliases = StackSettings.port_variables()
    ports: dict[str, Any] = dict(zip(aliases, free_ports(len(aliases)), strict=True))
    return StackSettings.model_validate(
        {**ports, **values, "STACK_DATA_DIR": str(tmp_path / "data")}
    )


def healthy_metadata() -> dict[str, Any]:
    """The parts of daprd's GET /v1.0/metadata the wedge check reads, as 1.18.2 answers."""
    return {
        "id": "order-processor",
        "workflows": {"connectedWorkers": 1},
        "actorRuntime": {
            "runtimeStatus": "RUNNING",
            "activeActors": [{"type": kind, "count": 0} for kind in WORKFLOW_ACTOR_TYPES],
            "hostReady": True,
            "placement": "placement: connected",
        },
    }


def test_a_healthy_engine_has_no_problem() -> None:
    assert workflow_engine_problem(healthy_metadata()) is None


def test_no_connected_worker_is_a_problem() -> None:
    metadata = healthy_metadata()
    metadata["workflows"] = {"connectedWorkers": 0}
    assert workflow_engine_problem(metadata) == (
        "daprd counts no connected workflow worker while the app runs one"
    )
    del metadata["workflows"]
    assert workflow_engine_problem(metadata) is not None


def test_missing_workflow_actor_types_are_a_problem_naming_them() -> None:
    metadata = healthy_metadata()
    metadata["actorRuntime"]["activeActors"] = [{"type": WORKFLOW_ACTOR_TYPES[0], "count": 3}]
    assert workflow_engine_problem(metadata) == (
        f"daprd lacks the workflow actor types {WORKFLOW_ACTOR_TYPES[1]}"
    )


def test_no_metadata_is_no_evidence_of_a_wedge() -> None:
    assert workflow_engine_problem(None) is None
    assert workflow_engine_problem(["not", "a", "dict"]) is None


def test_the_api_token_reaches_daprd_the_app_and_the_probe_headers(tmp_path: Path) -> None:
    stack = Stack(settings(tmp_path, DAPR_API_TOKEN="s3cret"))
    assert stack.services["daprd"].env["DAPR_API_TOKEN"] == "s3cret"
    assert stack.services["app"].env["DAPR_API_TOKEN"] == "s3cret"
    assert stack.dapr_headers == {"dapr-api-token": "s3cret"}


def test_without_a_token_each_stack_generates_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DAPR_API_TOKEN", raising=False)
    stack, other = Stack(settings(tmp_path)), Stack(settings(tmp_path))
    token = stack.services["daprd"].env["DAPR_API_TOKEN"]
    assert len(token) >= 32
    assert stack.services["app"].env["DAPR_API_TOKEN"] == token
    assert stack.dapr_headers == {"dapr-api-token": token}
    assert other.services["daprd"].env["DAPR_API_TOKEN"] != token


def test_the_wedge_check_is_off_when_the_app_runs_no_worker(tmp_path: Path) -> None:
    stack = Stack(settings(tmp_path), app_env={"WORKFLOW_WORKER": "false"})
    assert not stack.expects_workflow_worker()
    assert stack.workflow_engine_problem() is None  # never even asks daprd
    stack.services["app"].env["WORKFLOW_WORKER"] = "true"
    assert stack.expects_workflow_worker()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("redis", "no PONG to PING within 1s"),
        ("placement", "GET /healthz no answer within 1s"),
        ("daprd", "GET /v1.0/healthz no answer within 1s"),
        ("app", "GET /healthz no answer within 1s"),
    ],
)
def test_a_probe_of_nothing_listening_says_why(tmp_path: Path, name: str, expected: str) -> None:
    stack = Stack(settings(tmp_path, WATCHDOG_PROBE_TIMEOUT=1.0))
    assert stack.liveness_probe(name)() == expected


def test_watchdog_thresholds_are_settings() -> None:
    values = StackSettings.model_validate(
        {"WATCHDOG_HANG": 5, "WATCHDOG_WEDGE": 0, "CRASH_LIMIT": 3, "RESTART_BACKOFF": 0.5}
    )
    assert values.watchdog_hang_seconds == 5
    assert values.watchdog_wedge_seconds == 0
    assert values.crash_limit == 3
    assert values.restart_backoff_seconds == 0.5


def test_a_frozen_process_is_killed_and_reaped(tmp_path: Path) -> None:
    """SIGTERM would wait for SIGCONT; the supervisor's kill must not."""
    stack = Stack(settings(tmp_path))
    stack.settings.log_dir.mkdir(parents=True)
    stack.services["redis"].argv = [sys.executable, "-c", "import time; time.sleep(600)"]
    pid = stack.launch("redis")
    assert stack.returncode("redis") is None
    os.kill(pid, signal.SIGSTOP)
    stack.kill("redis")
    assert stack.returncode("redis") == -signal.SIGKILL
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # reaped: no zombie left behind


def test_supervision_events_go_to_the_devstack_log(tmp_path: Path) -> None:
    seen: list[str] = []
    stack = Stack(settings(tmp_path), report=seen.append)
    stack.settings.log_dir.mkdir(parents=True)
    stack.event("daprd restarted (pid 7)")
    assert seen == ["daprd restarted (pid 7)"]
    assert stack.log_path("devstack").read_text().endswith(" daprd restarted (pid 7)\n")


class _Sidecar(http.server.BaseHTTPRequestHandler):
    """daprd with an API token: /v1.0/metadata only for callers that send it."""

    # Set per test on a fresh subclass (see the `sidecar` fixture): a handler instance lives
    # for one request only.
    metadata: ClassVar[dict[str, Any]]
    seen_tokens: ClassVar[list[str | None]]

    def do_GET(self) -> None:
        token = self.headers.get("dapr-api-token")
        self.seen_tokens.append(token)
        if token != "s3cret":
            self.send_response(401)
            self.end_headers()
            return
        body = json.dumps(self.metadata).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def sidecar() -> Iterator[tuple[int, type[_Sidecar]]]:
    handler = type("Sidecar", (_Sidecar,), {"metadata": {}, "seen_tokens": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_the_wedge_check_sends_the_token_and_reads_the_answer(
    tmp_path: Path, sidecar: tuple[int, type[_Sidecar]]
) -> None:
    port, handler = sidecar
    stack = Stack(settings(tmp_path, DAPR_API_TOKEN="s3cret", DAPR_HTTP_PORT=port))
    handler.metadata = healthy_metadata()
    assert stack.workflow_engine_problem() is None
    handler.metadata["workflows"]["connectedWorkers"] = 0
    assert stack.workflow_engine_problem() == (
        "daprd counts no connected workflow worker while the app runs one"
    )
    assert handler.seen_tokens == ["s3cret", "s3cret"]


def test_a_refused_metadata_call_is_no_evidence_of_a_wedge(
    tmp_path: Path, sidecar: tuple[int, type[_Sidecar]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token mismatch must not make the watchdog restart daprd over and over."""
    port, handler = sidecar
    stack = Stack(settings(tmp_path, DAPR_API_TOKEN="not-the-sidecars", DAPR_HTTP_PORT=port))
    assert stack.workflow_engine_problem() is None
    assert handler.seen_tokens == ["not-the-sidecars"]
