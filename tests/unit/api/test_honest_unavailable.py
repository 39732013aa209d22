"""A 503 says truthfully whether the change may have happened, and how to repeat it safely.

The request deadline answers while a change runs on (shielded, so it never stops half done):
"nothing was changed" is said only while nothing has been written, and then stays true.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.fixtures.api import SHORT_REQUEST_TIMEOUT_SECONDS, Api, assert_error
from tests.fixtures.waiting import eventually

PAPERCLIPS = {"item": "paperclip", "quantity": 3}


@pytest.fixture
def request_timeout_seconds() -> float:
    return SHORT_REQUEST_TIMEOUT_SECONDS


def order_ids(api: Api) -> list[str]:
    return sorted(key.removeprefix("order:") for key in api.store.data if key.startswith("order:"))


async def changes_settled(api: Api) -> None:
    """Wait until no change of the app is still running behind an answered request."""

    async def running() -> int:
        return len(api.services.orders.changes.running)

    await eventually(running, lambda n: n == 0, deadline_seconds=5, interval=0.01, what="settled")


async def create_held_at(api: Api, prefix: str) -> httpx.Response:
    """POST /orders (no order_id) while the store holds saves of keys under `prefix` past the
    request's deadline; the hold is then released and the change left to settle."""
    gate = api.store.hold_saves(prefix)
    response = await api.client.post("/orders", json=PAPERCLIPS)
    gate.set()
    await changes_settled(api)
    return response


async def test_a_create_whose_record_was_being_written_at_the_deadline_may_have_happened(
    api: Api,
) -> None:
    response = await create_held_at(api, "order:")

    assert_error(response, 503, "unavailable")
    body: dict[str, Any] = response.json()
    [created] = order_ids(api)  # the shielded create went on and succeeded
    assert body.get("may_have_happened") is True, body
    assert (body.get("retry"), body.get("order_id")) == ("same_order_id", created), body
    assert "nothing was changed" not in body["detail"].lower()


async def test_a_create_held_at_its_start_outbox_entry_may_have_happened_and_goes_on(
    api: Api,
) -> None:
    # The entry on the start outbox is the create's first write: once it is sent, the create
    # goes on to record the order, so a 503 then must not say that nothing was changed.
    response = await create_held_at(api, "orders:starting:")

    body: dict[str, Any] = response.json()
    [created] = order_ids(api)
    assert (body.get("may_have_happened"), body.get("order_id")) == (True, created), body


async def test_retrying_with_the_order_id_a_503_named_returns_that_order_not_a_second(
    api: Api,
) -> None:
    order_id = (await create_held_at(api, "order:")).json().get("order_id")

    retry = await api.client.post("/orders", json={**PAPERCLIPS, "order_id": order_id})

    assert retry.status_code == 200, retry.text
    assert retry.json()["order_id"] == order_id
    assert order_ids(api) == [order_id]
    assert len(api.workflows.scheduled) == 1


async def test_a_create_given_up_before_its_first_write_never_writes_it(api: Api) -> None:
    response = await create_held_at(api, "orders:sequence")

    assert (order_ids(api), api.workflows.scheduled) == ([], [])
    detail = assert_error(response, 503, "unavailable")
    assert "nothing was changed" in detail.lower()
    assert response.json().get("may_have_happened") is False, response.json()


async def test_a_decision_being_written_at_the_deadline_may_have_happened(
    api: Api, manager: dict[str, str]
) -> None:
    created = await api.client.post("/orders", json={"item": "cars", "quantity": 4})
    order_id = created.json()["order_id"]
    gate = api.store.hold_saves(f"order:{order_id}")

    response = await api.client.post(f"/orders/{order_id}/cancel", headers=manager)
    gate.set()
    await changes_settled(api)

    assert_error(response, 503, "unavailable")
    body = response.json()
    assert (body.get("may_have_happened"), body.get("retry")) == (True, "same_request"), body
    again = await api.client.post(f"/orders/{order_id}/cancel", headers=manager)
    assert "cancelled" in assert_error(again, 409, "decision_already_made")


async def test_a_read_at_the_deadline_changed_nothing(api: Api) -> None:
    api.store.frozen = True

    response = await api.client.get("/orders/o1")

    assert_error(response, 503, "unavailable")
    body = response.json()
    assert (body.get("may_have_happened"), body.get("retry")) == (False, "any"), body


async def test_a_restock_being_written_at_the_deadline_says_to_read_the_stock_first(
    api: Api, manager: dict[str, str]
) -> None:
    gate = api.store.hold_saves("inventory:cars")

    response = await api.client.post(
        "/inventory/restock", headers=manager, json={"item": "cars", "quantity": 1}
    )
    gate.set()

    assert_error(response, 503, "unavailable")
    body = response.json()
    assert (body.get("may_have_happened"), body.get("retry")) == (True, "read_first"), body


async def test_every_operation_documents_its_503_with_the_retry_fields(api: Api) -> None:
    spec = (await api.client.get("/openapi.json")).json()

    unavailable = spec["components"]["schemas"]["UnavailableOut"]
    assert {"error", "detail", "may_have_happened", "retry", "order_id"} <= set(
        unavailable["properties"]
    )
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if path == "/readyz":
                continue  # its 503 is a readiness answer (HealthOut)
            schema = operation["responses"]["503"]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/UnavailableOut"}, (path, method)
