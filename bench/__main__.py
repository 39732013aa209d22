"""`make bench`: closed-loop load on a real local stack, and the same work without HTTP.

For each concurrency (1, 10, 30 by default) and a fixed duration, every client places a small
order (one paperclip, no approval) and waits until it has finished before placing the next.

- service: clients call POST /orders, then GET /orders/{id}?wait=30 (the API's long poll, which
  answers when the workflow finishes) on the running app.
- ceiling: the app is stopped; this process registers the same workflow and activities with its
  own worker on the same daprd and drives them through the SDK (schedule, wait for completion).

Time to completion is measured from the engine's and the service's own timestamps (accepted ->
workflow last updated), so it does not include the time the answer takes to reach the client.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from dapr.conf import settings as dapr_sdk_settings
from dapr.ext.workflow import WorkflowStatus
from dapr.ext.workflow.aio import DaprWorkflowClient

from app.config import Settings
from app.main import sidecar_store, workflow_worker
from app.workflows.contracts import WORKFLOW_NAME, OrderInput
from devstack.dapr_build import build
from devstack.stack import SERVICE_ORDER, Stack, isolated_settings

TOKEN = "bench-token"
ENGINE = ("redis", "placement", "scheduler", "daprd")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    mode: str
    concurrency: int
    seconds: float
    accept_ms: list[float] = field(default_factory=list)
    completion_ms: list[float] = field(default_factory=list)
    errors: int = 0
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def throughput(self) -> float:
        return len(self.completion_ms) / self.seconds


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


async def closed_loop(
    run: Run, one_order: Callable[[Run], Awaitable[None]], pids: dict[str, int]
) -> Run:
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    deadline = time.monotonic() + run.seconds

    async def client() -> None:
        while time.monotonic() < deadline:
            try:
                await one_order(run)
            except Exception:  # a benchmark counts failures instead of stopping at the first
                run.errors += 1

    started = time.monotonic()
    await asyncio.gather(*(client() for _ in range(run.concurrency)))
    wall = time.monotonic() - started
    cores = os.cpu_count() or 1
    run.cpu = {
        name: (cpu_seconds(pid) - before[name]) / (wall * cores) for name, pid in pids.items()
    }
    return run


def service_order(api: httpx.AsyncClient) -> Callable[[Run], Awaitable[None]]:
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


def sdk_order(client: DaprWorkflowClient) -> Callable[[Run], Awaitable[None]]:
    async def one(run: Run) -> None:
        order_id = f"ceiling-{uuid.uuid4().hex}"
        payload = OrderInput(
            order_id=order_id, item="paperclip", quantity=1, total_cost=5,
            approval_required=False, approval_timeout_seconds=200,
        )  # fmt: skip
        sent = time.perf_counter()
        await client.schedule_new_workflow(WORKFLOW_NAME, input=payload, instance_id=order_id)
        run.accept_ms.append((time.perf_counter() - sent) * 1000)
        state = await client.wait_for_workflow_completion(order_id, timeout_in_seconds=120)
        if state is None or state.runtime_status != WorkflowStatus.COMPLETED:
            raise RuntimeError(f"workflow {order_id} did not complete")
        run.completion_ms.append((state.last_updated_at - state.created_at).total_seconds() * 1000)

    return one


async def measure_service(stack: Stack, levels: list[int], seconds: float) -> list[Run]:
    runs = []
    async with httpx.AsyncClient(base_url=stack.app_url, timeout=60) as api:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        for _ in range(5):  # plenty of paperclips: every order should complete
            (
                await api.post(
                    "/inventory/restock",
                    headers=headers,
                    json={"item": "paperclip", "quantity": 1_000_000},
                )
            ).raise_for_status()
        pids = {name: stack.pid(name) for name in SERVICE_ORDER} | {"bench": os.getpid()}
        await closed_loop(Run("warm-up", 10, 5.0), service_order(api), pids)
        for level in levels:
            runs.append(await closed_loop(Run("service", level, seconds), service_order(api), pids))
    return runs


async def measure_ceiling(stack: Stack, levels: list[int], seconds: float) -> list[Run]:
    settings = Settings(
        dapr_http_port=stack.settings.dapr_http_port,
        dapr_grpc_port=stack.settings.dapr_grpc_port,
        dapr_api_token=stack.settings.dapr_api_token,
    )
    # The SDK's clients read the token from its settings module (set from the environment once).
    dapr_sdk_settings.DAPR_API_TOKEN = stack.settings.dapr_api_token  # type: ignore[attr-defined]
    # The same worker the app runs, built by the same factory: only the HTTP layer is missing.
    store = sidecar_store(settings)
    worker = workflow_worker(store, settings)
    await asyncio.to_thread(worker.start)
    client = DaprWorkflowClient(host="127.0.0.1", port=str(settings.dapr_grpc_port))
    pids = {name: stack.pid(name) for name in ENGINE} | {"bench": os.getpid()}
    try:
        await closed_loop(Run("warm-up", 10, 5.0), sdk_order(client), pids)
        return [
            await closed_loop(Run("ceiling", level, seconds), sdk_order(client), pids)
            for level in levels
        ]
    finally:
        await asyncio.to_thread(worker.shutdown)
        await store.aclose()


def table(runs: list[Run]) -> str:
    names = ["app", "daprd", "redis", "scheduler", "placement", "bench"]
    head = (
        "| mode | clients | completed/s | accept p50 ms | accept p99 ms | completion p50 ms | p95 | p99 | errors | "
        + " | ".join(f"CPU {n}" for n in names)
        + " |"
    )
    lines = [head, "|" + "---|" * (9 + len(names))]
    for run in runs:
        cpu = " | ".join(f"{run.cpu[n]:.0%}" if n in run.cpu else "-" for n in names)
        lines.append(
            f"| {run.mode} | {run.concurrency} | {run.throughput:.1f} | {percentile(run.accept_ms, 0.5):.1f} | "
            f"{percentile(run.accept_ms, 0.99):.1f} | {percentile(run.completion_ms, 0.5):.0f} | "
            f"{percentile(run.completion_ms, 0.95):.0f} | {percentile(run.completion_ms, 0.99):.0f} | {run.errors} | {cpu} |"
        )
    return "\n".join(lines)


def ratios(runs: list[Run]) -> str:
    service = {run.concurrency: run for run in runs if run.mode == "service"}
    ceiling = {run.concurrency: run for run in runs if run.mode == "ceiling"}
    return "\n".join(
        f"- {level} clients: service / ceiling = {service[level].throughput / ceiling[level].throughput:.2f}"
        for level in sorted(service) if level in ceiling and ceiling[level].throughput
    )  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of each measured run")
    parser.add_argument("--clients", default="1,10,30", help="comma-separated concurrency levels")
    args = parser.parse_args()
    levels = [int(level) for level in args.clients.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-") as data_dir:
        settings = isolated_settings(Path(data_dir))
        build(settings)
        stack = Stack(settings, app_env={"MANAGER_TOKEN": TOKEN, "LOG_LEVEL": "WARNING"})
        stack.start()
        try:
            runs = await measure_service(stack, levels, args.seconds)
            stack.stop_service("app")
            runs += await measure_ceiling(stack, levels, args.seconds)
        finally:
            stack.stop()
    print(f"\nMachine: {platform.node()} ({os.cpu_count()} cores, {platform.machine()}), "
          f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, Dapr {stack.version}, "
          f"command: `make bench` (python -m bench --seconds {args.seconds:g} --clients {args.clients})\n")  # fmt: skip
    print(table(runs))
    print("\nThroughput ratio (same run):\n" + ratios(runs))


if __name__ == "__main__":
    asyncio.run(main())
