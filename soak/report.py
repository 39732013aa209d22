"""The soak's report: orders and throughput, outcomes by fate and reason, failed answers by kind,
the faults and how long each took to heal, and the auditor's verdict (markdown tables, as
docs/soak.md publishes them)."""

from __future__ import annotations

import statistics
from collections import Counter

from bench.load import percentile
from bench.report import markdown_table
from soak.chaos import Injected
from soak.orders import FATES
from soak.run import SoakResult


def _rate(count: int, seconds: float) -> str:
    return f"{count / seconds:.1f}/s" if seconds > 0 else "-"


def orders_section(result: SoakResult) -> str:
    orders = result.orders
    accepted = [o.accepted_at - result.started for o in orders if o.accepted_at is not None]
    finished = [o.finished_at - result.started for o in orders if o.finished_at is not None]
    took = [
        o.finished_at - o.accepted_at
        for o in orders
        if o.finished_at is not None and o.accepted_at is not None
    ]
    last_accept, last_finish = max(accepted, default=0.0), max(finished, default=0.0)
    rows = [
        ["orders", str(len(orders))],
        ["accepted", f"{len(accepted)} in {last_accept:.0f} s ({_rate(len(accepted), last_accept)})"],
        ["finished", f"{len(finished)} in {last_finish:.0f} s ({_rate(len(finished), last_finish)})"],
        ["never finished", str(len(result.unfinished))],
        ["accepted to finished (seen by the client), p50 / p99 / max",
         f"{percentile(took, 0.5):.1f} / {percentile(took, 0.99):.1f} / {max(took, default=0):.1f} s"],
        ["probe orders (one after each fault)", str(len(result.probe_orders))],
    ]  # fmt: skip
    return markdown_table(["", ""], rows)


def outcomes_section(result: SoakResult) -> str:
    counts = Counter((o.fate, str(o.reason)) for o in result.orders if o.outcome is not None)
    reasons = sorted({reason for _, reason in counts}, key=lambda r: (r != "None", r))
    rows = [
        [fate, *(str(counts[fate, reason]) for reason in reasons), str(sum(counts[fate, r] for r in reasons))]
        for fate in FATES
    ]  # fmt: skip
    totals = Counter(reason for _, reason in counts.elements())
    rows.append(["all", *(str(totals[reason]) for reason in reasons), str(sum(totals.values()))])
    head = ["fate", *("processed" if r == "None" else r for r in reasons), "finished"]
    answers = Counter(
        (o.fate, o.decision_answer) for o in result.orders if o.decision_answer is not None
    )
    decided = ", ".join(
        f"{fate} {answers[fate, 202]} x 202, {answers[fate, 409]} x 409"
        for fate in FATES
        if answers[fate, 202] + answers[fate, 409]
    )
    return markdown_table(head, rows) + f"\n\nManagers' requests answered: {decided}."


def failures_section(result: SoakResult) -> str:
    if not result.failures:
        return "No request was answered 5xx or went unanswered."
    rows = [[kind, str(count)] for kind, count in sorted(result.failures.items())]
    return markdown_table(["request: failed answer (repeated by the client)", "count"], rows)


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    return f"median {statistics.median(values):.1f} s, max {max(values):.1f} s ({len(values)})"


def faults_section(result: SoakResult) -> str:
    faults = result.faults
    rows = [
        [str(n), f"{f.at:.0f}", f.description,
         f"{f.healed_after:.1f}" if f.healed_after is not None else f"NOT HEALED: {f.problem}"]
        for n, f in enumerate(faults, 1)
    ]  # fmt: skip
    table = markdown_table(["#", "at s", "fault", "healed after s"], rows)

    def healed(chosen: list[Injected]) -> list[float]:
        return [f.healed_after for f in chosen if f.healed_after is not None]

    lines = [f"- all: {_spread(healed(faults))}"]
    for action in ("kill", "freeze"):
        lines.append(
            f"- {action}: {_spread(healed([f for f in faults if f.fault.action == action]))}"
        )
    components = sorted({f.fault.component for f in faults})
    for name in components:
        lines.append(
            f"- {name}: {_spread(healed([f for f in faults if f.fault.component == name]))}"
        )
    restarts = ", ".join(f"{name} {count}" for name, count in sorted(result.restarts.items()))
    return (
        table + "\n\nRecovery (from the fault, a freeze's duration included, until the component "
        "passed its probe, /readyz answered 200 and a new order completed):\n"
        + "\n".join(lines)
        + f"\n\nRestarts by the supervisor: {restarts or 'none'}."
    )


def audit_section(result: SoakResult) -> str:
    audit = result.audit
    counted = ", ".join(f"{name} {count}" for name, count in audit["checked"].items())
    verdict = "ok" if audit["ok"] else f"{len(audit['violations'])} violation(s)"
    lines = [f"audit: {verdict} ({counted})"]
    lines += [
        f"VIOLATION {v['invariant']}: order {v['order_id']}: {v['detail']}"
        for v in audit["violations"]
    ]
    return "\n".join(lines)


def report(result: SoakResult) -> str:
    parts = [
        "Orders:\n\n" + orders_section(result),
        "Outcomes by fate and reason:\n\n" + outcomes_section(result),
        "Failed answers by kind:\n\n" + failures_section(result),
        "Faults:\n\n" + faults_section(result),
        "Auditor:\n\n" + audit_section(result),
    ]
    odd = result.unexpected[:10] + result.unfinished[:10]
    if odd:
        parts.append(
            "Orders to look at:\n"
            + "\n".join(
                f"- {o.order_id} ({o.fate}): {o.outcome['result'] if o.outcome else o.error or 'no outcome'}"
                for o in odd
            )
        )
    problems = result.problems
    parts.append("Verdict: " + ("; ".join(problems) if problems else "clean"))
    return "\n\n".join(parts)
