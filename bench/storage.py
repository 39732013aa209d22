"""`make bench-storage`: what finished orders leave in Redis, with the retention policy on.

Places small orders with 30 closed-loop clients on a private stack whose retention is 5 s, and
samples Redis (keys, used memory) every 500 finished orders; at the end, waits for the last
histories to be purged and prints keys and bytes per finished order.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import httpx
import redis

from bench.service import APP_ENV, TOKEN
from devstack.settings import APP_ID
from devstack.stack import Stack, private_stack

RETENTION_SECONDS = 5


def redis_figures(stack: Stack) -> tuple[int, int]:
    with redis.Redis(port=stack.settings.redis_port) as client:
        return int(client.dbsize()), int(client.info("memory")["used_memory"])


def workflow_keys(stack: Stack) -> int:
    with redis.Redis(port=stack.settings.redis_port) as client:
        return sum(1 for _ in client.scan_iter(match=f"{APP_ID}||dapr.internal*", count=5000))


async def purged(stack: Stack, deadline_seconds: float) -> None:
    """Return once no workflow history is left (the last ones finished RETENTION_SECONDS ago)."""
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        if workflow_keys(stack) == 0:
            return
        await asyncio.sleep(1)


async def place(api: httpx.AsyncClient, total: int, clients: int, stack: Stack) -> None:
    done = 0
    lock = asyncio.Lock()

    async def client() -> None:
        nonlocal done
        while True:
            async with lock:
                if done >= total:
                    return
                done += 1
                number = done
            created = await api.post("/orders", json={"item": "paperclip", "quantity": 1})
            created.raise_for_status()
            order_id = created.json()["order_id"]
            finished = await api.get(f"/orders/{order_id}", params={"wait": 30})
            assert finished.json()["result"] == {"processed": True, "reason": None}
            if number % 500 == 0:
                keys, memory = redis_figures(stack)
                print(f"| {number} | {keys} | {memory / 1e6:.1f} MB |", flush=True)

    await asyncio.gather(*(client() for _ in range(clients)))


async def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.storage")
    parser.add_argument("--orders", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-storage-") as data_dir:
        retention = {"ORDER_HISTORY_RETENTION_SECONDS": RETENTION_SECONDS}
        with private_stack(Path(data_dir), app_env=APP_ENV, settings=retention) as stack:
            async with httpx.AsyncClient(base_url=stack.app_url, timeout=60) as api:
                headers = {"Authorization": f"Bearer {TOKEN}"}
                restock = {"item": "paperclip", "quantity": 1_000_000}
                (
                    await api.post("/inventory/restock", headers=headers, json=restock)
                ).raise_for_status()
                base_keys, base_memory = redis_figures(stack)
                print(
                    f"Retention {RETENTION_SECONDS} s; Redis before: {base_keys} keys, {base_memory / 1e6:.1f} MB"
                )
                print("\n| finished orders | Redis keys | used_memory |\n|---|---|---|")
                started = time.monotonic()
                await place(api, args.orders, args.clients, stack)
                elapsed = time.monotonic() - started
            await purged(stack, deadline_seconds=120)
            keys, memory = redis_figures(stack)
            left = workflow_keys(stack)
    print(
        f"\n{args.orders} orders in {elapsed:.0f} s; after the last purge: {keys} keys "
        f"({(keys - base_keys) / args.orders:.2f} per finished order), "
        f"used_memory {memory / 1e6:.1f} MB ({(memory - base_memory) / args.orders:.0f} B per "
        f"finished order); workflow keys left: {left}"
    )


if __name__ == "__main__":
    asyncio.run(main())
