"""Live order events: what an order's progress stream (SSE, in app.api) is made of.

The services publish an OrderEvent when they change an order (accepted, decision). The hub
(hub.py) is the publisher the app runs with: it polls each order that a stream watches, once for
all its streams, and a published event makes that poll happen at once; the steps the workflow
enters are seen by the poll. DiscardingPublisher is for a service built without streams.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class OrderEvent:
    order_id: str
    kind: str  # "accepted", "step", "decision", "finished"
    status: str
    step: str | None
    at: datetime


class OrderEventPublisher(Protocol):
    async def publish(self, event: OrderEvent) -> None: ...


class DiscardingPublisher:
    """The publisher until live events are built: nobody is listening, so nothing is kept."""

    async def publish(self, event: OrderEvent) -> None:
        return None
