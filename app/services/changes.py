"""Changes requests make: whether one may have happened, and the ones still running.

Two questions have their answer here, in one place:

- **What may a 503 say?** A request's change announces the write that makes it (an order's
  record, a decision on it, a restock) with `ChangeAttempt.begin_write` just before sending it.
  Until then nothing was changed; from then on it may have been, whatever the caller is told
  next. A caller that gives up (the request deadline) abandons the attempt, and a change that had
  not begun writing then never will: "nothing was changed" stays true after the answer.
- **What must shutdown wait for?** A change runs shielded from its request (`run`), so that a
  503 never stops it half done (a record without its workflow). It may then outlive its request;
  shutdown waits for every change still running (`drain`) before the clients they use close.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from app.errors import AppError, DependencyUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

# How to repeat a request that got a 503 (the `retry` of its body):
# - "any": nothing was changed; repeat it as it was.
# - "same_order_id": the order may have been accepted under `order_id`; repeat the create with
#   that id (idempotent: the same order comes back, never a second one).
# - "same_request": the decision may have been recorded; repeating it answers 409
#   decision_already_made naming it if it was.
# - "read_first": stock may have changed; read it before repeating (a restock adds again).
RetryAdvice = Literal["any", "same_order_id", "same_request", "read_first"]


class ChangeAbandoned(DependencyUnavailable):
    """The caller gave up before the change's first write: it is not made."""


@dataclass
class ChangeAttempt:
    """One request's change, as far as it has gone."""

    sent: bool = False
    abandoned: bool = False
    retry: RetryAdvice = "any"
    order_id: str | None = None
    # The request, repeated exactly as it was, is safe even if the change was made: it names
    # its order (a create with its own order id, a decision: see RetryAdvice).
    repeatable: bool = False

    def begin_write(
        self, retry: RetryAdvice, order_id: str | None = None, *, repeatable: bool = False
    ) -> None:
        """Called just before the write that makes the change is sent. Refuses (raises
        ChangeAbandoned) once the caller has given up, so a caller told "nothing was changed"
        was told the truth."""
        if self.abandoned:
            raise ChangeAbandoned(
                f"order {order_id}: given up before it was recorded"
                if order_id
                else "given up before anything was written"
            )
        self.sent, self.retry, self.order_id, self.repeatable = True, retry, order_id, repeatable

    @property
    def safe_to_repeat(self) -> bool:
        """Whether the request may be repeated as it was, by anyone (the proxy, on another
        replica): nothing was written, or repeating it finds what was."""
        return not self.sent or self.repeatable

    def abandon(self) -> None:
        self.abandoned = True


_current: ContextVar[ChangeAttempt | None] = ContextVar("change_attempt", default=None)


@contextmanager
def attempting() -> Iterator[ChangeAttempt]:
    """The attempt of one request: every change made while serving it reports to it."""
    attempt = ChangeAttempt()
    token = _current.set(attempt)
    try:
        yield attempt
    finally:
        _current.reset(token)


def current_attempt() -> ChangeAttempt:
    """The attempt of the request being served, or a fresh one outside any request."""
    return _current.get() or ChangeAttempt()


def attempt_in_progress() -> ChangeAttempt | None:
    """The attempt of the request being served, if any (what its 503 reports)."""
    return _current.get()


class UnfinishedChanges:
    """Every change that runs to completion whether or not its caller waits (the one place
    shutdown looks)."""

    def __init__(self) -> None:
        self._running: dict[asyncio.Future[Any], str] = {}
        self._closed = False

    @property
    def running(self) -> list[str]:
        """What each unfinished change is, e.g. "create order o1"."""
        return list(self._running.values())

    async def run(self, work: Awaitable[T], what: str, attempt: ChangeAttempt) -> T:
        """Run `work` to completion even if the caller stops waiting; the caller's giving up
        abandons `attempt` (so the change writes nothing if it has not begun to)."""
        if self._closed:
            if asyncio.iscoroutine(work):
                work.close()
            # Nothing was written: the request's 503 says so, and any replica can take it.
            raise DependencyUnavailable(f"{what}: refused, the service is shutting down")
        try:
            return await asyncio.shield(self.track(work, what))
        except asyncio.CancelledError:
            attempt.abandon()
            raise

    def track(self, work: Awaitable[T], what: str) -> asyncio.Future[T]:
        """Count `work` as unfinished until it ends (without shielding it)."""
        task = asyncio.ensure_future(work)
        self._running[task] = what
        task.add_done_callback(self._forget)
        return task

    def _forget(self, task: asyncio.Future[Any]) -> None:
        what = self._running.pop(task, "a change")
        error = None if task.cancelled() else task.exception()
        if error is not None and not isinstance(error, AppError):
            # Its caller may have gone (deadline): report what it could not. (Domain errors are
            # answers, which the caller got if it was still there.)
            log.warning("%s ended with an unexpected error: %r", what, error)

    async def drain(self, seconds: float) -> list[str]:
        """Take no new change and wait up to `seconds` for the running ones; returns what is
        still running then (logged: it may stop half done when the process exits)."""
        self._closed = True
        if self._running:
            log.info("shutdown: waiting up to %gs for %s", seconds, ", ".join(self.running))
        deadline = asyncio.get_running_loop().time() + seconds
        # Again while changes start others (a decision's delivery) and time remains.
        while self._running and (remaining := deadline - asyncio.get_running_loop().time()) > 0:
            await asyncio.wait(list(self._running), timeout=remaining)
        left = self.running
        if left:
            log.warning("shutdown: still unfinished after %gs: %s", seconds, ", ".join(left))
        return left
