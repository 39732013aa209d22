"""/healthz, /readyz (against a faked sidecar) and the OpenAPI document."""

from __future__ import annotations

from fastapi.routing import APIRoute

from app.api import audit, events, health, inventory, orders
from tests.fixtures.api import Api


async def test_healthz_is_200(api: Api) -> None:
    response = await api.client.get("/healthz")

    assert response.status_code == 200
    assert response.json()["status"] == "ok"


async def test_healthz_does_not_ask_the_sidecar(api: Api) -> None:
    api.sidecar.unreachable = True

    assert (await api.client.get("/healthz")).status_code == 200
    assert api.sidecar.requests == []


async def test_readyz_is_200_when_the_sidecar_is_healthy_with_a_worker(api: Api) -> None:
    response = await api.client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ready", "detail": "ok"}
    assert api.sidecar.requests == ["/v1.0/healthz", "/v1.0/metadata"]


async def test_readyz_is_503_when_the_sidecar_is_unhealthy(api: Api) -> None:
    api.sidecar.healthz_status = 500

    response = await api.client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["status"] == "not_ready"
    assert "/v1.0/healthz answered 500" in response.json()["detail"]


async def test_readyz_is_503_when_no_workflow_worker_is_connected(api: Api) -> None:
    api.sidecar.connected_workers = 0

    response = await api.client.get("/readyz")

    assert response.status_code == 503
    assert response.json() == {
        "status": "not_ready",
        "detail": "workflow worker not connected to the sidecar",
    }


async def test_readyz_is_503_when_the_sidecar_is_unreachable(api: Api) -> None:
    api.sidecar.unreachable = True

    response = await api.client.get("/readyz")

    assert response.status_code == 503
    assert "sidecar unreachable" in response.json()["detail"]


async def test_openapi_lists_every_route(api: Api) -> None:
    response = await api.client.get("/openapi.json")

    assert response.status_code == 200
    documented = {
        (path, method.upper())
        for path, operations in response.json()["paths"].items()
        for method in operations
    }
    routes = {
        (route.path, method)
        for module in (health, orders, inventory, events, audit)
        for route in module.router.routes
        if isinstance(route, APIRoute)
        for method in route.methods or ()
    }
    assert documented == routes
    assert documented >= {
        ("/healthz", "GET"),
        ("/readyz", "GET"),
        ("/orders", "POST"),
        ("/orders", "GET"),
        ("/orders/{order_id}", "GET"),
        ("/orders/{order_id}/approve", "POST"),
        ("/orders/{order_id}/cancel", "POST"),
        ("/inventory", "GET"),
        ("/inventory/{item}", "GET"),
        ("/inventory/restock", "POST"),
        ("/orders/{order_id}/events", "GET"),
        ("/events", "GET"),
    }
