"""A replica whose own Dapr sidecar is gone answers 502 where the request is safe to repeat on
another replica (the proxy does so: devstack/stack/replicas.py), and 503 where it is not; a create
the proxy repeats carries the proxy's request id as its order id, so it finds the same order."""

from __future__ import annotations

from tests.fixtures.api import Api, assert_error

PAPERCLIPS = {"item": "paperclip", "quantity": 3}
REQUEST_ID = "0123456789abcdef0123456789abcdef"  # nginx's $request_id: 32 hex digits
MANAGER = {"Authorization": "Bearer t"}


async def test_a_read_on_a_replica_without_its_sidecar_is_a_502(api: Api) -> None:
    await api.client.post("/orders", json={**PAPERCLIPS, "order_id": "o1"})
    api.store.unreachable_from = ""

    response = await api.client.get("/orders/o1")

    assert_error(response, 502, "unavailable")
    assert response.json()["may_have_happened"] is False


async def test_a_create_that_wrote_nothing_is_a_502_nothing_changed(api: Api) -> None:
    api.store.unreachable_from = ""

    response = await api.client.post("/orders", json=PAPERCLIPS)

    assert_error(response, 502, "unavailable")
    body = response.json()
    assert (body["may_have_happened"], body["retry"]) == (False, "any"), body
    assert not [key for key in api.store.data if key.startswith("order:")]


async def test_a_create_naming_its_order_is_a_502_even_once_the_order_may_exist(
    api: Api,
) -> None:
    # Repeated as it was, it finds the order its first attempt may have recorded.
    api.store.unreachable_from = "order:"

    response = await api.client.post(
        "/orders", json=PAPERCLIPS, headers={"X-Request-Id": REQUEST_ID}
    )

    assert_error(response, 502, "unavailable")
    body = response.json()
    assert (body["may_have_happened"], body["order_id"]) == (True, REQUEST_ID), body


async def test_a_create_without_any_id_that_may_have_happened_stays_a_503(api: Api) -> None:
    # Repeated as it was, it would make a second order: not for the proxy to repeat.
    api.store.unreachable_from = "order:"

    response = await api.client.post("/orders", json=PAPERCLIPS)

    assert_error(response, 503, "unavailable")
    assert response.json()["retry"] == "same_order_id"


async def test_a_restock_whose_write_may_have_happened_stays_a_503(api: Api) -> None:
    api.store.unreachable_from = "inventory:"

    response = await api.client.post(
        "/inventory/restock", headers=MANAGER, json={"item": "cars", "quantity": 1}
    )

    assert_error(response, 503, "unavailable")
    assert response.json()["retry"] == "read_first"


async def test_a_decision_whose_write_may_have_happened_is_a_502(api: Api) -> None:
    # Repeated, it finds the decision recorded (409 naming it), never a second one.
    await api.client.post("/orders", json={**PAPERCLIPS, "order_id": "o1"})
    api.store.unreachable_from = "order:o1"

    response = await api.client.post("/orders/o1/cancel", headers=MANAGER)

    assert_error(response, 502, "unavailable")
    assert response.json()["retry"] == "same_request"


async def test_the_proxy_request_id_is_the_order_id_of_a_create_without_one(api: Api) -> None:
    first = await api.client.post("/orders", json=PAPERCLIPS, headers={"X-Request-Id": REQUEST_ID})
    again = await api.client.post("/orders", json=PAPERCLIPS, headers={"X-Request-Id": REQUEST_ID})

    assert (first.status_code, again.status_code) == (202, 200), again.text
    assert first.json()["order_id"] == again.json()["order_id"] == REQUEST_ID
    assert [instance for _, instance, _ in api.workflows.scheduled] == [REQUEST_ID]


async def test_an_order_id_or_a_key_is_the_order_id_before_the_request_id(api: Api) -> None:
    named = await api.client.post(
        "/orders", json={**PAPERCLIPS, "order_id": "o1"}, headers={"X-Request-Id": REQUEST_ID}
    )
    keyed = await api.client.post(
        "/orders", json=PAPERCLIPS, headers={"Idempotency-Key": "k1", "X-Request-Id": REQUEST_ID}
    )

    assert (named.json()["order_id"], keyed.json()["order_id"]) == ("o1", "k1")


async def test_a_request_id_that_is_no_valid_order_id_is_ignored(api: Api) -> None:
    response = await api.client.post(
        "/orders", json=PAPERCLIPS, headers={"X-Request-Id": "trace.id/with spaces"}
    )

    assert response.status_code == 202, response.text
    assert response.json()["order_id"] != "trace.id/with spaces"
