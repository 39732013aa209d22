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


async def test_a_worker_that_replacing_does_not_bring_back_restarts_the_sidecar() -> None:
    supervisor = _Supervisor()
    sidecar_restarts = asyncio.Event()

    async def missing() -> bool:
        return True

    async def restart_sidecar() -> None:
        sidecar_restarts.set()

    task = asyncio.create_task(
        keep_worker_connected(
            supervisor,
            missing,
            check_seconds=0.01,
            grace_seconds=0.02,
            restart_sidecar=restart_sidecar,
            replacements_before_sidecar=2,
        )
    )
    try:
        await asyncio.wait_for(sidecar_restarts.wait(), 5.0)
    finally:
        task.cancel()
    # Two worker replacements first, then the sidecar: never the sidecar first.
    assert supervisor.restarts == 2


async def test_the_sidecar_is_left_alone_when_a_worker_replacement_helps() -> None:
    supervisor = _Supervisor()
    calls = 0
    checked_long_after = asyncio.Event()
    sidecar_restarts = 0

    async def missing() -> bool:
        # Missing long enough for one replacement, then counted again.
        nonlocal calls
        calls += 1
        if calls == 60:
            checked_long_after.set()
        return calls <= 5

    async def restart_sidecar() -> None:
        nonlocal sidecar_restarts
        sidecar_restarts += 1

    task = asyncio.create_task(
        keep_worker_connected(
            supervisor, missing, 0.01, 0.02, restart_sidecar, replacements_before_sidecar=2
        )
    )
    try:
        await asyncio.wait_for(checked_long_after.wait(), 5.0)
    finally:
        task.cancel()
    assert supervisor.restarts == 1
    assert sidecar_restarts == 0
