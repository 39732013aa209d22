"""GET /metrics on the real stack: the outcome counter moves when the worker records an order."""

from __future__ import annotations

import httpx

from tests.fixtures.metrics import value
from tests.fixtures.orders import create, wait_until_finished


async def test_a_processed_order_shows_in_the_outcome_counter(
    api: httpx.AsyncClient, manager: dict[str, str]
) -> None:
    restocked = await api.post(
        "/inventory/restock", headers=manager, json={"item": "paperclip", "quantity": 1}
    )
    assert restocked.status_code == 200, restocked.text
    created = await create(api, "paperclip", 1)
    done = await wait_until_finished(api, created["order_id"])
    assert done["result"] == {"processed": True, "reason": None}

    response = await api.get("/metrics")

    assert response.status_code == 200, response.text
    text = response.text
    # The workflow worker runs in the app's process: its record_outcome fed this counter.
    assert (value(text, "orders_finished_total", outcome="processed") or 0) >= 1
    assert (value(text, "orders_accepted_total") or 0) >= 1
    assert value(text, "orders_workflow_worker_connected") == 1
    assert value(text, "orders_manager_actions_queued") is not None
    assert (
        value(text, "http_requests_total", method="GET", route="/orders/{order_id}", status="200")
        or 0
    ) >= 1
