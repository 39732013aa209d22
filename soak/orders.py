"""The soak's orders: each one's fate drawn from the seed, and clients that place them one at a
time, act on them as a manager would, and follow each to its outcome."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

from soak.shop import Shop, Unanswered

log = logging.getLogger(__name__)
AWAITING_APPROVAL = "awaiting_approval"
PROGRESS_EVERY = 250  # orders: a line of progress each time this many more have finished
# Shares of the orders: most are small and go straight through; a fifth need a manager (4 cars,
# 60,000 > the 50,000 threshold) who approves, rejects or cancels them while they wait; one in
# ten small ones is cancelled at a random moment, racing the workflow to its payment.
FATES: dict[str, float] = {
    "small": 0.6,
    "cancel_any_moment": 0.1,
    "approve": 0.12,
    "reject": 0.09,
    "cancel_waiting": 0.09,
}
# The outcomes (result.reason, None = processed) each fate may end with. The stock is topped up
# before the run, so none should run out; anything else is a defect the soak reports.
EXPECTED: dict[str, frozenset[str | None]] = {
    "small": frozenset({None}),
    "cancel_any_moment": frozenset({None, "cancelled"}),
    "approve": frozenset({None}),
    "reject": frozenset({"rejected"}),
    "cancel_waiting": frozenset({"cancelled"}),
}
DECISIONS = {"approve": "approve", "reject": "reject", "cancel_waiting": "cancel"}
# The latest a cancel at a random moment comes after the order is accepted: a small order
# finishes in a few hundred milliseconds, so some cancels win and some come too late.
CANCEL_WITHIN_SECONDS = 1.0
STEP_POLL_SECONDS = 0.25


@dataclass(frozen=True)
class Shape:
    item: str
    quantity: int


def shape_of(fate: str, rng: random.Random) -> Shape:
    if fate in DECISIONS:
        return Shape("cars", 4)
    return rng.choice(
        [Shape("computers", rng.randint(1, 3)), Shape("paperclip", rng.randint(1, 5))]
    )


@dataclass
class SoakOrder:
    order_id: str
    fate: str
    shape: Shape
    cancel_after: float = 0.0  # cancel_any_moment: seconds after acceptance
    accepted_at: float | None = None  # time.monotonic()
    finished_at: float | None = None
    outcome: dict[str, Any] | None = None  # the order as GET /orders/{id} returned it, finished
    decision_answer: int | None = None  # 202 or 409
    error: str | None = None  # why the client gave up on it

    @property
    def reason(self) -> str | None:
        return None if self.outcome is None else self.outcome["result"]["reason"]

    @property
    def expected(self) -> bool:
        return self.outcome is not None and self.reason in EXPECTED[self.fate]


def plan_orders(count: int, rng: random.Random, prefix: str) -> list[SoakOrder]:
    """`count` orders with client-chosen ids (a create repeated after a 503 is then safe)."""
    fates, weights = list(FATES), list(FATES.values())
    orders = []
    for number in range(count):
        fate = rng.choices(fates, weights)[0]
        order = SoakOrder(f"{prefix}-{number:05d}", fate, shape_of(fate, rng))
        if fate == "cancel_any_moment":
            order.cancel_after = rng.uniform(0, CANCEL_WITHIN_SECONDS)
        orders.append(order)
    return orders


@dataclass
class Clients:
    """`count` clients, each placing the next order of the plan once its last has finished
    (or `follow_seconds` have passed: the final sweep waits for it then)."""

    shop: Shop
    count: int
    follow_seconds: float
    unfinished: list[SoakOrder] = field(default_factory=list)
    finished: int = 0

    async def run(self, orders: list[SoakOrder]) -> None:
        queue: asyncio.Queue[SoakOrder] = asyncio.Queue()
        for order in orders:
            queue.put_nowait(order)

        async def client() -> None:
            while not queue.empty():
                await self.place(queue.get_nowait())

        await asyncio.gather(*(client() for _ in range(self.count)))

    async def place(self, order: SoakOrder) -> None:
        deadline = time.monotonic() + self.follow_seconds
        try:
            await self.shop.create(order.order_id, order.shape.item, order.shape.quantity, deadline)
            order.accepted_at = time.monotonic()
            await self.act(order, deadline)
            outcome = await self.shop.finished(order.order_id, deadline)
        except (Unanswered, RuntimeError) as error:
            order.error = str(error)
            outcome = None
        if outcome is None:
            log.warning(
                "order %s: no outcome yet (%s); waiting for it at the end",
                order.order_id,
                order.error or "still running",
            )
            self.unfinished.append(order)
        else:
            self.record(order, outcome)

    def record(self, order: SoakOrder, outcome: dict[str, Any]) -> None:
        order.outcome = outcome
        order.finished_at = time.monotonic()
        order.error = None
        self.finished += 1
        if self.finished % PROGRESS_EVERY == 0:
            log.info("%d orders finished", self.finished)

    async def act(self, order: SoakOrder, deadline: float) -> None:
        """What a manager does to the order: cancel it at its random moment, or decide it once
        it waits for a decision (nothing if it finished first)."""
        if order.fate == "cancel_any_moment":
            await asyncio.sleep(order.cancel_after)  # the race is the point: a random moment
            order.decision_answer = await self.shop.decide(order.order_id, "cancel", deadline)
        elif order.fate in DECISIONS and await self.awaits_decision(order, deadline):
            decision = DECISIONS[order.fate]
            order.decision_answer = await self.shop.decide(order.order_id, decision, deadline)

    async def awaits_decision(self, order: SoakOrder, deadline: float) -> bool:
        while time.monotonic() < deadline:
            found = await self.shop.order(order.order_id, deadline)
            if found["step"] == AWAITING_APPROVAL:
                return True
            if found["result"] is not None:
                return False
            await asyncio.sleep(STEP_POLL_SECONDS)
        raise Unanswered(f"order {order.order_id} never reached {AWAITING_APPROVAL}")

    async def sweep(self, seconds: float) -> None:
        """Wait, all at once, for the orders the clients gave up following, until `seconds`."""
        deadline = time.monotonic() + seconds

        async def follow(order: SoakOrder) -> None:
            try:
                outcome = await self.shop.finished(order.order_id, deadline)
            except (Unanswered, RuntimeError) as error:
                order.error = str(error)
                return
            if outcome is not None:
                self.record(order, outcome)

        await asyncio.gather(*(follow(order) for order in self.unfinished))
        self.unfinished = [order for order in self.unfinished if order.outcome is None]
