"""Change attempts (what a 503 may say) and the unfinished changes shutdown waits for."""

from __future__ import annotations

import asyncio

import pytest

from app.errors import DependencyUnavailable
from app.services.changes import (
    ChangeAbandoned,
    ChangeAttempt,
    UnfinishedChanges,
    attempt_in_progress,
    attempting,
    current_attempt,
)
from tests.fixtures.waiting import eventually


def test_a_write_announced_before_the_caller_gave_up_may_have_happened() -> None:
    attempt = ChangeAttempt()

    attempt.begin_write("same_order_id", "o1")
    attempt.abandon()

    assert (attempt.sent, attempt.retry, attempt.order_id) == (True, "same_order_id", "o1")


def test_no_write_begins_once_the_caller_gave_up() -> None:
    attempt = ChangeAttempt()
    attempt.abandon()

    with pytest.raises(ChangeAbandoned, match="order o1: given up before it was recorded"):
        attempt.begin_write("same_order_id", "o1")

    assert attempt.sent is False


def test_each_request_has_its_own_attempt_and_none_outside_one() -> None:
    assert attempt_in_progress() is None
    with attempting() as first:
        assert current_attempt() is first
    with attempting() as second:
        assert second is not first
    assert current_attempt() is not current_attempt()  # outside a request: a fresh one each


async def test_a_change_runs_on_when_its_caller_stops_waiting_and_is_abandoned() -> None:
    changes, attempt, gate = UnfinishedChanges(), ChangeAttempt(), asyncio.Event()

    async def create() -> str:
        await gate.wait()
        attempt.begin_write("same_order_id", "o1")
        return "written"

    caller = asyncio.create_task(changes.run(create(), "create order o1", attempt))
    await asyncio.sleep(0)  # the caller is waiting on the change
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller

    assert attempt.abandoned
    assert changes.running == ["create order o1"]
    gate.set()
    assert await changes.drain(5) == []
    assert attempt.sent is False  # abandoned before its write: it never wrote


async def test_drain_waits_for_changes_started_while_draining() -> None:
    changes, gate = UnfinishedChanges(), asyncio.Event()

    async def delivery() -> None:
        await gate.wait()

    async def decision() -> None:
        await asyncio.sleep(0)
        changes.track(delivery(), "manager_approval to order o1")

    changes.track(decision(), "approved on order o1")
    draining = asyncio.create_task(changes.drain(5))

    async def running() -> list[str]:
        return changes.running

    await eventually(running, lambda r: r == ["manager_approval to order o1"], interval=0.01)
    assert not draining.done()
    gate.set()
    assert await draining == []


async def test_drain_gives_up_at_its_deadline_and_names_what_is_left() -> None:
    changes = UnfinishedChanges()
    changes.track(asyncio.Event().wait(), "create order o1")

    assert await changes.drain(0.05) == ["create order o1"]


async def test_no_change_starts_once_draining() -> None:
    changes = UnfinishedChanges()
    await changes.drain(0)

    async def create() -> None:
        raise AssertionError("must not run")

    with pytest.raises(DependencyUnavailable, match="refused, the service is shutting down"):
        await changes.run(create(), "create order o1", ChangeAttempt())
