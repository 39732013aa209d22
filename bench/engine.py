"""The engine's own ceiling: a workflow of five activities in series that do no I/O (the shape
of the Dapr project's performance workflow, written here), so what it costs is the engine's
bookkeeping (history, reminders, placement of actors) and the SDK's, nothing of this service.

With it, one `make bench` run shows three figures: the engine alone, the service's workflow and
activities without HTTP (the same-workflow ceiling), and the service through its API. Their
gaps are what the activities cost and what HTTP costs."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from dapr.ext.workflow import DaprWorkflowContext, WorkflowActivityContext, WorkflowRuntime

SERIES_WORKFLOW = "bench_series"
SERIES_ACTIVITY = "bench_add"
SERIES_LENGTH = 5


def series(ctx: DaprWorkflowContext, start: int) -> Generator[Any, Any, int]:
    total = start
    for _ in range(SERIES_LENGTH):
        total = yield ctx.call_activity(SERIES_ACTIVITY, input=total)
    return int(total)


def add_one(ctx: WorkflowActivityContext, value: int) -> int:
    return value + 1


def register_series(runtime: WorkflowRuntime) -> None:
    """Call once per process: the SDK tags these functions when it registers them."""
    runtime.register_workflow(series, name=SERIES_WORKFLOW)
    runtime.register_activity(add_one, name=SERIES_ACTIVITY)
