"""The worker watchdog, with fakes for the sidecar's answer and the supervisor."""

from __future__ import annotations

import asyncio
import contextlib

from app.workflows.worker import keep_worker_connected


class _Supervisor:
    def __init__(self) -> None:
        self.restarts = 0
        self.restarted = asyncio.Event()
        self._loop = asyncio.get_running_loop()

    def restart(self) -> None:  # called from a worker thread, like the real one
        self.restarts += 1
        self._loop.call_soon_threadsafe(self.restarted.set)


async def _run_for(worker_missing: bool, supervisor: _Supervisor, seconds: float) -> None:
    async def missing() -> bool:
        return worker_missing

    task = asyncio.create_task(
        keep_worker_connected(supervisor, missing, check_seconds=0.01, grace_seconds=0.05)
    )
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(supervisor.restarted.wait(), seconds)
    task.cancel()


async def test_worker_missing_past_the_grace_period_is_replaced() -> None:
    supervisor = _Supervisor()
    await _run_for(worker_missing=True, supervisor=supervisor, seconds=5.0)
    assert supervisor.restarts >= 1


async def test_connected_worker_is_left_alone() -> None:
    supervisor = _Supervisor()
    await _run_for(worker_missing=False, supervisor=supervisor, seconds=0.3)
    assert supervisor.restarts == 0
