"""Live order events: what an order's progress stream (SSE, in app.api) is made of.

The services publish an OrderEvent when an order changes (accepted, step entered, decision,
finished); the API layer subscribes and streams them. Only the interface exists yet, with a
publisher that drops everything, so services can be written against it now.
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
