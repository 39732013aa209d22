"""Where an order is on its way, as a number: the id of its live events.

Ids derive from the order's state alone, so every stream (and every process) numbers the same
state the same way, and a client resuming with `Last-Event-ID: N` gets exactly the changes past
N: nothing it has, nothing skipped over. That works because the workflow only moves forward
through `Step`'s members in their declared order on every path (failure paths included: a
release follows reserving, approval, payment or a refund; done is last), and finishing comes
after every step.
"""

from __future__ import annotations

from typing import Final

from app.domain.orders import Order
from app.workflows.contracts import Step

ACCEPTED: Final = 0  # PENDING: accepted, not yet picked up by the engine
STARTED: Final = 1  # running, no step entered yet
_FIRST_STEP: Final = 2
_STEPS: Final = {step.value: _FIRST_STEP + rank for rank, step in enumerate(Step)}
FINISHED: Final = _FIRST_STEP + len(_STEPS)


def progress(order: Order) -> int:
    """0 accepted, 1 started, 2.. each step in the workflow's order, FINISHED once it has a
    result. Suspending or resuming a workflow keeps its step, so it keeps its position."""
    if order.result is not None:
        return FINISHED
    if order.step is not None:
        return _STEPS.get(order.step, STARTED)
    return ACCEPTED if order.status == "PENDING" else STARTED
