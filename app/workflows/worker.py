"""This process's workflow worker: started once, and replaced when the sidecar stops counting it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import uvloop
from dapr.ext.workflow import WorkflowRuntime

log = logging.getLogger(__name__)


class WorkerSupervisor:
    """Owns the process's workflow runtime and can replace it.

    After a hard restart of the app or of daprd, daprd can end up with the worker's stream open
    but the workflow actor types unregistered (reminders then fail with "actor type ... not
    registered" and the sidecar reports no connected worker), and the SDK's worker does not
    notice. A fresh runtime opens a fresh stream, and daprd registers the types again.
    """

    def __init__(self, build: Callable[[], WorkflowRuntime]) -> None:
        self._build = build
        self._runtime: WorkflowRuntime | None = None
        self.restarts = 0

    def start(self) -> None:
        # The SDK runs activities on an event loop it creates with asyncio.new_event_loop():
        # uvloop's, through the policy, takes 10-15 % less of the app's CPU per order than the
        # standard loop (docs/benchmarks.md). Process-wide, which is what the app wants anyway.
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        self._runtime = self._build()
        self._runtime.start()  # type: ignore[no-untyped-call]  # the SDK method is unannotated

    def restart(self) -> None:
        log.warning("the sidecar reports no connected workflow worker; replacing the worker")
        self.shutdown()
        self.start()
        self.restarts += 1

    def shutdown(self) -> None:
        if self._runtime is not None:
            self._runtime.shutdown()  # type: ignore[no-untyped-call]  # the SDK method is unannotated
            self._runtime = None


class Restartable(Protocol):
    """What keep_worker_connected needs of a supervisor (a fake in unit tests)."""

    def restart(self) -> None: ...


class RemedyReport(Protocol):
    """Who hears of the watchdog's remedies (the metrics' counters, wired by app.main)."""

    def worker_replaced(self) -> None: ...

    def sidecar_restart_requested(self) -> None: ...


class _Unreported:
    def worker_replaced(self) -> None:
        return None

    def sidecar_restart_requested(self) -> None:
        return None


async def keep_worker_connected(
    supervisor: Restartable,
    worker_missing: Callable[[], Awaitable[bool]],
    check_seconds: float,
    grace_seconds: float,
    restart_sidecar: Callable[[], Awaitable[None]] | None = None,
    replacements_before_sidecar: int = 2,
    report: RemedyReport | None = None,
) -> None:
    """Replace the workflow worker when the sidecar has not counted it for `grace_seconds` (the
    SDK's own reconnect covers a lost stream, not a stream daprd no longer routes to).

    When replacing the worker does not help either, the sidecar itself is stuck: Dapr 1.18.2 can
    wedge unregistering the workflow actor types after a worker's stream drops (upstream
    dapr/dapr PR #10408, not in 1.18), and only a daprd restart clears it. `restart_sidecar`
    asks daprd to shut down; its supervisor (devstack under `make run`, the restart policy
    under compose, the kubelet on Kubernetes) starts it again and the worker reconnects.
    """
    report = report or _Unreported()
    missing_since: float | None = None
    replacements = 0
    while True:
        await asyncio.sleep(check_seconds)
        if not await worker_missing():
            missing_since, replacements = None, 0
            continue
        missing_since = missing_since or time.monotonic()
        if time.monotonic() - missing_since < grace_seconds:
            continue
        missing_since = None
        if restart_sidecar is not None and replacements >= replacements_before_sidecar:
            log.error(
                "the sidecar still counts no workflow worker after %d worker replacements "
                "(the Dapr 1.18.2 actor-registration wedge); asking daprd to shut down so its "
                "supervisor restarts it",
                replacements,
            )
            await restart_sidecar()
            report.sidecar_restart_requested()
            replacements = 0
            continue
        # restart() blocks until the new stream is open; keep the event loop free.
        await asyncio.to_thread(supervisor.restart)
        report.worker_replaced()
        replacements += 1
