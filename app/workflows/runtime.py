"""The only place that registers workflows and activities with a Dapr WorkflowRuntime."""

from __future__ import annotations

import asyncio
import functools
import logging
import typing
from collections.abc import Awaitable, Callable
from typing import Any

from dapr.ext.workflow import WorkflowActivityContext, WorkflowRuntime
from dapr.ext.workflow.logger import LoggerOptions
from opentelemetry import trace
from pydantic import BaseModel

from app.errors import DependencyUnavailable
from app.workflows.activities import OrderActivities
from app.workflows.contracts import WORKFLOW_NAME, ActivityName
from app.workflows.failpoints import NO_FAILPOINTS, Failpoints
from app.workflows.order_processing import order_processing
from app.workflows.selftest import (
    SELFTEST_ACTIVITY,
    SELFTEST_WORKFLOW,
    stack_selftest,
    stack_selftest_echo,
)

Implementation = Callable[[BaseModel], Awaitable[Any]]
# The SDK's loggers get a silent handler (it gives each a printing one of its own otherwise) and
# propagate to the root logger: its lines come out once, in the app's format (LOG_FORMAT).
SDK_LOGGING = LoggerOptions(log_handler=logging.NullHandler())
# A no-op unless the app installed tracing (app.observability.tracing).
_tracer = trace.get_tracer(__name__)
log = logging.getLogger(__name__)
# Settings.activity_timeout_seconds' default: a healthy activity takes milliseconds.
DEFAULT_ACTIVITY_DEADLINE_SECONDS = 60.0


def activity_implementation(activities: OrderActivities, name: ActivityName) -> Implementation:
    """The OrderActivities method that implements `name` (they share the name)."""
    method: Implementation = getattr(activities, name.value)
    return method


def input_model(method: Implementation) -> type[BaseModel]:
    """The pydantic model an activity method takes (its one parameter's annotation)."""
    hints = typing.get_type_hints(method)
    model = next(hint for parameter, hint in hints.items() if parameter != "return")
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise TypeError(f"{method} must take one pydantic model, not {model!r}")
    return model


async def run_activity(
    method: Callable[[Any], Awaitable[Any]],
    request: BaseModel,
    order_id: str,
    deadline_seconds: float,
    failpoints: Failpoints = NO_FAILPOINTS,
) -> Any:
    """`method(request)` within `deadline_seconds`. An activity that outlives it is cut short
    and fails as DependencyUnavailable: all an activity waits on is the sidecar and the state
    store, so a run that hangs is one of them not answering, and the workflow retries that kind
    of failure (RETRY_INFRASTRUCTURE); the activities are idempotent, so the next run is safe
    (each write is a compare-and-swap or a create of a key the first run may have made). The
    same error class as before, not a new one: the workflow already retries it, histories
    written before hold no other kind, and a replica on the previous version decides alike.
    The failpoints (off unless FAILPOINTS_FILE is set) fault the activity at its two edges."""
    name = getattr(method, "__name__", "activity")
    await failpoints.pause(order_id, name, "start")
    try:
        async with asyncio.timeout(deadline_seconds) as deadline:
            await failpoints.fail(order_id, name, "start")
            result = await method(request)
            await failpoints.fail(order_id, name, "end")
    except TimeoutError:
        if not deadline.expired():
            raise  # a timeout of the activity's own, not the deadline
        log.warning(
            "order %s: %s did not finish within %g s; cut short, to be retried",
            order_id,
            name,
            deadline_seconds,
        )
        raise DependencyUnavailable(
            f"activity {name} did not finish within {deadline_seconds:g} s"
        ) from None
    await failpoints.pause(order_id, name, "end")
    return result


def _order_activity(
    method: Implementation, deadline_seconds: float, failpoints: Failpoints
) -> Callable[[WorkflowActivityContext, BaseModel], Awaitable[Any]]:
    # A fresh function per activity: the SDK tags the registered function object, so sharing or
    # decorating one would collide, and the OrderActivities methods stay plain and testable.
    name = method.__name__

    async def activity(ctx: WorkflowActivityContext, request: BaseModel) -> Any:
        # The workflow instance is the order (its id is the order id).
        attributes = {"order.id": ctx.workflow_id, "activity.name": name}
        with _tracer.start_as_current_span(f"activity {name}", attributes=attributes):
            return await run_activity(
                method, request, ctx.workflow_id, deadline_seconds, failpoints
            )

    # The SDK reads this annotation to turn the JSON input into the method's model.
    activity.__annotations__ = {
        "ctx": WorkflowActivityContext,
        "request": input_model(method),
        "return": Any,
    }
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


def build_runtime(
    activities: OrderActivities,
    host: str,
    port: int,
    activity_deadline_seconds: float = DEFAULT_ACTIVITY_DEADLINE_SECONDS,
    failpoints: Failpoints = NO_FAILPOINTS,
) -> WorkflowRuntime:
    runtime = WorkflowRuntime(host=host, port=str(port), logger_options=SDK_LOGGING)
    runtime.register_workflow(_workflow(order_processing), name=WORKFLOW_NAME)
    runtime.register_workflow(_workflow(stack_selftest), name=SELFTEST_WORKFLOW)
    runtime.register_activity(_selftest_activity(), name=SELFTEST_ACTIVITY)
    for name in ActivityName:
        implementation = activity_implementation(activities, name)
        activity = _order_activity(implementation, activity_deadline_seconds, failpoints)
        runtime.register_activity(activity, name=name.value)
    return runtime
