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


class _Refused(Exception):
    """daprd answered, but not with its metadata (e.g. 401 for a wrong API token)."""


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
        readiness = await self._sidecar_readiness()
        return await self._store_readiness() if readiness.ready else readiness

    async def _metadata(self) -> dict[str, Any]:
        """daprd's metadata; `_Refused` with the reason when it does not answer 200."""
        reply = await self._client.get(
            f"{self._url}/v1.0/metadata", headers=self._headers, timeout=2.0
        )
        if reply.status_code != 200:
            raise _Refused(f"sidecar metadata answered {reply.status_code}: {reply.text[:200]}")
        metadata: dict[str, Any] = reply.json()
        return metadata

    async def _sidecar_readiness(self) -> Readiness:
        try:
            health = await self._client.get(f"{self._url}/v1.0/healthz", timeout=2.0)
            if health.status_code != 204:
                return Readiness(
                    False, f"sidecar unhealthy: /v1.0/healthz answered {health.status_code}"
                )
            metadata = await self._metadata()
        except _Refused as refused:
            return Readiness(False, str(refused))
        except (httpx.HTTPError, ValueError) as error:
            return Readiness(False, f"sidecar unreachable at {self._url}: {error!r}")
        # The sidecar's own count of connected workflow workers: the truth about whether work
        # items can reach this app, even after a sidecar restart.
        if self._expect_worker and _connected_workers(metadata) < 1:
            return Readiness(
                False, "workflow worker not connected to the sidecar", worker_missing=True
            )
        return Readiness(True, "ok")

    async def worker_connected(self) -> bool:
        """The sidecar counts a workflow worker connected to it (False when it cannot say)."""
        try:
            return _connected_workers(await self._metadata()) > 0
        except (_Refused, httpx.HTTPError, ValueError):
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
        """The sidecar is up but counts no workflow worker of ours (see workflows.worker). The
        state store is not read: the watchdog asks every few seconds and does not need it."""
        return (await self._sidecar_readiness()).worker_missing

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
