"""Load shapes and what each run costs: closed loop (N clients, each waits for its order before
placing the next) and open loop (orders arrive at a fixed rate whatever happens to earlier
ones), with CPU per process and Redis commands per completed order sampled around each run."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis
from prometheus_client.parser import text_string_to_metric_families

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

OneOrder = Callable[["Run"], Awaitable[None]]


@dataclass
class Run:
    mode: str
    concurrency: int = 0  # closed loop: clients
    rate: float = 0.0  # open loop: orders placed per second
    seconds: float = 0.0
    accept_ms: list[float] = field(default_factory=list)
    completion_ms: list[float] = field(default_factory=list)
    errors: int = 0
    wall: float = 0.0
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    redis_commands: int = 0
    sidecar_calls: int = 0  # HTTP requests and gRPC calls daprd served (its own metrics)

    @property
    def load(self) -> str:
        return f"{self.concurrency} clients" if self.rate == 0 else f"{self.rate:.1f}/s"

    @property
    def throughput(self) -> float:
        """Orders completed per second: over the run (closed loop), or over the arrival window
        (open loop, whose wall time includes waiting for the last orders)."""
        window = self.seconds if self.rate else self.wall
        return len(self.completion_ms) / window if window else 0.0

    def cpu_share(self, name: str) -> float:
        """Share of the machine's cores the process used during the run."""
        return self.cpu_seconds[name] / (self.wall * (os.cpu_count() or 1))

    def cpu_ms_per_order(self, name: str) -> float:
        done = len(self.completion_ms)
        return self.cpu_seconds[name] * 1000 / done if done else float("nan")

    @property
    def redis_per_order(self) -> float:
        done = len(self.completion_ms)
        return self.redis_commands / done if done else float("nan")

    @property
    def sidecar_calls_per_order(self) -> float:
        done = len(self.completion_ms)
        return self.sidecar_calls / done if done else float("nan")


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


# daprd's counters of the calls it served: the app's state calls (HTTP) and the workflow
# client's and worker's calls (gRPC; the worker's stream counts once, when it ends).
_SIDECAR_CALLS = ("dapr_http_server_request_count", "dapr_grpc_io_server_completed_rpcs")


def sidecar_calls(metrics_port: int) -> int:
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
    return round(
        sum(
            sample.value
            for family in text_string_to_metric_families(text)
            if family.name in _SIDECAR_CALLS
            for sample in family.samples
        )
    )


@dataclass
class Meter:
    """What a run costs: CPU of each named process, commands Redis processed, calls daprd
    served."""

    pids: dict[str, int]
    redis_port: int
    dapr_metrics_port: int

    def _redis_commands(self) -> int:
        client = redis.Redis(port=self.redis_port)
        try:
            # Minus this INFO call itself, which Redis counts too.
            return int(client.info("stats")["total_commands_processed"])
        finally:
            client.close()

    async def measure(self, run: Run, load: Awaitable[None]) -> Run:
        cpu_before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        commands_before = self._redis_commands()
        calls_before = sidecar_calls(self.dapr_metrics_port)
        started = time.monotonic()
        await load
        run.wall = time.monotonic() - started
        run.redis_commands = self._redis_commands() - commands_before - 1
        run.sidecar_calls = sidecar_calls(self.dapr_metrics_port) - calls_before
        run.cpu_seconds = {
            name: cpu_seconds(pid) - cpu_before[name] for name, pid in self.pids.items()
        }
        return run


async def _counted(run: Run, one_order: OneOrder) -> None:
    try:
        await one_order(run)
    except Exception:  # a benchmark counts failures instead of stopping at the first
        run.errors += 1


async def closed_loop(run: Run, one_order: OneOrder, meter: Meter) -> Run:
    deadline = time.monotonic() + run.seconds

    async def client() -> None:
        while time.monotonic() < deadline:
            await _counted(run, one_order)

    async def clients() -> None:
        await asyncio.gather(*(client() for _ in range(run.concurrency)))

    return await meter.measure(run, clients())


async def open_loop(run: Run, one_order: OneOrder, meter: Meter) -> Run:
    """Place `run.rate` orders a second for `run.seconds` on a fixed schedule (a late order does
    not delay the next), then wait for every order placed to finish. The wall time, and so the
    throughput, covers the arrivals only."""

    async def arrivals() -> None:
        start = time.monotonic()
        interval = 1.0 / run.rate
        placed: list[asyncio.Task[None]] = []
        for number in range(round(run.rate * run.seconds)):
            delay = start + number * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            placed.append(asyncio.create_task(_counted(run, one_order)))
        await asyncio.sleep(max(0.0, start + run.seconds - time.monotonic()))
        await asyncio.gather(*placed)

    return await meter.measure(run, arrivals())
