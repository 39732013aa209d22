"""The only place that registers workflows and activities with a Dapr WorkflowRuntime."""

from __future__ import annotations

import logging
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

log = logging.getLogger(__name__)


def _order_activity(
    method: Callable[[ActivityRequest], Awaitable[Any]],
) -> Callable[[WorkflowActivityContext, dict[str, Any]], Awaitable[Any]]:
    # A fresh function per activity: the SDK tags the registered function object, so sharing or
    # decorating one would collide, and the OrderActivities methods stay plain and testable.
    async def activity(ctx: WorkflowActivityContext, payload: dict[str, Any]) -> Any:
        return await method(ActivityRequest.model_validate(payload))

    return activity


def _workflow(fn: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    # Fresh for the same reason as _order_activity: a replacement runtime (see WorkerSupervisor)
    # registers the same workflows again, which the SDK refuses for an already-tagged function.
    def workflow(ctx: Any, payload: Any) -> Any:
        return fn(ctx, payload)

    return workflow


def _selftest_activity(ctx: WorkflowActivityContext, payload: str) -> str:
    return stack_selftest_echo(payload)


def build_runtime(activities: OrderActivities, host: str, port: int) -> WorkflowRuntime:
    runtime = WorkflowRuntime(host=host, port=str(port))
    runtime.register_workflow(_workflow(order_processing), name=WORKFLOW_NAME)
    runtime.register_workflow(_workflow(stack_selftest), name=SELFTEST_WORKFLOW)
    runtime.register_activity(_selftest_activity, name=SELFTEST_ACTIVITY)
    for name, method in {
        ActivityName.NOTIFY: activities.notify,
        ActivityName.RESERVE_INVENTORY: activities.reserve_inventory,
        ActivityName.REQUEST_APPROVAL: activities.request_approval,
        ActivityName.PROCESS_PAYMENT: activities.process_payment,
        ActivityName.COMMIT_INVENTORY: activities.commit_inventory,
        ActivityName.RELEASE_INVENTORY: activities.release_inventory,
        ActivityName.REFUND_PAYMENT: activities.refund_payment,
    }.items():
        runtime.register_activity(_order_activity(method), name=name)
    return runtime


class WorkerSupervisor:
    """Owns the process's workflow runtime and can replace it.

    After a hard restart of the app or of daprd, daprd can end up with the worker's stream open
    but the workflow actor types unregistered (reminders then fail with "actor type ... not
    registered" and the sidecar reports no connected worker), and the SDK's worker does not
    notice. A fresh runtime opens a fresh stream, and daprd registers the types again.
    """

    def __init__(self, build: Callable[[], WorkflowRuntime]) -> None:
        self._build = build
        self._runtime: WorkflowRuntime | None = None
        self.restarts = 0

    def start(self) -> None:
        self._runtime = self._build()
        self._runtime.start()  # type: ignore[no-untyped-call]  # the SDK method is unannotated

    def restart(self) -> None:
        log.warning("the sidecar reports no connected workflow worker; replacing the worker")
        self.shutdown()
        self.start()
        self.restarts += 1

    def shutdown(self) -> None:
        if self._runtime is not None:
            self._runtime.shutdown()  # type: ignore[no-untyped-call]  # the SDK method is unannotated
            self._runtime = None
