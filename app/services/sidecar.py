"""Readiness of the Dapr sidecar as the sidecar itself reports it, and of the state store behind it."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx

from app.errors import DependencyUnavailable
from app.services.state_store import StateStore

log = logging.getLogger(__name__)

# Never written: reading a missing key is the cheapest round trip to the store.
READINESS_KEY = "readiness-probe"


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str
    # The sidecar is healthy but counts no workflow worker of ours.
    worker_missing: bool = False


def _connected_workers(metadata: dict[str, Any]) -> int:
    return int((metadata.get("workflows") or {}).get("connectedWorkers", 0))


class SidecarProbe:
    def __init__(
        self,
        client: httpx.AsyncClient,
        dapr_http_url: str,
        expect_worker: bool = True,
        api_token: str | None = None,
        store: StateStore | None = None,
        store_deadline: float = 1.5,
    ) -> None:
        self._client = client
        self._store = store
        self._store_deadline = store_deadline
        self._url = dapr_http_url
        self._expect_worker = expect_worker
        # /v1.0/healthz is open; /v1.0/metadata needs the API token when daprd has one.
        self._headers = {"dapr-api-token": api_token} if api_token else {}

    async def readiness(self) -> Readiness:
        try:
            health = await self._client.get(f"{self._url}/v1.0/healthz", timeout=2.0)
            if health.status_code != 204:
                return Readiness(
                    False, f"sidecar unhealthy: /v1.0/healthz answered {health.status_code}"
                )
            reply = await self._client.get(
                f"{self._url}/v1.0/metadata", headers=self._headers, timeout=2.0
            )
            if reply.status_code != 200:
                return Readiness(
                    False, f"sidecar metadata answered {reply.status_code}: {reply.text[:200]}"
                )
            metadata = reply.json()
        except (httpx.HTTPError, ValueError) as error:
            return Readiness(False, f"sidecar unreachable at {self._url}: {error!r}")
        # The sidecar's own count of connected workflow workers: the truth about whether work
        # items can reach this app, even after a sidecar restart.
        workers = _connected_workers(metadata)
        if self._expect_worker and workers < 1:
            return Readiness(
                False, "workflow worker not connected to the sidecar", worker_missing=True
            )
        return await self._store_readiness()

    async def worker_connected(self) -> bool:
        """The sidecar counts a workflow worker connected to it (False when it cannot say)."""
        try:
            reply = await self._client.get(
                f"{self._url}/v1.0/metadata", headers=self._headers, timeout=2.0
            )
            if reply.status_code != 200:
                return False
            return _connected_workers(reply.json()) > 0
        except (httpx.HTTPError, ValueError):
            return False

    async def _store_readiness(self) -> Readiness:
        # daprd stays healthy while Redis is frozen or gone; every order needs the store, so a
        # store that does not answer makes this instance unready (a balancer stops sending).
        if self._store is None:
            return Readiness(True, "ok")
        try:
            async with asyncio.timeout(self._store_deadline):
                await self._store.get(READINESS_KEY)
        except TimeoutError:
            return Readiness(False, f"state store did not answer within {self._store_deadline:g}s")
        except DependencyUnavailable as error:
            return Readiness(False, f"state store unavailable: {error.detail}")
        return Readiness(True, "ok")

    async def request_shutdown(self) -> None:
        """Ask daprd to shut down (its supervisor restarts it); failures are only logged, the
        watchdog asks again if the sidecar stays stuck."""
        try:
            reply = await self._client.post(
                f"{self._url}/v1.0/shutdown", headers=self._headers, timeout=5.0
            )
            log.warning("asked daprd to shut down: %s", reply.status_code)
        except httpx.HTTPError as error:
            log.warning("could not ask daprd to shut down: %r", error)

    async def worker_missing(self) -> bool:
        """The sidecar is up but counts no workflow worker of ours (see workflows.worker)."""
        return (await self.readiness()).worker_missing

    async def wait_healthy(self, seconds: float) -> None:
        """Return once daprd answers its health endpoint; RuntimeError after `seconds`
        (the app may start before its sidecar)."""
        deadline = time.monotonic() + seconds
        url = f"{self._url}/v1.0/healthz"
        while True:
            try:
                if (await self._client.get(url, timeout=2.0)).status_code == 204:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"Dapr sidecar not healthy at {url} after {seconds:.0f}s")
            await asyncio.sleep(0.5)
