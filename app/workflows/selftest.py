"""A tiny workflow that proves the engine end to end: one activity, one external event.

The integration smoke tests (and anyone debugging a deployment) start it to check that daprd,
placement, scheduler, Redis and this app's worker all work together, independent of orders.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, Final

from app.workflows.order_processing import WorkflowContext

SELFTEST_WORKFLOW: Final = "stack_selftest"
SELFTEST_ACTIVITY: Final = "stack_selftest_echo"
SELFTEST_EVENT: Final = "proceed"


def stack_selftest(ctx: WorkflowContext, payload: str) -> Generator[Any, Any, dict[str, Any]]:
    echoed = yield ctx.call_activity(SELFTEST_ACTIVITY, input=payload)
    ctx.set_custom_status("waiting")
    event = yield ctx.wait_for_external_event(SELFTEST_EVENT)
    return {"echo": echoed, "event": event}


def stack_selftest_echo(payload: str) -> str:
    return f"echo:{payload}"
