"""The service as the soak's clients see it: requests that are repeated as each answer says
they safely may be, and a count of every failed answer by route and kind."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import httpx

# Between attempts at a request that failed: doubling from the first to the last, seconds.
FIRST_PAUSE, LONGEST_PAUSE = 0.2, 2.0
# A reply that never comes (a frozen app or sidecar) is given up after this and repeated.
REQUEST_SECONDS = 30.0


class Unanswered(RuntimeError):
    """A request still failing at its deadline."""


def failure_kind(response: httpx.Response) -> str:
    """`503 unavailable`: the status and the error code of the service's JSON error body."""
    try:
        error = response.json().get("error", "")
    except ValueError:
        error = "not JSON"
    return f"{response.status_code} {error}".strip()


class Shop:
    """One HTTP client for every soak client (a bounded pool: they share its connections)."""

    def __init__(self, url: str, manager_token: str) -> None:
        self.api = httpx.AsyncClient(base_url=url, timeout=REQUEST_SECONDS)
        self.manager = {"Authorization": f"Bearer {manager_token}"}
        # "POST /orders: 503 unavailable", "GET /orders/{id}: no answer (ConnectError)", ...
        self.failures: Counter[str] = Counter()

    async def aclose(self) -> None:
        await self.api.aclose()

    async def request(
        self, method: str, path: str, route: str, deadline: float, **kwargs: Any
    ) -> httpx.Response:
        """The first answer below 500. Every request the soak sends may be repeated as it was:
        a create names its order (a 503's `same_order_id` is that very request), a decision
        repeated answers 409 `decision_already_made` if the first was recorded (`same_request`),
        and a read changes nothing (`any`). The soak never restocks under chaos, so no 503
        advises `read_first`. Unanswered once `deadline` (time.monotonic) has passed."""
        pause = FIRST_PAUSE
        while True:
            try:
                response = await self.api.request(method, path, **kwargs)
            except httpx.HTTPError as error:
                self.failures[f"{route}: no answer ({type(error).__name__})"] += 1
            else:
                if response.status_code < 500:
                    return response
                self.failures[f"{route}: {failure_kind(response)}"] += 1
            if time.monotonic() >= deadline:
                raise Unanswered(f"{method} {path}: no answer below 500 by its deadline")
            await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, LONGEST_PAUSE)

    async def create(self, order_id: str, item: str, quantity: int, deadline: float) -> None:
        body = {"item": item, "quantity": quantity, "order_id": order_id}
        response = await self.request("POST", "/orders", "POST /orders", deadline, json=body)
        if response.status_code not in (200, 202):
            raise RuntimeError(f"order {order_id} refused: {response.text}")

    async def order(self, order_id: str, deadline: float, wait: float = 0) -> dict[str, Any]:
        """The order (with `wait`, answered as soon as it finishes: the API's long poll)."""
        params = {"wait": wait} if wait else None
        response = await self.request(
            "GET", f"/orders/{order_id}", "GET /orders/{id}", deadline, params=params
        )
        if response.status_code != 200:
            raise RuntimeError(f"GET /orders/{order_id} answered {response.text}")
        found: dict[str, Any] = response.json()
        return found

    async def finished(self, order_id: str, deadline: float) -> dict[str, Any] | None:
        """The order once it has an outcome; None if it has none by `deadline`."""
        while time.monotonic() < deadline:
            wait = min(10.0, max(0.0, deadline - time.monotonic()))
            found = await self.order(order_id, deadline, wait=round(wait))
            if found["result"] is not None:
                return found
        return None

    async def decide(self, order_id: str, decision: str, deadline: float) -> int:
        """approve, reject or cancel; the status answered (202, or 409 when refused)."""
        if decision == "cancel":
            path, body = f"/orders/{order_id}/cancel", None
        else:
            path = f"/orders/{order_id}/approve"
            body = {"approved": decision == "approve", "approver": "soak"}
        route = f"POST /orders/{{id}}/{path.rsplit('/', 1)[1]}"
        response = await self.request(
            "POST", path, route, deadline, headers=self.manager, json=body
        )
        if response.status_code not in (202, 409):
            raise RuntimeError(f"{decision} of order {order_id} answered {response.text}")
        return response.status_code

    async def ready(self) -> bool:
        try:
            return (await self.api.get("/readyz")).status_code == 200
        except httpx.HTTPError:
            return False
