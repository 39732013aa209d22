"""The registration table: every activity name has its implementation, registered once."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from app.workflows.activities import OrderActivities
from app.workflows.contracts import WORKFLOW_NAME, ActivityName
from app.workflows.runtime import activity_implementation, build_runtime
from app.workflows.selftest import SELFTEST_ACTIVITY, SELFTEST_WORKFLOW


class _Unused:
    """Stock and payments are never called: these tests only register."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"{name} called during registration")


def registry(activities: OrderActivities) -> Any:
    runtime = build_runtime(activities, "127.0.0.1", 1)  # never started: no connection is made
    return runtime._WorkflowRuntime__worker._registry  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", list(ActivityName))
def test_every_activity_name_has_an_async_implementation(name: ActivityName) -> None:
    method = getattr(OrderActivities, name.value, None)
    assert method is not None, f"OrderActivities has no method {name.value!r}"
    assert inspect.iscoroutinefunction(method)


def test_the_runtime_registers_every_activity_and_the_workflows() -> None:
    registered = registry(OrderActivities(_Unused(), _Unused(), _Unused()))

    assert set(registered.activities) == {*ActivityName, SELFTEST_ACTIVITY}
    assert set(registered.orchestrators) == {WORKFLOW_NAME, SELFTEST_WORKFLOW}


def test_a_replacement_runtime_registers_again() -> None:
    # The worker watchdog builds a fresh runtime; the SDK refuses a function registered twice.
    activities = OrderActivities(_Unused(), _Unused(), _Unused())
    registry(activities)
    assert set(registry(activities).activities) == {*ActivityName, SELFTEST_ACTIVITY}


def test_activity_implementation_is_the_method_of_that_name() -> None:
    activities = OrderActivities(_Unused(), _Unused(), _Unused())
    for name in ActivityName:
        assert activity_implementation(activities, name) == getattr(activities, name.value)
