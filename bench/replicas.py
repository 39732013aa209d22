"""`make bench-replicas`: the service's throughput with 1, 2 and 3 replicas on this machine.

Each replica count gets a fresh stack on free ports (`REPLICAS=N`: N app + daprd pairs sharing
Redis, placement and the scheduler, behind nginx when N > 1) and the same closed loop as
`make bench`'s service mode: every client places a small order (one paperclip, no approval)
through the stack's one address and waits until it has finished before placing the next.
On a 2-core machine expect no gain: the replicas share the same two cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from bench.load import Meter, Run, closed_loop, percentile
from bench.service import APP_ENV, service_order, stocked_api, warm_up
from devstack.stack import private_stack

# Process groups whose CPU is summed across replicas (a stack's service names start with them).
GROUPS = ("app", "daprd", "proxy", "redis", "scheduler", "placement", "bench")


async def measure(replicas: int, clients: int, seconds: float) -> Run:
    with tempfile.TemporaryDirectory(prefix="bench-replicas-") as data_dir:
        stack = private_stack(Path(data_dir), app_env=APP_ENV, replicas=replicas)
        stack.start()
        try:
            async with stocked_api(stack.app_url) as api:
                pids = {name: stack.pid(name) for name in stack.service_order}
                # Sidecar calls are counted on replica 1's daprd only (the table leaves them out).
                meter = Meter(
                    pids | {"bench": os.getpid()},
                    stack.settings.redis_port,
                    stack.settings.dapr_metrics_port,
                )
                await closed_loop(warm_up(), service_order(api), meter)
                name = f"{replicas} replica{'s' if replicas > 1 else ''}"
                run = Run(name, concurrency=clients, seconds=seconds)
                await closed_loop(run, service_order(api), meter)
        finally:
            stack.stop()
    return run


def cpu_share(run: Run, group: str) -> float:
    """Share of the machine's cores the group's processes (every replica's) used."""
    return sum(run.cpu_share(name) for name in run.cpu_seconds if name.split("-")[0] == group)


def table(runs: list[Run]) -> str:
    head = (
        "| replicas | clients | completed/s | accept p50 ms | accept p99 ms | completion p50 ms"
        " | p99 | errors | " + " | ".join(f"CPU {group}" for group in GROUPS) + " |"
    )
    lines = [head, "|" + "---|" * (8 + len(GROUPS))]
    for run in runs:
        cpu = " | ".join(f"{cpu_share(run, group):.0%}" for group in GROUPS)
        lines.append(
            f"| {run.mode} | {run.concurrency} | {run.throughput:.1f} | "
            f"{percentile(run.accept_ms, 0.5):.1f} | {percentile(run.accept_ms, 0.99):.1f} | "
            f"{percentile(run.completion_ms, 0.5):.0f} | {percentile(run.completion_ms, 0.99):.0f}"
            f" | {run.errors} | {cpu} |"
        )
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.replicas")
    parser.add_argument("--seconds", type=float, default=30.0, help="duration of each run")
    parser.add_argument("--clients", type=int, default=30, help="concurrent clients")
    parser.add_argument("--replicas", default="1,2,3", help="comma-separated replica counts")
    args = parser.parse_args()
    counts = [int(count) for count in args.replicas.split(",")]
    runs = [await measure(count, args.clients, args.seconds) for count in counts]
    print(
        f"\nMachine: {platform.node()} ({os.cpu_count()} cores, {platform.machine()}), "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, command: `make bench-replicas` "
        f"(python -m bench.replicas --seconds {args.seconds:g} --clients {args.clients} "
        f"--replicas {args.replicas}). CPU: share of all cores, summed over the replicas.\n"
    )
    print(table(runs))


if __name__ == "__main__":
    asyncio.run(main())
