"""Wait on a condition with a deadline, never a bare sleep."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T]],
    accept: Callable[[T], bool],
    *,
    deadline_seconds: float = 60.0,
    interval: float = 0.2,
    what: str = "condition",
) -> T:
    deadline = time.monotonic() + deadline_seconds
    last: T | None = None
    while time.monotonic() < deadline:
        last = await probe()
        if accept(last):
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"{what} not reached within {deadline_seconds:.0f}s; last value: {last!r}")
