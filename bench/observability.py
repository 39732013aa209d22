"""What observability costs: the service with it off and on (Prometheus scraping the app and
the Dapr processes, the app and daprd tracing every order into Jaeger), on stacks started
alternately, off, on, off, on, so the machine's drift falls on both alike."""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from bench.load import Meter, Run, closed_loop
from bench.service import APP_ENV, service_order, stocked_api, warm_up
from devstack.stack import private_stack

ROUNDS = 2


async def _one_stack(observability: bool, clients: int, seconds: float) -> Run:
    with tempfile.TemporaryDirectory(prefix="bench-observability-") as data_dir:
        stack = private_stack(Path(data_dir), app_env=APP_ENV, observability=observability)
        with stack:
            # Prometheus and Jaeger too, when on: what observability costs includes them.
            pids = {name: stack.pid(name) for name in stack.service_order}
            costs = Meter(pids, stack.settings.redis_port, stack.settings.dapr_metrics_port)
            async with stocked_api(stack.app_url) as api:
                one = service_order(api)
                await closed_loop(warm_up(), one, costs)
                mode = f"observability {'on' if observability else 'off'}"
                return await closed_loop(Run(mode, clients, seconds=seconds), one, costs)


async def measure(clients: int, seconds: float) -> list[Run]:
    runs = []
    for _ in range(ROUNDS):
        for observability in (False, True):
            runs.append(await _one_stack(observability, clients, seconds))
    return runs


def summary(runs: list[Run]) -> str:
    def median(on: bool, value: str) -> float:
        mode = f"observability {'on' if on else 'off'}"
        chosen = [run for run in runs if run.mode == mode]
        if value == "throughput":
            return statistics.median(run.throughput for run in chosen)
        if value == "all":
            return statistics.median(
                sum(run.cpu_ms_per_order(name) for name in run.cpu_seconds) for run in chosen
            )
        return statistics.median(run.cpu_ms_per_order(value) for run in chosen)

    off, on = median(False, "throughput"), median(True, "throughput")
    lines = [
        f"- orders/s, median of {ROUNDS} alternating stacks each: off {off:.1f}, on {on:.1f} "
        f"(on ÷ off = {on / off:.2f})"
    ]
    for name in ("app", "daprd", "all"):
        lines.append(
            f"- {'every process (with Prometheus and Jaeger when on)' if name == 'all' else name}"
            f" CPU per order: off {median(False, name):.1f} ms, "
            f"on {median(True, name):.1f} ms"
        )
    return "\n".join(lines)
