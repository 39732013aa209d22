"""Key/value access to the Dapr state store through the sidecar's HTTP API, with ETags."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from app.errors import AppError, DependencyUnavailable, SidecarUnreachable


async def contention_backoff(attempt: int) -> None:
    """After a lost compare-and-swap: wait a random moment that grows with the attempts, so
    contenders spread out instead of colliding again on the next round."""
    await asyncio.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempt)))


async def compare_and_swap(
    store: StateStore,
    key: str,
    change: Callable[[dict[str, Any] | None], dict[str, Any] | None],
    *,
    error: type[AppError] = DependencyUnavailable,
    attempts: int = 100,
) -> dict[str, Any] | None:
    """Read `key`, apply `change`, write the result back guarded by the ETag that was read (a
    create when the key was absent); a lost race backs off and starts over. `change` gets the
    current value (None when absent) and returns the new one, or None for "nothing to write".
    Returns the value the key now holds. After `attempts` lost races, raises `error`."""
    for attempt in range(attempts):
        entry = await store.get(key)
        current = None if entry is None else entry.value
        updated = change(current)
        if updated is None:
            return current
        try:
            await store.save(key, updated, None if entry is None else entry.etag)
        except EtagMismatch:
            await contention_backoff(attempt)
            continue
        return updated
    raise error(f"{key} is too contended; retry")


async def create_or_read(
    store: StateStore, key: str, value: dict[str, Any]
) -> tuple[dict[str, Any], bool]:
    """Create `key` holding `value`, or find what it holds already. Returns (what the key holds,
    whether this call wrote it). A create that lost to an earlier one (an activity run again, a
    retried request) reads the value back: the caller checks it is the same thing before it
    takes it as done. A write that failed raises DependencyUnavailable, never "already there"."""
    try:
        await store.save(key, value, None)
    except EtagMismatch:
        entry = await store.get(key)
        if entry is None:  # there a moment ago: deleted since, so no answer yet either way
            raise DependencyUnavailable(f"{key} changed while it was written; retry") from None
        return entry.value, False
    return value, True


class KeyLocks:
    """One asyncio lock per (event loop, key): writers in this process queue up for a hot key
    instead of racing each other into compare-and-swap retries. ETags still guard against other
    processes; the locks only remove the self-inflicted conflicts."""

    def __init__(self) -> None:
        self._locks: dict[tuple[int, str], asyncio.Lock] = {}

    def __call__(self, key: str) -> asyncio.Lock:
        slot = (id(asyncio.get_running_loop()), key)
        lock = self._locks.get(slot)
        if lock is None:
            lock = self._locks[slot] = asyncio.Lock()
        return lock


class EtagMismatch(Exception):
    """Someone else wrote the key since we read it (or, on a create, the key exists: seen, not
    guessed from an error): re-read and retry. A write that failed is DependencyUnavailable."""


@dataclass(frozen=True)
class Entry:
    value: dict[str, Any]
    etag: str


class StateStore(Protocol):
    async def get(self, key: str) -> Entry | None: ...

    async def save(self, key: str, value: dict[str, Any], etag: str | None) -> None:
        """Write with first-write concurrency: `etag=None` creates (fails if the key exists),
        an etag replaces only that version. Raises EtagMismatch otherwise, and
        DependencyUnavailable when the write itself failed."""

    async def delete(self, key: str, etag: str | None = None) -> None: ...


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes
    etag: str

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


class SidecarStateStore:
    """StateStore over daprd's HTTP state API.

    aiohttp rather than httpx here: every order step is a few of these calls, and profiling
    under load put half the app's CPU in httpx's pure-Python request path; aiohttp (already
    installed by the Dapr SDK) parses HTTP in C. The workflow worker runs activities on its own
    event loop, in another thread, and a client session belongs to one loop, so each loop gets
    its own.
    """

    def __init__(
        self,
        dapr_http_url: str,
        store_name: str,
        timeout: float = 10.0,
        api_token: str | None = None,
    ) -> None:
        self._base = f"{dapr_http_url}/v1.0/state/{store_name}"
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        # daprd started with DAPR_API_TOKEN refuses every call without it (401).
        self._headers = {"dapr-api-token": api_token} if api_token else {}
        self._sessions: dict[int, aiohttp.ClientSession] = {}

    def _session(self) -> aiohttp.ClientSession:
        loop_id = id(asyncio.get_running_loop())
        session = self._sessions.get(loop_id)
        if session is None:
            session = aiohttp.ClientSession(timeout=self._timeout, headers=self._headers)
            self._sessions[loop_id] = session
        return session

    async def _request(self, method: str, url: str, **kwargs: Any) -> _Reply:
        try:
            async with self._session().request(method, url, **kwargs) as response:
                return _Reply(
                    response.status, await response.read(), response.headers.get("ETag", "")
                )
        except TimeoutError as error:  # aiohttp's own timeouts too: late, not gone
            raise DependencyUnavailable(
                f"state store unreachable through the sidecar: {error!r}"
            ) from error
        except aiohttp.ClientConnectionError as error:
            # No connection to this process's sidecar (refused: not running), or it closed the
            # connection before answering (killed): this replica's fault alone.
            raise SidecarUnreachable(f"the Dapr sidecar is not reachable: {error!r}") from error
        except aiohttp.ClientError as error:
            raise DependencyUnavailable(
                f"state store unreachable through the sidecar: {error!r}"
            ) from error

    async def get(self, key: str) -> Entry | None:
        response = await self._request(
            "GET", f"{self._base}/{key}", params={"consistency": "strong"}
        )
        if response.status == 204:
            return None
        if response.status != 200:
            raise DependencyUnavailable(
                f"state read of {key} failed: {response.status} {response.text}"
            )
        return Entry(json.loads(response.body), response.etag)

    async def save(self, key: str, value: dict[str, Any], etag: str | None) -> None:
        item: dict[str, Any] = {
            "key": key,
            "value": value,
            "options": {"concurrency": "first-write", "consistency": "strong"},
        }
        if etag is not None:
            item["etag"] = etag
        response = await self._request(
            "POST",
            self._base,
            data=json.dumps([item]),
            headers={"Content-Type": "application/json"},
        )
        if response.status in (200, 204):
            return
        # The Redis store's answers to a lost race are also its answers to a failed write
        # (components-contrib state/redis): with an ETag every error is an "ETag mismatch", a
        # 409; without one, a create of a key that exists is refused by the version script with
        # a 500 "failed to set key", the text the store wraps every other write error in (NOPERM
        # from an ACL, READONLY after a failover, OOM, a lost connection). The answer alone
        # cannot say "someone else wrote"; a read can. A replace lost the race only if the
        # version moved on from the one sent (versions only grow), a create only if the key is
        # there. Otherwise nothing was written: the write failed.
        race_reported = response.status == 409 or (
            etag is None and response.status == 500 and "failed to set key" in response.text
        )
        if race_reported and await self._lost_race(key, etag):
            raise EtagMismatch(key)
        raise DependencyUnavailable(
            f"state write of {key} failed: {response.status} {response.text}"
        )

    async def _lost_race(self, key: str, etag: str | None) -> bool:
        """After a write refused as a conflict: did another write really get there first?"""
        current = await self.get(key)
        if etag is None:
            return current is not None
        return current is None or current.etag != etag

    async def delete(self, key: str, etag: str | None = None) -> None:
        headers = {"If-Match": etag} if etag else {}
        response = await self._request("DELETE", f"{self._base}/{key}", headers=headers)
        if response.status not in (200, 204):
            if response.status == 409:
                raise EtagMismatch(key)
            raise DependencyUnavailable(f"state delete of {key} failed: {response.status}")

    async def aclose(self) -> None:
        """Close this loop's session. Sessions of other loops (the worker's, stopped by now) can
        only be closed from their own loop; their sockets go with the process."""
        sessions, self._sessions = self._sessions, {}
        own = sessions.get(id(asyncio.get_running_loop()))
        if own is not None:
            await own.close()
