"""The soak itself: the clients' orders and the chaos side by side on a running supervised stack,
then the wait for every order's outcome and the auditor."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

from devstack.audit import AUDIT_OK, audit_cli
from devstack.stack import Stack
from soak.chaos import Chaos, Fault, Injected
from soak.orders import Clients, SoakOrder, plan_orders
from soak.shop import Shop

# Units added to each item before the run: far more than 3,000 orders can take, so that no
# order ends insufficient_inventory for want of a restock (the stock invariant is audited).
RESTOCK_UNITS = 1_000_000
ITEMS = ("paperclip", "cars", "computers")


@dataclass(frozen=True)
class SoakOptions:
    orders: int = 3000
    clients: int = 16
    # Seconds between one fault healed and the next, drawn uniformly from this range.
    interval: tuple[float, float] = (20.0, 40.0)
    # How long a frozen component stays frozen, drawn uniformly: under the watchdog's 10 s it
    # resumes, above it the watchdog kills and restarts it.
    freeze: tuple[float, float] = (3.0, 15.0)
    seed: int = 0
    # Exactly this many faults (the chaos goes on after the last order if need be); None: one
    # every interval for as long as the orders run.
    faults: int | None = None
    plan: tuple[Fault, ...] = ()  # the faults in order, instead of drawn from the seed
    heal_seconds: float = 180.0  # a fault not healed by then fails the soak
    follow_seconds: float = 300.0  # a client follows its order this long, then moves on
    finish_seconds: float = 600.0  # after the last order was placed, for every outcome


@dataclass
class SoakResult:
    options: SoakOptions
    orders: list[SoakOrder]
    faults: list[Injected]
    probe_orders: list[str]
    failures: dict[str, int]  # failed answers by route and kind
    started: float
    audit_status: int
    audit: dict[str, Any]
    supervision_failure: str | None
    restarts: dict[str, int] = field(default_factory=dict)

    @property
    def unfinished(self) -> list[SoakOrder]:
        return [order for order in self.orders if order.outcome is None]

    @property
    def unexpected(self) -> list[SoakOrder]:
        return [order for order in self.orders if order.outcome is not None and not order.expected]

    @property
    def unhealed(self) -> list[Injected]:
        return [fault for fault in self.faults if fault.healed_after is None]

    @property
    def problems(self) -> list[str]:
        """Why the soak failed; empty when it passed."""
        found = []
        if self.audit_status != AUDIT_OK:
            found.append(f"the auditor found {len(self.audit['violations'])} violation(s)")
        if self.unfinished:
            found.append(f"{len(self.unfinished)} order(s) never finished")
        if self.unexpected:
            found.append(f"{len(self.unexpected)} order(s) ended other than their fate allows")
        if self.unhealed:
            found.append(f"{len(self.unhealed)} fault(s) not healed")
        if self.supervision_failure:
            found.append(f"the supervisor gave up: {self.supervision_failure}")
        return found


async def restock(shop: Shop) -> None:
    deadline = time.monotonic() + 60
    for item in ITEMS:
        body = {"item": item, "quantity": RESTOCK_UNITS}
        response = await shop.request(
            "POST", "/inventory/restock", "POST /inventory/restock", deadline,
            headers=shop.manager, json=body,
        )  # fmt: skip
        response.raise_for_status()


async def run_soak(stack: Stack, manager_token: str, options: SoakOptions) -> SoakResult:
    """The soak on `stack` (started, supervised); the stack keeps running afterwards."""
    rng = random.Random(options.seed)
    shop = Shop(stack.app_url, manager_token)
    try:
        await restock(shop)
        orders = plan_orders(options.orders, rng, f"soak-{options.seed}")
        clients = Clients(shop, options.clients, options.follow_seconds)
        started = time.monotonic()
        chaos = Chaos(
            stack, shop, random.Random(options.seed + 1), options.interval, options.freeze,
            options.heal_seconds, options.plan, started,
        )  # fmt: skip
        placed = asyncio.Event()
        chaos_task = asyncio.create_task(chaos.run(placed, options.faults))
        try:
            await clients.run(orders)
        finally:
            placed.set()
            await chaos_task
        await clients.sweep(options.finish_seconds)
        status, audit = await audit_cli(stack)
    finally:
        await shop.aclose()
    supervisor = stack.supervisor
    return SoakResult(
        options, orders, chaos.injected, chaos.probe_orders, dict(shop.failures), started,
        status, audit, stack.supervision_failure,
        dict(supervisor.restarts) if supervisor is not None else {},
    )  # fmt: skip
