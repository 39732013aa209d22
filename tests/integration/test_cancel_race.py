"""Cancels racing the payment of small orders, on the real stack (issue 19).

A small order needs no approval and goes from reserving to payment within a fraction of a second,
so a cancel sent 0-1 s after it was created lands before, at or after the payment. Whatever the
service answers must be what happens: a 202 ends the order cancelled with nothing paid and
nothing held, and any other answer is a 409 for an order that went through.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest

from devstack.stack import Stack
from tests.fixtures.faults import MANAGER, ledger
from tests.fixtures.orders import assert_invariant, create, new_id, wait_until_finished
from tests.fixtures.stack import api_client, private_stack

log = logging.getLogger(__name__)

TRIES = 200
# Tries in flight at once: enough to finish in well under two minutes on two busy cores, few
# enough that no request nears the service's 2 s deadline (a 503 would fail the test).
AT_ONCE = 10
ITEM = "paperclip"
QUANTITY = 1
# Reproducible delays; the stack's own timing still varies from run to run.
SEED = 19
CANCELLED = {"processed": False, "reason": "cancelled"}
PROCESSED = {"processed": True, "reason": None}


@pytest.fixture(scope="module")
def race_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with private_stack(tmp_path_factory.mktemp("cancel-race"), {}) as running:
        yield running


@pytest.fixture
async def api(race_stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(race_stack) as client:
        yield client


@dataclass(frozen=True)
class Try:
    order_id: str
    delay: float
    status: int
    body: str


async def cancel_after(api: httpx.AsyncClient, delay: float) -> Try:
    order_id = (await create(api, ITEM, QUANTITY, new_id("race")))["order_id"]
    await asyncio.sleep(delay)  # the schedule under test, not a wait for a condition
    answer = await api.post(f"/orders/{order_id}/cancel", headers=MANAGER)
    return Try(order_id, delay, answer.status_code, answer.text)


async def test_every_accepted_cancel_ends_the_order_cancelled_with_nothing_paid_or_held(
    race_stack: Stack, api: httpx.AsyncClient
) -> None:
    restock = {"item": ITEM, "quantity": TRIES * QUANTITY}
    assert (await api.post("/inventory/restock", headers=MANAGER, json=restock)).status_code == 200
    sold_before = assert_invariant(race_stack, ITEM)["sold"]
    rng = random.Random(SEED)
    delays = [rng.uniform(0.0, 1.0) for _ in range(TRIES)]
    slots = asyncio.Semaphore(AT_ONCE)
    started = time.monotonic()

    async def one(delay: float) -> Try:
        async with slots:
            return await cancel_after(api, delay)

    tries = await asyncio.gather(*(one(delay) for delay in delays))
    orders = await asyncio.gather(*(wait_until_finished(api, t.order_id, 120) for t in tries))
    paid = ledger(race_stack)

    answers = Counter(t.status for t in tries)
    assert set(answers) <= {202, 409}, [
        (t.order_id, t.status, t.body) for t in tries if t.status not in (202, 409)
    ]
    for attempt, order in zip(tries, orders, strict=True):
        if attempt.status == 202:
            assert (order["decision"], order["result"]) == ("cancelled", CANCELLED), (
                attempt,
                order,
            )
            assert attempt.order_id not in paid, (attempt, paid[attempt.order_id])
        else:
            assert order["result"] == PROCESSED, (attempt, order)
            assert order["decision"] is None, (attempt, order)
            assert paid[attempt.order_id]["status"] == "paid", (attempt, paid.get(attempt.order_id))
    stock = assert_invariant(race_stack, ITEM)
    assert stock["reserved"] == 0, stock
    assert not {t.order_id for t in tries} & set(stock["held"]), stock
    assert stock["sold"] - sold_before == QUANTITY * answers[409], (stock, answers)
    # Both sides of the boundary were reached: some cancels came in time, some too late.
    assert answers[202] > 0, answers
    assert answers[409] > 0, answers
    log.info(
        "%d tries in %.1f s: %d cancels accepted (%d of them stopped at the payment step itself), "
        "%d refused (409)",
        TRIES,
        time.monotonic() - started,
        answers[202],
        await stopped_at_payment(api, [t.order_id for t in tries if t.status == 202]),
        answers[409],
    )


async def stopped_at_payment(api: httpx.AsyncClient, order_ids: list[str]) -> int:
    """How many of these orders reached the payment step and were cancelled there: the cases
    only the record's compare-and-swap decides (a figure for the log, not an assertion)."""

    async def reached_payment(order_id: str) -> bool:
        timeline = (await api.get(f"/orders/{order_id}/history")).json()["timeline"]
        return ("step", "processing_payment") in [(e["event"], e["detail"]) for e in timeline]

    return sum(await asyncio.gather(*map(reached_payment, order_ids)))
