"""GET /audit through the real app: managers only, the auditor's report as JSON."""

from __future__ import annotations

from app.services.inventory import InventoryService
from tests.fixtures.api import Api, assert_error


async def test_audit_needs_the_manager_token(api: Api) -> None:
    assert_error(await api.client.get("/audit"), 401, "unauthorized")
    wrong = {"Authorization": "Bearer wrong"}
    assert_error(await api.client.get("/audit", headers=wrong), 401, "unauthorized")


async def test_audit_of_a_store_that_adds_up_is_ok(api: Api, manager: dict[str, str]) -> None:
    created = await api.client.post("/orders", json={"item": "cars", "quantity": 1})
    assert created.status_code == 202

    response = await api.client.get("/audit", headers=manager)

    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True
    assert body["violations"] == []
    assert body["checked"]["orders"] == 1
    assert body["checked"]["in_flight"] == 1


async def test_audit_names_each_violation_with_its_order(api: Api, manager: dict[str, str]) -> None:
    assert await InventoryService(api.store).reserve("nobody", "cars", 2)

    body = (await api.client.get("/audit", headers=manager)).json()

    assert body["ok"] is False
    assert body["violations"] == [
        {
            "invariant": "stock_hold",
            "order_id": "nobody",
            "detail": "holds 2 cars, but there is no such order",
        }
    ]


async def test_audit_that_cannot_read_the_store_is_503(api: Api, manager: dict[str, str]) -> None:
    api.workflows.unavailable_reads = True
    created = await api.client.post("/orders", json={"item": "cars", "quantity": 1})
    assert created.status_code == 202

    assert_error(await api.client.get("/audit", headers=manager), 503, "unavailable")
