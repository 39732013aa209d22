"""A Docker engine for the compose tests: use the one that runs, or start Debian's `dockerd`.

The engine is shared machine state (one `/var/run/docker.sock`), and several test runs may
overlap on a shared machine. Every user holds a shared `flock` on one lock file while it needs
the engine; the engine that a test run started (its pid file says so) is stopped by the last user
to let go. An engine that was already running, or that `make images` started for the user, is
never stopped.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO

# Root (CI, this project's machines) can start dockerd; anyone else can only use a running one.
STATE_DIR = (
    Path("/run/order-processor")
    if os.geteuid() == 0
    else Path(tempfile.gettempdir()) / f"order-processor-{os.getuid()}"
)
USERS_LOCK = STATE_DIR / "docker-users.lock"  # a shared flock per run that uses the engine
START_LOCK = STATE_DIR / "docker-start.lock"  # held briefly while starting or stopping it
PID_FILE = STATE_DIR / "dockerd.pid"
# An engine `make images` started for the user: theirs from then on, never stopped by a test run.
KEPT_PID_FILE = STATE_DIR / "dockerd-kept.pid"
LOG_FILE = STATE_DIR / "dockerd.log"
START_SECONDS = 60.0
STOP_SECONDS = 45.0


class DockerEngineError(RuntimeError):
    pass


def engine_answers() -> bool:
    """True when the Docker API on the default socket answers (`docker version` reaches a server)."""
    try:
        probe = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}}"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0 and bool(probe.stdout.strip())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _started_pid() -> int | None:
    """The pid of a dockerd that devstack started and that still runs."""
    try:
        pid = int(PID_FILE.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _pid_alive(pid) else None


class DockerEngine:
    """`with DockerEngine():` the engine answers inside; stopped after if devstack started it."""

    def __init__(self, report: Callable[[str], None] | None = None, keep: bool = False) -> None:
        self._report = report or (lambda message: None)
        self._keep = keep  # `make images` leaves the engine running for the user's compose
        self._lock: IO[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None  # kept to reap it when stopped

    def acquire(self) -> None:
        if self._keep and engine_answers():
            return  # nothing to start, nothing to stop: no need to take part in the count
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        with START_LOCK.open("a+") as start_lock:
            fcntl.flock(start_lock, fcntl.LOCK_EX)  # one starter or stopper at a time
            if not engine_answers():
                self._start()
            self._lock = USERS_LOCK.open("a+")
            fcntl.flock(self._lock, fcntl.LOCK_SH)

    def _start(self) -> None:
        if _started_pid() is not None:
            # Ours, still starting or wedged: give it the start deadline before replacing it.
            if self._wait_answering():
                return
            self._stop_started()
        if os.geteuid() != 0:
            raise DockerEngineError(
                "no Docker engine answers and only root can start one: start yours, or run as root"
            )
        for tool in ("dockerd", "containerd", "runc"):
            if not any((Path(p) / tool).exists() for p in os.environ["PATH"].split(os.pathsep)):
                raise DockerEngineError(f"{tool} is not installed; run `make tools`")
        self._report("starting dockerd (Debian docker.io)")
        started = time.monotonic()
        log = LOG_FILE.open("ab")
        process = subprocess.Popen(
            ["dockerd", "--pidfile", str(KEPT_PID_FILE if self._keep else PID_FILE)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives this process: later users may still need it
        )
        log.close()
        self._process = process
        if not self._wait_answering(process):
            tail = LOG_FILE.read_text(errors="replace").splitlines()[-20:]
            raise DockerEngineError("dockerd did not answer within 60s:\n" + "\n".join(tail))
        self._report(f"dockerd ready (pid {process.pid}, {time.monotonic() - started:.1f}s)")

    def _wait_answering(self, process: subprocess.Popen[bytes] | None = None) -> bool:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if engine_answers():
                return True
            if process is not None and process.poll() is not None:
                return False
            time.sleep(0.5)
        return False

    def _stop_started(self) -> None:
        pid = _started_pid()
        if pid is None:
            return
        self._report(f"stopping dockerd (pid {pid})")
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        while _pid_alive(pid) and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.2)
        if _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
        if self._process is not None and self._process.pid == pid:
            self._process.wait()
        PID_FILE.unlink(missing_ok=True)

    def release(self) -> None:
        if self._lock is None:
            return
        try:
            if not self._keep:
                with START_LOCK.open("a+") as start_lock:
                    fcntl.flock(start_lock, fcntl.LOCK_EX)
                    try:  # the last user can turn its shared lock into an exclusive one
                        fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        self._report("dockerd left running: another run still uses it")
                    else:
                        self._stop_started()
        finally:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> DockerEngine:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()
