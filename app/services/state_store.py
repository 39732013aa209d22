"""Key/value access to the Dapr state store through the sidecar's HTTP API, with ETags."""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from app.errors import DependencyUnavailable


async def contention_backoff(attempt: int) -> None:
    """After a lost compare-and-swap: wait a random moment that grows with the attempts, so
    contenders spread out instead of colliding again on the next round."""
    await asyncio.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempt)))


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
    """Someone else wrote the key since we read it (or it exists on a create): re-read and retry."""


@dataclass(frozen=True)
class Entry:
    value: dict[str, Any]
    etag: str


class StateStore(Protocol):
    async def get(self, key: str) -> Entry | None: ...

    async def save(self, key: str, value: dict[str, Any], etag: str | None) -> None:
        """Write with first-write concurrency: `etag=None` creates (fails if the key exists),
        an etag replaces only that version. Raises EtagMismatch otherwise."""

    async def delete(self, key: str, etag: str | None = None) -> None: ...


class SidecarStateStore:
    """StateStore over daprd's HTTP state API.

    The workflow worker runs activities on its own event loop, in another thread; an httpx
    client belongs to one loop, so each loop gets its own.
    """

    def __init__(self, dapr_http_url: str, store_name: str, timeout: float = 10.0) -> None:
        self._base = f"{dapr_http_url}/v1.0/state/{store_name}"
        self._timeout = timeout
        self._clients: dict[int, httpx.AsyncClient] = {}

    def _client(self) -> httpx.AsyncClient:
        loop_id = id(asyncio.get_running_loop())
        client = self._clients.get(loop_id)
        if client is None:
            client = httpx.AsyncClient(timeout=self._timeout)
            self._clients[loop_id] = client
        return client

    async def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._client().request(method, url, **kwargs)
        except httpx.HTTPError as error:
            raise DependencyUnavailable(
                f"state store unreachable through the sidecar: {error!r}"
            ) from error

    async def get(self, key: str) -> Entry | None:
        response = await self._request(
            "GET", f"{self._base}/{key}", params={"consistency": "strong"}
        )
        if response.status_code == 204:
            return None
        if response.status_code != 200:
            raise DependencyUnavailable(
                f"state read of {key} failed: {response.status_code} {response.text}"
            )
        return Entry(response.json(), response.headers.get("ETag", ""))

    async def save(self, key: str, value: dict[str, Any], etag: str | None) -> None:
        item: dict[str, Any] = {
            "key": key,
            "value": value,
            "options": {"concurrency": "first-write", "consistency": "strong"},
        }
        if etag is not None:
            item["etag"] = etag
        response = await self._request("POST", self._base, content=json.dumps([item]))
        if response.status_code in (200, 204):
            return
        if response.status_code == 409:
            raise EtagMismatch(key)
        # A create (first-write, no ETag) of a key that exists is refused by the Redis store's
        # version script with a 500 "failed to set key", not a 409: it is the same conflict.
        if etag is None and "failed to set key" in response.text:
            raise EtagMismatch(key)
        raise DependencyUnavailable(
            f"state write of {key} failed: {response.status_code} {response.text}"
        )

    async def delete(self, key: str, etag: str | None = None) -> None:
        headers = {"If-Match": etag} if etag else {}
        response = await self._request("DELETE", f"{self._base}/{key}", headers=headers)
        if response.status_code not in (200, 204):
            if response.status_code == 409:
                raise EtagMismatch(key)
            raise DependencyUnavailable(f"state delete of {key} failed: {response.status_code}")

    async def aclose(self) -> None:
        """Close this loop's client. Clients of other loops (the worker's, stopped by now) can
        only be closed from their own loop; their sockets go with the process."""
        clients, self._clients = self._clients, {}
        own = clients.get(id(asyncio.get_running_loop()))
        if own is not None:
            await own.aclose()
