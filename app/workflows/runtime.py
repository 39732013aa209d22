"""The only place that registers workflows and activities with a Dapr WorkflowRuntime."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from dapr.ext.workflow import WorkflowActivityContext, WorkflowRuntime

from app.workflows.activities import OrderActivities
from app.workflows.contracts import WORKFLOW_NAME, ActivityName, ActivityRequest
from app.workflows.order_processing import order_processing
from app.workflows.selftest import (
    SELFTEST_ACTIVITY,
    SELFTEST_WORKFLOW,
    stack_selftest,
    stack_selftest_echo,
)


def activity_implementation(
    activities: OrderActivities, name: ActivityName
) -> Callable[[ActivityRequest], Awaitable[Any]]:
    """The OrderActivities method that implements `name` (they share the name)."""
    method: Callable[[ActivityRequest], Awaitable[Any]] = getattr(activities, name.value)
    return method


def _order_activity(
    method: Callable[[ActivityRequest], Awaitable[Any]],
) -> Callable[[WorkflowActivityContext, ActivityRequest], Awaitable[Any]]:
    # A fresh function per activity: the SDK tags the registered function object, so sharing or
    # decorating one would collide, and the OrderActivities methods stay plain and testable. The
    # annotation is what the SDK reads to turn the JSON input into an ActivityRequest.
    async def activity(ctx: WorkflowActivityContext, request: ActivityRequest) -> Any:
        return await method(request)

    return activity


def _workflow(fn: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    # Fresh for the same reason as _order_activity: a replacement runtime (see worker.py)
    # registers the same workflows again, which the SDK refuses for an already-tagged function.
    # `wraps` keeps fn's signature, whose input annotation the SDK reads to build the model.
    @functools.wraps(fn)
    def workflow(ctx: Any, payload: Any) -> Any:
        return fn(ctx, payload)

    return workflow


def _selftest_activity() -> Callable[[WorkflowActivityContext, str], str]:
    # Fresh too: a module-level function would make every replacement runtime fail to register.
    def activity(ctx: WorkflowActivityContext, payload: str) -> str:
        return stack_selftest_echo(payload)

    return activity


def build_runtime(activities: OrderActivities, host: str, port: int) -> WorkflowRuntime:
    runtime = WorkflowRuntime(host=host, port=str(port))
    runtime.register_workflow(_workflow(order_processing), name=WORKFLOW_NAME)
    runtime.register_workflow(_workflow(stack_selftest), name=SELFTEST_WORKFLOW)
    runtime.register_activity(_selftest_activity(), name=SELFTEST_ACTIVITY)
    for name in ActivityName:
        implementation = activity_implementation(activities, name)
        runtime.register_activity(_order_activity(implementation), name=name.value)
    return runtime
