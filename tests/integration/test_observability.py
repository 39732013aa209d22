"""OBSERVABILITY=true on a private real stack: Prometheus scrapes the order series, and Jaeger
holds one trace per order with the app's and daprd's spans in it.

The stack is the one `OBSERVABILITY=true make run` starts: Debian's Prometheus and Jaeger built
from its Go module, both queried through their own HTTP APIs.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.stack import Stack
from tests.fixtures.orders import create, wait_until_finished
from tests.fixtures.stack import MANAGER_TOKEN, api_client, private_stack
from tests.fixtures.waiting import eventually

APP_SERVICE = "order-processor-app"
# daprd reports its spans under the app id.
DAPRD_SERVICE = "order-processor"
SCRAPE_JOBS = {"order-processor", "daprd", "placement", "scheduler"}


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data: Path = tmp_path_factory.mktemp("observed-stack")
    with private_stack(data, {}, stack_settings={"OBSERVABILITY": True}) as stack:
        yield stack


@pytest.fixture
async def api(observed: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(observed) as client:
        yield client


async def processed_order(api: httpx.AsyncClient) -> str:
    manager = {"Authorization": f"Bearer {MANAGER_TOKEN}"}
    restocked = await api.post(
        "/inventory/restock", headers=manager, json={"item": "paperclip", "quantity": 1}
    )
    assert restocked.status_code == 200, restocked.text
    order_id = str((await create(api, "paperclip", 1))["order_id"])
    done = await wait_until_finished(api, order_id)
    assert done["result"] == {"processed": True, "reason": None}
    return order_id


async def test_prometheus_scrapes_the_order_series_after_an_order_ran(
    observed: Stack, api: httpx.AsyncClient
) -> None:
    await processed_order(api)
    prometheus = f"http://127.0.0.1:{observed.settings.prometheus_port}"

    async with httpx.AsyncClient(base_url=prometheus, timeout=10.0) as client:

        async def query(promql: str) -> list[dict[str, Any]]:
            response = await client.get("/api/v1/query", params={"query": promql})
            assert response.status_code == 200, response.text
            result: list[dict[str, Any]] = response.json()["data"]["result"]
            return result

        processed = await eventually(
            lambda: query('orders_finished_total{outcome="processed"}'),
            lambda result: bool(result) and float(result[0]["value"][1]) >= 1,
            deadline_seconds=60,
            interval=1.0,
            what="orders_finished_total{outcome=processed} >= 1 in Prometheus",
        )
        assert processed[0]["metric"]["job"] == "order-processor"
        up = await eventually(
            lambda: query("up == 1"),
            lambda result: {r["metric"]["job"] for r in result} >= SCRAPE_JOBS,
            deadline_seconds=30,
            interval=1.0,
            what="every scrape target up",
        )
        assert {r["metric"]["job"] for r in up} >= SCRAPE_JOBS
        # The HTTP histograms and the state gauges come through the same scrape.
        assert await query('http_request_duration_seconds_count{route="/orders"}')
        # Read from the store's in-flight sets, which the app keeps with OBSERVABILITY on.
        assert await query("orders_in_flight")


def operations_of(trace: dict[str, Any], service: str) -> set[str]:
    processes = {key for key, p in trace["processes"].items() if p["serviceName"] == service}
    return {str(span["operationName"]) for span in trace["spans"] if span["processID"] in processes}


async def test_one_order_is_one_trace_across_the_app_and_daprd(
    observed: Stack, api: httpx.AsyncClient
) -> None:
    order_id = await processed_order(api)
    jaeger = f"http://127.0.0.1:{observed.settings.jaeger_ui_port}"

    async with httpx.AsyncClient(base_url=jaeger, timeout=10.0) as client:

        async def traces_of_the_order() -> list[dict[str, Any]]:
            response = await client.get(
                "/api/traces",
                params={
                    "service": APP_SERVICE,
                    "tags": json.dumps({"order.id": order_id}),
                    "limit": 20,
                },
            )
            assert response.status_code == 200, response.text
            found: list[dict[str, Any]] = response.json()["data"] or []
            return found

        # The app and daprd export in batches, each every few seconds: wait for both halves.
        traces = await eventually(
            traces_of_the_order,
            lambda found: any(whole_order(trace) for trace in found),
            deadline_seconds=60,
            interval=1.0,
            what=f"one trace of order {order_id} with the app's and daprd's spans",
        )

    assert sum(1 for trace in traces if whole_order(trace)) == 1


def whole_order(trace: dict[str, Any]) -> bool:
    """The order's request, its scheduling and activities in the app, and daprd's side of the
    scheduling call and the workflow it ran, all in this one trace."""
    app = operations_of(trace, APP_SERVICE)
    daprd = operations_of(trace, DAPRD_SERVICE)
    return (
        {"POST /orders", "schedule workflow", "/TaskHubSidecarService/StartInstance"} <= app
        and {"activity reserve_inventory", "activity finish_order"} <= app
        and "/TaskHubSidecarService/StartInstance" in daprd
        and any(operation.startswith("orchestration||") for operation in daprd)
    )
