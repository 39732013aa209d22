"""Readiness of the Dapr sidecar as the sidecar itself reports it."""

from __future__ import annotations

from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str
    # The sidecar is healthy but counts no workflow worker of ours.
    worker_missing: bool = False


class SidecarProbe:
    def __init__(
        self, client: httpx.AsyncClient, dapr_http_url: str, expect_worker: bool = True
    ) -> None:
        self._client = client
        self._url = dapr_http_url
        self._expect_worker = expect_worker

    async def readiness(self) -> Readiness:
        try:
            health = await self._client.get(f"{self._url}/v1.0/healthz", timeout=2.0)
            if health.status_code != 204:
                return Readiness(
                    False, f"sidecar unhealthy: /v1.0/healthz answered {health.status_code}"
                )
            metadata = (await self._client.get(f"{self._url}/v1.0/metadata", timeout=2.0)).json()
        except (httpx.HTTPError, ValueError) as error:
            return Readiness(False, f"sidecar unreachable at {self._url}: {error!r}")
        # The sidecar's own count of connected workflow workers: the truth about whether work
        # items can reach this app, even after a sidecar restart.
        workers = int((metadata.get("workflows") or {}).get("connectedWorkers", 0))
        if self._expect_worker and workers < 1:
            return Readiness(
                False, "workflow worker not connected to the sidecar", worker_missing=True
            )
        return Readiness(True, "ok")
