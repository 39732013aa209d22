"""Three replicas (app + daprd each) behind nginx on one address, sharing Redis, placement and the
scheduler: the work spreads over them, and losing one replica, app and sidecar together with
`kill -9`, loses no order and costs clients at most the proxy's failover window.

The stack is supervised as `make run` is, with a long restart delay: the killed replica stays
down while its orders move to the survivors, then the supervisor starts it again and it takes
work again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.settings import APP_ID
from devstack.stack import Stack, http_json
from devstack.stack.replicas import Replica
from tests.fixtures.audit import assert_audit_clean
from tests.fixtures.faults import RECOVERY_SECONDS
from tests.fixtures.manager import MANAGER
from tests.fixtures.metrics import samples
from tests.fixtures.orders import create, new_id, wait_for_step, wait_until_finished
from tests.fixtures.readme import walk_through_approval
from tests.fixtures.sse import events
from tests.fixtures.stack import MANAGER_TOKEN, api_client, module_stack
from tests.fixtures.waiting import eventually

# The killed replica stays down this long before the supervisor starts it again.
RESTART_DELAY_SECONDS = 15
# The longest a client may see 5xx answers through the proxy when a replica is lost or rejoins.
# The proxy itself hides the dead replica at once (a refused connection is retried on the next
# one); what clients can see is the app's 503 after its 2 s request deadline while placement
# moves the workflows of the lost sidecar (or back onto the rejoined one) and calls to them
# wait. Measured on this shared 2-core box: none, or bursts of 4.5-7 s. 15 s leaves room for
# load from other work on the machine; a replica that is never routed around fails it.
FAILOVER_BOUND_SECONDS = 15.0
WORKFLOW_ACTOR = f"dapr.internal.default.{APP_ID}.workflow"
ACTIVITY_EXECUTIONS = "dapr_runtime_workflow_activity_execution_count"
# Paperclips in stock after a restock are 100: the in-flight orders plus those placed once the
# replica is back stay below it, so every order is paid.
MAX_IN_FLIGHT_ORDERS = 50


replicated = module_stack(
    "replicas",
    app_env={"APPROVAL_TIMEOUT_SECONDS": "300"},
    supervise=True,
    replicas=3,
    settings={"RESTART_BACKOFF": RESTART_DELAY_SECONDS},
)


@pytest.fixture
async def api(replicated: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(replicated) as client:
        yield client


def hosted_workflows(stack: Stack, replica: Replica) -> int:
    """Workflow instances active on the replica's daprd (placement put them there)."""
    metadata = http_json(f"{replica.dapr_http_url}/v1.0/metadata", 5.0, stack.dapr_headers)
    assert isinstance(metadata, dict), metadata
    actors = (metadata.get("actorRuntime") or {}).get("activeActors") or []
    return sum(int(a.get("count", 0) or 0) for a in actors if a.get("type") == WORKFLOW_ACTOR)


async def activities_run(replica: Replica) -> float:
    """Workflow activities this replica's daprd handed to its app (its own metrics)."""
    async with httpx.AsyncClient(timeout=5.0) as client:
        exposition = (
            await client.get(f"http://127.0.0.1:{replica.dapr_metrics_port}/metrics")
        ).text
    return sum(
        value
        for (name, _), value in samples(exposition).items()
        if name in (ACTIVITY_EXECUTIONS, f"{ACTIVITY_EXECUTIONS}_total")
    )


def served_by(stack: Stack, replica: Replica, since: float) -> int:
    """Requests the proxy's access log says this replica's app answered (2xx) after `since`."""
    count = 0
    log = Path(stack.settings.log_dir / "proxy-access.log").read_text().splitlines()
    for line in log:
        stamp, _, rest = line.partition(" ")
        if f"upstream=127.0.0.1:{replica.app_port} " in rest and " upstream_status=2" in rest:
            when = time.mktime(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))
            if when >= since - 1:
                count += 1
    return count


async def test_readme_walkthrough_passes_through_the_proxy(replicated: Stack) -> None:
    # What `REPLICAS=3 make run` serves on the API port: the README's curl lines as written.
    assert replicated.proxied
    await walk_through_approval(replicated.app_url, MANAGER_TOKEN)


# -- in-memory state kept right across replicas -----------------------------------------------


async def test_concurrent_orders_through_the_proxy_are_each_numbered_and_listed_once(
    api: httpx.AsyncClient,
) -> None:
    # Every replica reserves order numbers from the one counter in the store, concurrently.
    ids = [new_id("many") for _ in range(45)]

    created = await asyncio.gather(*(create(api, "paperclip", 1, order_id) for order_id in ids))

    assert sorted(order["order_id"] for order in created) == sorted(ids)
    listed: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/orders", params=params)).json()
        listed += [order["order_id"] for order in page["orders"]]
        cursor = page.get("next_cursor")
        if not cursor:
            break
    mine = [order_id for order_id in listed if order_id in set(ids)]
    assert sorted(mine) == sorted(ids)  # each exactly once
    await asyncio.gather(*(wait_until_finished(api, order_id) for order_id in ids))


async def test_a_decision_made_through_one_replica_shows_on_every_replica(
    replicated: Stack, api: httpx.AsyncClient
) -> None:
    order_id = (await create(api, "cars", 4))["order_id"]
    await wait_for_step(api, order_id, "awaiting_approval")
    replicas = [httpx.AsyncClient(base_url=r.app_url, timeout=30) for r in replicated.replicas]
    try:
        for client in replicas:  # every replica has read the undecided order
            assert (await client.get(f"/orders/{order_id}")).json()["decision"] is None

        approved = await replicas[0].post(
            f"/orders/{order_id}/approve", headers=MANAGER, json={"approver": "ana"}
        )
        assert approved.status_code in (200, 202), approved.text

        for client in replicas:
            seen = (await client.get(f"/orders/{order_id}")).json()
            assert (seen["decision"], seen["decided_by"]) == ("approved", "ana")
    finally:
        for client in replicas:
            await client.aclose()
    await wait_until_finished(api, order_id)


async def test_the_manager_feed_of_one_replica_sees_orders_accepted_by_another(
    replicated: Stack,
) -> None:
    first, second = replicated.replicas[0], replicated.replicas[1]
    order_id = new_id("feed")
    probes: set[str] = set()
    live = asyncio.Event()
    seen: list[str] = []

    async with (
        httpx.AsyncClient(base_url=first.app_url, timeout=httpx.Timeout(90)) as here,
        httpx.AsyncClient(base_url=second.app_url, timeout=30) as there,
    ):

        async def manager() -> None:
            async with here.stream("GET", "/events", headers=MANAGER) as response:
                assert response.status_code == 200
                async for event in events(response):
                    if event.data["order_id"] in probes:
                        live.set()
                    if event.data["order_id"] == order_id:
                        seen.append(event.event)
                        if event.event == "finished":
                            return

        async def stream_is_live() -> bool:
            # An order placed on the manager's own replica shows at once once the stream is
            # open; the stream sends nothing before its feed of every replica's orders has
            # started, so an order placed after that cannot be missed.
            probe = new_id("probe")
            probes.add(probe)
            await create(here, "paperclip", 1, probe)
            return live.is_set()

        feed = asyncio.create_task(manager())
        await eventually(stream_is_live, bool, interval=1.0, what="the manager's stream live")
        await create(there, "paperclip", 1, order_id)
        await asyncio.wait_for(feed, 60)

    assert seen[-1] == "finished"


async def test_an_order_streams_its_steps_through_the_proxy(api: httpx.AsyncClient) -> None:
    order_id = (await create(api, "paperclip", 2))["order_id"]

    async with api.stream("GET", f"/orders/{order_id}/events", timeout=httpx.Timeout(90)) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        received = [event async for event in events(r)]

    assert received[-1].event == "finished"
    assert received[-1].data["result"] == {"processed": True, "reason": None}


# -- failover ---------------------------------------------------------------------------------


@dataclass
class Traffic:
    """Clients placing small orders and polling them through the proxy, every answer kept."""

    api: httpx.AsyncClient
    answers: list[tuple[float, int]] = field(default_factory=list)  # (when, status; 599: none)
    orders: list[str] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def _call(self, method: str, url: str, **kwargs: Any) -> httpx.Response | None:
        try:
            response = await self.api.request(method, url, **kwargs)
        except httpx.HTTPError:
            self.answers.append((time.monotonic(), 599))
            return None
        self.answers.append((time.monotonic(), response.status_code))
        return response

    async def client(self) -> None:
        while not self.stop.is_set():
            if len(self.orders) >= MAX_IN_FLIGHT_ORDERS:  # within the stock: then only polls
                await self._call("GET", f"/orders/{self.orders[len(self.answers) % 40]}")
            else:
                order_id = new_id("flight")
                body = {"item": "paperclip", "quantity": 1, "order_id": order_id}
                created = await self._call("POST", "/orders", json=body)
                if created is not None and created.status_code == 202:
                    self.orders.append(order_id)
                    await self._call("GET", f"/orders/{order_id}")
            await asyncio.sleep(0.1)

    async def place(self, order_id: str) -> None:
        """Create the order, repeating the request (same id) after a 5xx, within a deadline."""
        body = {"item": "paperclip", "quantity": 1, "order_id": order_id}
        deadline = time.monotonic() + RECOVERY_SECONDS
        while time.monotonic() < deadline:
            created = await self._call("POST", "/orders", json=body)
            if created is not None and created.status_code in (200, 202):  # 200: a repeat
                return
            assert created is None or created.status_code >= 500, created.text
            await asyncio.sleep(0.2)
        raise AssertionError(f"{order_id} not accepted within {RECOVERY_SECONDS:.0f}s")

    def failure_bursts(self, gap: float = 5.0) -> list[list[float]]:
        """When 5xx answers (or none) came, grouped where more than `gap` seconds apart."""
        bursts: list[list[float]] = []
        for when in sorted(t for t, status in self.answers if status >= 500):
            if bursts and when - bursts[-1][-1] <= gap:
                bursts[-1].append(when)
            else:
                bursts.append([when])
        return bursts


async def test_losing_a_replica_loses_no_order_and_it_takes_work_again_when_back(
    replicated: Stack, api: httpx.AsyncClient
) -> None:
    stack = replicated
    assert (await api.post("/inventory/restock", headers=MANAGER)).status_code == 200
    parked = [(await create(api, "cars", 4, new_id("parked")))["order_id"] for _ in range(9)]
    await asyncio.gather(
        *(wait_for_step(api, order_id, "awaiting_approval") for order_id in parked)
    )

    # Placement spread the workflows over the replicas' sidecars, and each ran activities.
    hosting = {replica.number: hosted_workflows(stack, replica) for replica in stack.replicas}
    assert sum(1 for count in hosting.values() if count > 0) >= 2, hosting
    ran = [await activities_run(replica) for replica in stack.replicas]
    assert sum(1 for count in ran if count > 0) >= 2, ran
    victim = max(stack.replicas[1:], key=lambda replica: hosting[replica.number])
    assert hosting[victim.number] > 0, hosting
    survivors = [replica for replica in stack.replicas if replica is not victim]
    survivor_daprds = {r.daprd_name: stack.pid(r.daprd_name) for r in survivors}

    traffic = Traffic(api)
    clients = [asyncio.create_task(traffic.client()) for _ in range(4)]
    try:
        await eventually(lambda: _count(traffic.orders), lambda n: n >= 8, what="orders in flight")
        stack.kill(victim.app_name)
        stack.kill(victim.daprd_name)
        killed_at = time.monotonic()

        # Approvals through the proxy reach the survivors; the workflows that lived on the
        # killed sidecar are placed on a surviving one.
        for order_id in parked:
            approved = await api.post(f"/orders/{order_id}/approve", headers=MANAGER)
            assert approved.status_code in (200, 202), approved.text
        finished = await asyncio.gather(
            *(wait_until_finished(api, order_id, RECOVERY_SECONDS) for order_id in parked)
        )
        assert all(order["result"]["processed"] for order in finished), finished
        await eventually(
            lambda: _count(traffic.orders),
            lambda n: n >= 30,
            deadline_seconds=60,
            what="orders placed after the kill",
        )
        # The survivors' watchdogs judged their own sidecars: none was restarted for the loss.
        assert {name: stack.pid(name) for name in survivor_daprds} == survivor_daprds

        # The supervisor starts the replica again (traffic still flowing: placement moves
        # workflows onto it again, a second, shorter disturbance).
        await eventually(
            lambda: _ready(victim),
            bool,
            deadline_seconds=RESTART_DELAY_SECONDS + RECOVERY_SECONDS,
            what=f"replica {victim.number} back",
        )
        back_at, back_at_wall = time.monotonic(), time.time()
        before = await activities_run(victim)
        again: list[str] = []

        async def victim_took_work() -> bool:
            # Ready is not yet in the proxy's rotation: a request it refused while starting
            # keeps it out for the proxy's fail_timeout. So orders keep coming until it serves.
            batch = [new_id("again") for _ in range(5)]
            again.extend(batch)
            # A create with its own id is safe to repeat: what a client does on a 503.
            await asyncio.gather(*(traffic.place(order_id) for order_id in batch))
            await asyncio.gather(*(wait_until_finished(api, order_id) for order_id in batch))
            served = served_by(stack, victim, back_at_wall) > 0
            return served and await activities_run(victim) > before

        await eventually(
            victim_took_work, bool, deadline_seconds=RECOVERY_SECONDS, interval=0.0,
            what=f"replica {victim.number} serving requests and running activities again",
        )  # fmt: skip
    finally:
        traffic.stop.set()
        await asyncio.gather(*clients)

    # No client saw 5xx answers for longer than the proxy's failover takes: one short burst
    # while the replica was lost, at most one more as it rejoined.
    bursts = traffic.failure_bursts()
    print(
        f"\nreplica {victim.number} killed; {len(traffic.answers)} answers through the proxy; "
        f"5xx bursts (start after kill s, length s, count): "
        f"{[(round(b[0] - killed_at, 2), round(b[-1] - b[0], 2), len(b)) for b in bursts]}; "
        f"back after {back_at - killed_at:.1f}s; workflows hosted before the kill {hosting}"
    )
    assert len(bursts) <= 2, bursts
    for burst in bursts:
        assert burst[-1] - burst[0] <= FAILOVER_BOUND_SECONDS, burst
        near = min(abs(burst[0] - killed_at), abs(burst[0] - back_at))
        assert near <= FAILOVER_BOUND_SECONDS, (burst, killed_at, back_at)

    # Every order finished exactly once: each processed (the parked ones above), and the auditor
    # finds one paid ledger entry per processed order, nothing held, the stock balanced.
    in_flight = await asyncio.gather(
        *(
            wait_until_finished(api, order_id, RECOVERY_SECONDS)
            for order_id in traffic.orders + again
        )
    )
    assert all(order["result"]["processed"] for order in in_flight)
    await assert_audit_clean(api, stack)

    # The replica is back in service (waited for above): the proxy sends it requests, placement
    # sends it work.
    assert served_by(stack, victim, back_at_wall) > 0
    assert await activities_run(victim) > before


async def _count(items: list[str]) -> int:
    return len(items)


async def _ready(replica: Replica) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        async with httpx.AsyncClient(timeout=2.0) as client:
            return (await client.get(f"{replica.app_url}/readyz")).status_code == 200
    return False
