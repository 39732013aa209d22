"""GET /metrics on the in-process app: the order counters, the HTTP series, the state gauges."""

from __future__ import annotations

from prometheus_client import REGISTRY

from app.services.in_flight import SHARDS, shard_key
from app.services.manager_outbox import OUTBOX_KEY
from tests.fixtures.api import Api
from tests.fixtures.metrics import label_values, value

BIG_ORDER = {"item": "cars", "quantity": 4}  # above the threshold: waits for a manager
SMALL_ORDER = {"item": "paperclip", "quantity": 2}


async def scrape(api: Api) -> str:
    response = await api.client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return response.text


async def test_accepted_orders_are_counted_once_per_order(api: Api) -> None:
    for order_id in ("o1", "o2"):
        assert (
            await api.client.post("/orders", json={**SMALL_ORDER, "order_id": order_id})
        ).is_success
    # A repeat of an accepted order is the same order.
    await api.client.post("/orders", json={**SMALL_ORDER, "order_id": "o1"})

    assert value(await scrape(api), "orders_accepted_total") == 2


async def test_decisions_are_counted_by_decision(api: Api, manager: dict[str, str]) -> None:
    for order_id in ("o1", "o2", "o3"):
        await api.client.post("/orders", json={**BIG_ORDER, "order_id": order_id})
    await api.client.post("/orders/o1/approve", headers=manager, json={"approved": True})
    await api.client.post("/orders/o2/approve", headers=manager, json={"approved": False})
    await api.client.post("/orders/o3/cancel", headers=manager)
    # Refused (already decided): not a decision.
    await api.client.post("/orders/o1/approve", headers=manager, json={"approved": False})

    text = await scrape(api)

    assert value(text, "orders_decisions_total", decision="approved") == 1
    assert value(text, "orders_decisions_total", decision="rejected") == 1
    assert value(text, "orders_decisions_total", decision="cancelled") == 1


async def test_http_series_are_labelled_by_route_template(api: Api) -> None:
    await api.client.post("/orders", json={**SMALL_ORDER, "order_id": "o1"})
    await api.client.get("/orders/o1")
    await api.client.get("/orders/nope")
    await api.client.get("/no/such/path")

    text = await scrape(api)

    assert (
        value(text, "http_requests_total", method="GET", route="/orders/{order_id}", status="200")
        == 1
    )
    assert (
        value(text, "http_requests_total", method="GET", route="/orders/{order_id}", status="404")
        == 1
    )
    assert value(text, "http_requests_total", method="POST", route="/orders", status="202") == 1
    assert value(text, "http_requests_total", method="GET", route="<unmatched>", status="404") == 1
    assert not any(
        "o1" in route or "nope" in route
        for route in label_values(text, "http_requests_total", "route")
    )
    assert (
        value(text, "http_request_duration_seconds_count", method="GET", route="/orders/{order_id}")
        == 2
    )


async def test_queued_manager_actions_are_read_from_the_store(api: Api) -> None:
    assert value(await scrape(api), "orders_manager_actions_queued") == 0

    # Written by another replica (or before a restart): this process never saw it happen.
    await api.store.save(OUTBOX_KEY, {"order_ids": ["a", "b", "c"]}, None)

    assert value(await scrape(api), "orders_manager_actions_queued") == 3


async def test_orders_waiting_to_start_are_read_from_the_store(api: Api) -> None:
    assert value(await scrape(api), "orders_waiting_to_start") == 0
    api.workflows.unavailable = True  # accepted, PENDING: left to the start outbox

    await api.client.post("/orders", json={"item": "paperclip", "quantity": 1})

    assert value(await scrape(api), "orders_waiting_to_start") == 1


async def test_queued_actions_are_left_out_when_the_store_does_not_answer(api: Api) -> None:
    api.store.frozen = True

    text = await scrape(api)

    assert value(text, "orders_manager_actions_queued") is None
    assert value(text, "orders_waiting_to_start") is None
    assert value(text, "orders_workflow_worker_connected") == 1


async def test_worker_connected_follows_the_sidecar(api: Api) -> None:
    assert value(await scrape(api), "orders_workflow_worker_connected") == 1

    api.sidecar.connected_workers = 0
    assert value(await scrape(api), "orders_workflow_worker_connected") == 0

    api.sidecar.unreachable = True
    assert value(await scrape(api), "orders_workflow_worker_connected") == 0


async def test_a_scraper_that_asks_for_openmetrics_gets_it(api: Api) -> None:
    await api.client.post("/orders", json=SMALL_ORDER)

    response = await api.client.get(
        "/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"}
    )

    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert "orders_accepted_total 1.0" in response.text
    assert response.text.endswith("# EOF\n")


async def test_each_app_has_its_own_registry(api: Api) -> None:
    await api.client.post("/orders", json=SMALL_ORDER)

    await scrape(api)

    assert REGISTRY.get_sample_value("orders_accepted_total") is None


async def test_every_known_outcome_and_decision_is_reported_from_zero(api: Api) -> None:
    text = await scrape(api)

    assert label_values(text, "orders_finished_total", "outcome") == {
        "processed",
        "insufficient_inventory",
        "rejected",
        "approval_timeout",
        "payment_failed",
        "inventory_update_failed",
        "cancelled",
        "step_failed",
    }
    assert value(text, "orders_finished_total", outcome="processed") == 0
    assert label_values(text, "orders_decisions_total", "decision") == {
        "approved",
        "rejected",
        "cancelled",
    }


async def test_orders_in_flight_are_counted_by_step_from_the_store_and_the_engine(
    observed_api: Api,
) -> None:
    await observed_api.client.post("/orders", json={**BIG_ORDER, "order_id": "o1"})
    await observed_api.client.post("/orders", json={**SMALL_ORDER, "order_id": "o2"})
    observed_api.workflows.set("o1", "RUNNING", "awaiting_approval")
    observed_api.workflows.set("o2", "RUNNING", "processing_payment")
    # Accepted by another replica (or before a restart): this process never saw it.
    await observed_api.store.save(shard_key(0), {"order_ids": ["elsewhere"]}, None)
    observed_api.workflows.set("elsewhere", "RUNNING", "awaiting_approval")

    text = await scrape(observed_api)

    assert value(text, "orders_in_flight", step="awaiting_approval") == 2
    assert value(text, "orders_in_flight", step="processing_payment") == 1
    assert value(text, "orders_in_flight", step="reserving_inventory") == 0


async def test_a_finished_order_leaves_the_in_flight_gauge(observed_api: Api) -> None:
    await observed_api.client.post("/orders", json={**SMALL_ORDER, "order_id": "o1"})
    observed_api.workflows.set("o1", "RUNNING", "processing_payment")
    assert value(await scrape(observed_api), "orders_in_flight", step="processing_payment") == 1

    # A workflow that failed never records an outcome: the engine's word is enough.
    observed_api.workflows.set("o1", "FAILED")

    assert value(await scrape(observed_api), "orders_in_flight", step="processing_payment") == 0
    stored = observed_api.snapshot_of_store()
    assert all(
        "o1" not in stored.get(shard_key(shard), {"order_ids": []})["order_ids"]
        for shard in range(SHARDS)
    )


async def test_in_flight_is_left_out_when_the_store_does_not_answer(observed_api: Api) -> None:
    observed_api.store.frozen = True

    assert value(await scrape(observed_api), "orders_in_flight", step="awaiting_approval") is None


async def test_without_observability_no_in_flight_sets_are_kept(api: Api) -> None:
    await api.client.post("/orders", json={**SMALL_ORDER, "order_id": "o1"})

    text = await scrape(api)

    assert value(text, "orders_in_flight", step="pending") is None
    assert not any(key.startswith("orders:in-flight") for key in api.snapshot_of_store())
