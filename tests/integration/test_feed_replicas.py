"""The managers' feed on two replicas: an order awaiting approval shows, whichever replica took it
and however far its number lies below the others' (issue 19: replicas number orders from blocks
of 20, and the feed used to look only 160 numbers back)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx

from devstack.stack import Stack
from tests.fixtures.manager import MANAGER
from tests.fixtures.orders import create, new_id, stored_doc, wait_until_finished
from tests.fixtures.sse import Event, events
from tests.fixtures.stack import module_stack
from tests.fixtures.waiting import eventually

BUSY_ORDERS = 200
AWAITING = "awaiting_approval"


two_replicas = module_stack(
    "feed-replicas",
    app_env={"APPROVAL_TIMEOUT_SECONDS": "300"},  # the orders wait for the manager throughout
    replicas=2,
)


@contextlib.asynccontextmanager
async def feed(proxy: httpx.AsyncClient) -> AsyncIterator[list[Event]]:
    """GET /events through the proxy, read in the background: yields what it has received."""
    received: list[Event] = []

    async def read() -> None:
        async with proxy.stream("GET", "/events", headers=MANAGER) as response:
            assert response.status_code == 200, await response.aread()
            async for event in events(response):
                received.append(event)

    reading = asyncio.create_task(read())
    try:
        yield received
    finally:
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading


async def seen(received: list[Event], order_id: str, step: str, seconds: float = 30) -> None:
    async def there() -> bool:
        return any(e.data["order_id"] == order_id and e.data["step"] == step for e in received)

    await eventually(
        there,
        bool,
        deadline_seconds=seconds,
        interval=0.1,
        what=f"{order_id} at {step} in the feed",
    )


async def test_a_quiet_replicas_order_awaiting_approval_shows_in_the_feed(
    two_replicas: Stack,
) -> None:
    busy_replica, quiet_replica = two_replicas.replicas
    async with (
        httpx.AsyncClient(base_url=two_replicas.app_url, timeout=httpx.Timeout(90)) as proxy,
        httpx.AsyncClient(base_url=busy_replica.app_url, timeout=30) as busy,
        httpx.AsyncClient(base_url=quiet_replica.app_url, timeout=30) as quiet,
    ):
        await create(quiet, "paperclip", 1, new_id("quiet-first"))  # reserves its block
        placing = asyncio.Semaphore(8)

        async def place(n: int) -> None:
            async with placing:
                await create(busy, "computers" if n % 2 else "paperclip", 1, new_id("busy"))

        await asyncio.gather(*(place(n) for n in range(BUSY_ORDERS)))

        async with feed(proxy) as received:
            marker = new_id("marker")  # on the busy replica: numbered at the top, seen anyway
            await create(busy, "cars", 4, marker)
            await seen(received, marker, AWAITING)  # the feed is live
            waiting = new_id("quiet-big")
            await create(quiet, "cars", 4, waiting)
            # The bug's setting: numbered from the quiet replica's old block, far below the top.
            number = stored_doc(two_replicas, f"order:{waiting}")["seq"]
            top = stored_doc(two_replicas, "orders:sequence")["next"]
            assert top - number > 160, (number, top)

            await seen(received, waiting, AWAITING)

        # A feed opened now (a console reconnecting) starts with both, oldest accepted first,
        # although their numbers run the other way.
        async with feed(proxy) as received:
            await seen(received, waiting, AWAITING)
            ours = [e.data["order_id"] for e in received if e.data["order_id"] in (marker, waiting)]
            assert ours[:2] == [marker, waiting], ours

            for order_id in (marker, waiting):
                answer = await proxy.post(
                    f"/orders/{order_id}/approve", headers=MANAGER, json={"approved": False}
                )
                assert answer.status_code == 202, answer.text
            for order_id in (marker, waiting):
                assert (await wait_until_finished(proxy, order_id))["result"]["reason"] == (
                    "rejected"
                )
                await seen(received, order_id, "done")
        assert listed_as_awaiting(two_replicas) == {}, "decided orders left in the awaiting sets"


def listed_as_awaiting(stack: Stack) -> dict[str, str]:
    """Every order the awaiting-decision sets hold."""
    listed: dict[str, str] = {}
    for shard in range(16):
        with contextlib.suppress(AssertionError):
            listed.update(stored_doc(stack, f"orders:awaiting-decision:{shard}")["orders"])
    return listed
