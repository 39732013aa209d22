"""The benchmark's tables: throughput and latency, cost per completed order, the ratios between
the modes of the same run, and the issue's goals checked against them."""

from __future__ import annotations

from bench.load import Run, percentile

PROCESSES = ("app", "daprd", "scheduler", "redis", "placement", "bench")


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def markdown_table(head: list[str], rows: list[list[str]]) -> str:
    return "\n".join([_row(head), _row(["---"] * len(head)), *map(_row, rows)])


def latency_table(runs: list[Run]) -> str:
    head = ["mode", "load", "completed/s", "accept p50 ms", "accept p99 ms",
            "completion p50 ms", "p95", "p99", "errors"]  # fmt: skip
    return markdown_table(
        head,
        [
            [
                run.mode,
                run.load,
                f"{run.throughput:.1f}",
                f"{percentile(run.accept_ms, 0.5):.1f}",
                f"{percentile(run.accept_ms, 0.99):.1f}",
                f"{percentile(run.completion_ms, 0.5):.0f}",
                f"{percentile(run.completion_ms, 0.95):.0f}",
                f"{percentile(run.completion_ms, 0.99):.0f}",
                str(run.errors),
            ]
            for run in runs
        ],
    )


def cost_table(runs: list[Run]) -> str:
    """CPU milliseconds per completed order, by process (in the engine and workflow modes the
    bench process is also the workflow worker, the app's part), Redis commands and calls daprd
    served per order."""
    head = ["mode", "load", *(f"CPU ms {name}" for name in PROCESSES), "CPU ms all",
            "machine busy", "Redis cmds", "sidecar calls"]  # fmt: skip
    rows = []
    for run in runs:
        present = [name for name in PROCESSES if name in run.cpu_seconds]
        cells = [
            f"{run.cpu_ms_per_order(name):.1f}" if name in present else "-" for name in PROCESSES
        ]
        total = sum(run.cpu_ms_per_order(name) for name in present)
        busy = sum(run.cpu_share(name) for name in present)
        rows.append([run.mode, run.load, *cells, f"{total:.1f}", f"{busy:.0%}",
                     f"{run.redis_per_order:.0f}", f"{run.sidecar_calls_per_order:.1f}"])  # fmt: skip
    return markdown_table(head, rows)


def _by_level(runs: list[Run], mode: str) -> dict[int, Run]:
    return {run.concurrency: run for run in runs if run.mode == mode}


def ratios(runs: list[Run]) -> str:
    engine, workflow, service = (
        _by_level(runs, mode) for mode in ("engine", "workflow", "service")
    )
    lines = []
    for level in sorted(engine):
        parts = []
        if level in service:
            parts.append(
                f"service ÷ engine = {service[level].throughput / engine[level].throughput:.2f}"
            )
        if level in workflow:
            parts.append(
                f"workflow ÷ engine = {workflow[level].throughput / engine[level].throughput:.2f} "
                "(what the activities cost)"
            )
        if level in service and level in workflow:
            parts.append(
                f"service ÷ workflow = {service[level].throughput / workflow[level].throughput:.2f} "
                "(what HTTP costs)"
            )
        lines.append(f"- {level} clients: " + "; ".join(parts))
    return "\n".join(lines)


def goals(runs: list[Run], fractions: list[float]) -> str:
    engine, service = _by_level(runs, "engine"), _by_level(runs, "service")
    top = max(service)
    ratio = service[top].throughput / engine[top].throughput
    lines = [f"- service ÷ engine at {top} clients ≥ 0.85: {ratio:.2f} "
             f"({'met' if ratio >= 0.85 else 'not met'})"]  # fmt: skip
    opened = [run for run in runs if run.mode == "open loop"]
    if opened and fractions:
        run = opened[-1]
        post99 = percentile(run.accept_ms, 0.99)
        done95 = percentile(run.completion_ms, 0.95)
        held = run.errors == 0 and post99 <= 50 and done95 <= 300
        lines.append(
            f"- open loop at {fractions[-1]:g} x engine ({run.rate:.1f}/s): errors {run.errors}, "
            f"POST p99 {post99:.0f} ms (≤ 50), completion p95 {done95:.0f} ms (≤ 300): "
            f"{'met' if held else 'not met'}"
        )
    app, daprd = service[top].cpu_ms_per_order("app"), service[top].cpu_ms_per_order("daprd")
    lines.append(f"- app CPU per order ≤ daprd's at {top} clients: {app:.1f} ms vs {daprd:.1f} ms "
                 f"({'met' if app <= daprd else 'not met'})")  # fmt: skip
    return "\n".join(lines)


def report(runs: list[Run], fractions: list[float]) -> str:
    parts = [
        latency_table(runs),
        "CPU per completed order (ms) and Redis commands per order:\n\n" + cost_table(runs),
        "Throughput ratios (same run):\n" + ratios(runs),
    ]
    if any(run.mode == "service" for run in runs):
        parts.append("Goals:\n" + goals(runs, fractions))
    return "\n\n".join(parts)
