"""/inventory routes through the real app."""

from __future__ import annotations

from typing import Any

import pytest

from app.domain.inventory import CATALOG
from app.main import MAX_BODY_BYTES
from app.services.inventory import InventoryService
from tests.fixtures.api import Api, assert_error


def quantities(body: dict[str, Any]) -> dict[str, int]:
    return {item["item"]: item["quantity"] for item in body["items"]}


async def test_list_shows_every_catalog_item(api: Api) -> None:
    response = await api.client.get("/inventory")

    assert response.status_code == 200
    assert response.json()["items"] == [
        {
            "item": name,
            "quantity": entry.initial_stock,
            "reserved": 0,
            "per_item_cost": entry.per_item_cost,
        }
        for name, entry in CATALOG.items()
    ]


async def test_get_one_item(api: Api) -> None:
    response = await api.client.get("/inventory/cars")

    assert response.status_code == 200
    assert response.json() == {
        "item": "cars",
        "quantity": 100,
        "reserved": 0,
        "per_item_cost": 15_000,
    }


async def test_item_names_are_case_insensitive(api: Api) -> None:
    response = await api.client.get("/inventory/CaRs")

    assert response.status_code == 200
    assert response.json()["item"] == "cars"


async def test_reserved_units_show_as_reserved(api: Api) -> None:
    await InventoryService(api.store).reserve("o1", "cars", 3)

    body = (await api.client.get("/inventory/cars")).json()

    assert (body["quantity"], body["reserved"]) == (97, 3)


async def test_unknown_item_is_404_listing_known_items(api: Api) -> None:
    detail = assert_error(await api.client.get("/inventory/unicorns"), 404, "not_found")

    assert "cars, computers, paperclip" in detail


async def test_restock_with_a_body_adds_to_one_item(api: Api, manager: dict[str, str]) -> None:
    response = await api.client.post(
        "/inventory/restock", headers=manager, json={"item": "computers", "quantity": 50}
    )

    assert response.status_code == 200
    assert quantities(response.json()) == {"paperclip": 100, "cars": 100, "computers": 150}


async def test_restock_without_a_body_resets_every_item(api: Api, manager: dict[str, str]) -> None:
    inventory = InventoryService(api.store)
    await inventory.restock("computers", 50)
    await inventory.reserve("o1", "cars", 10)
    await inventory.commit("o1", "cars")

    response = await api.client.post("/inventory/restock", headers=manager)

    assert response.status_code == 200
    assert quantities(response.json()) == {name: 100 for name in CATALOG}


async def test_restock_of_an_unknown_item_is_404(api: Api, manager: dict[str, str]) -> None:
    response = await api.client.post(
        "/inventory/restock", headers=manager, json={"item": "unicorns", "quantity": 5}
    )

    assert_error(response, 404, "not_found")


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-token"),
        pytest.param({"Authorization": "Bearer wrong"}, id="wrong-token"),
        pytest.param({"Authorization": "Basic dDp0"}, id="basic-scheme"),
    ],
)
async def test_restock_without_the_manager_token_is_401_and_changes_nothing(
    api: Api, headers: dict[str, str]
) -> None:
    before = api.snapshot_of_store()

    response = await api.client.post(
        "/inventory/restock", headers=headers, json={"item": "computers", "quantity": 50}
    )

    assert_error(response, 401, "unauthorized")
    assert api.snapshot_of_store() == before


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"item": "cars", "quantity": 0}, id="quantity-zero"),
        pytest.param({"item": "cars", "quantity": "3"}, id="quantity-string"),
        pytest.param({"item": "cars", "quantity": 1.5}, id="quantity-fraction"),
        pytest.param({"item": "cars"}, id="missing-quantity"),
        pytest.param({}, id="empty-object"),
        pytest.param({"item": "cars", "quantity": 1, "extra": 1}, id="extra-field"),
    ],
)
async def test_invalid_restock_body_is_422_and_changes_nothing(
    api: Api, manager: dict[str, str], body: dict[str, Any]
) -> None:
    before = api.snapshot_of_store()

    response = await api.client.post("/inventory/restock", headers=manager, json=body)

    assert_error(response, 422, "invalid_input")
    assert api.snapshot_of_store() == before


async def test_malformed_restock_json_is_422(api: Api, manager: dict[str, str]) -> None:
    response = await api.client.post(
        "/inventory/restock",
        headers={**manager, "content-type": "application/json"},
        content=b'{"item": ',
    )

    assert_error(response, 422, "invalid_input")


async def test_restock_body_over_the_limit_is_413_with_the_error_shape(
    api: Api, manager: dict[str, str]
) -> None:
    response = await api.client.post(
        "/inventory/restock",
        headers=manager,
        json={"item": "x" * (MAX_BODY_BYTES + 1), "quantity": 1},
    )

    assert_error(response, 413, "payload_too_large")
