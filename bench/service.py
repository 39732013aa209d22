"""The service as the benchmarks drive it: one small order placed and followed to its end
through the API, with the stock topped up first so that every order can complete."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

import httpx

from bench.load import OneOrder, Run

TOKEN = "bench-token"
# The app's environment on every benchmark stack: the manager token the benchmark restocks with,
# and warnings only (a log line per order would be part of what is measured).
APP_ENV = {"MANAGER_TOKEN": TOKEN, "LOG_LEVEL": "WARNING"}


@asynccontextmanager
async def stocked_api(url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the service at `url` (no cap on connections: each benchmark client holds
    one), with the paperclips topped up."""
    async with httpx.AsyncClient(
        base_url=url, timeout=60, limits=httpx.Limits(max_connections=None)
    ) as api:
        await restock(api)
        yield api


async def restock(api: httpx.AsyncClient) -> None:
    """Plenty of paperclips: every order should complete."""
    for _ in range(5):
        (
            await api.post(
                "/inventory/restock",
                headers={"Authorization": f"Bearer {TOKEN}"},
                json={"item": "paperclip", "quantity": 1_000_000},
            )
        ).raise_for_status()


def warm_up() -> Run:
    return Run("warm-up", concurrency=10, seconds=5.0)


def service_order(api: httpx.AsyncClient) -> OneOrder:
    async def one(run: Run) -> None:
        sent = time.perf_counter()
        created = await api.post("/orders", json={"item": "paperclip", "quantity": 1})
        run.accept_ms.append((time.perf_counter() - sent) * 1000)
        created.raise_for_status()
        order_id = created.json()["order_id"]
        while True:
            found = (await api.get(f"/orders/{order_id}", params={"wait": 30})).json()
            if found["result"] is not None:
                break
        if found["result"] != {"processed": True, "reason": None}:
            raise RuntimeError(f"order {order_id} ended {found['result']}")
        accepted = datetime.fromisoformat(found["created_at"])
        finished = datetime.fromisoformat(found["updated_at"])
        run.completion_ms.append((finished - accepted).total_seconds() * 1000)

    return one
