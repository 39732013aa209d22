"""The worker watchdog in the composition root, with fakes for the probe and the supervisor."""

from __future__ import annotations

import asyncio
import contextlib

from app.config import Settings
from app.main import _keep_worker_connected
from app.services.sidecar import Readiness


class _Probe:
    def __init__(self, worker_missing: bool) -> None:
        self.worker_missing = worker_missing

    async def readiness(self) -> Readiness:
        return Readiness(not self.worker_missing, "test", worker_missing=self.worker_missing)


class _Supervisor:
    def __init__(self) -> None:
        self.restarts = 0
        self.restarted = asyncio.Event()
        self._loop = asyncio.get_running_loop()

    def restart(self) -> None:  # called from a worker thread, like the real one
        self.restarts += 1
        self._loop.call_soon_threadsafe(self.restarted.set)


async def _run_for(probe: _Probe, supervisor: _Supervisor, seconds: float) -> None:
    settings = Settings(worker_check_seconds=0.01, worker_grace_seconds=0.05)
    task = asyncio.create_task(_keep_worker_connected(supervisor, probe, settings))  # type: ignore[arg-type]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(supervisor.restarted.wait(), seconds)
    task.cancel()


async def test_worker_missing_past_the_grace_period_is_replaced() -> None:
    supervisor = _Supervisor()
    await _run_for(_Probe(worker_missing=True), supervisor, seconds=5.0)
    assert supervisor.restarts >= 1


async def test_connected_worker_is_left_alone() -> None:
    supervisor = _Supervisor()
    await _run_for(_Probe(worker_missing=False), supervisor, seconds=0.3)
    assert supervisor.restarts == 0
