"""`Idempotency-Key` is the order id for clients that cannot choose one."""

from __future__ import annotations

import pytest

from tests.fixtures.api import SHORT_REQUEST_TIMEOUT_SECONDS, Api, assert_error

PAPERCLIPS = {"item": "paperclip", "quantity": 3}
KEY = "6f1c2a7e-93b4-4f55-8d0e-2b7c1a9e4d10"


async def test_the_key_becomes_the_order_id(api: Api) -> None:
    response = await api.client.post("/orders", json=PAPERCLIPS, headers={"Idempotency-Key": KEY})

    assert response.status_code == 202, response.text
    assert response.json()["order_id"] == KEY
    assert response.headers["Location"] == f"/orders/{KEY}"


async def test_a_retry_with_the_same_key_returns_the_same_order(api: Api) -> None:
    first = await api.client.post("/orders", json=PAPERCLIPS, headers={"Idempotency-Key": KEY})

    again = await api.client.post("/orders", json=PAPERCLIPS, headers={"Idempotency-Key": KEY})

    assert (first.status_code, again.status_code) == (202, 200), again.text
    assert again.json()["order_id"] == KEY
    assert [instance for _, instance, _ in api.workflows.scheduled] == [KEY]


async def test_the_key_and_the_same_order_id_in_the_body_are_one_order(api: Api) -> None:
    await api.client.post("/orders", json=PAPERCLIPS, headers={"Idempotency-Key": KEY})

    again = await api.client.post("/orders", json={**PAPERCLIPS, "order_id": KEY})

    assert again.status_code == 200, again.text
    assert len(api.workflows.scheduled) == 1


async def test_the_same_key_with_another_body_is_a_conflict(api: Api) -> None:
    await api.client.post("/orders", json=PAPERCLIPS, headers={"Idempotency-Key": KEY})

    other = await api.client.post(
        "/orders", json={"item": "paperclip", "quantity": 4}, headers={"Idempotency-Key": KEY}
    )

    assert_error(other, 409, "conflict")


async def test_an_order_id_and_a_key_that_differ_are_refused_and_change_nothing(api: Api) -> None:
    response = await api.client.post(
        "/orders", json={**PAPERCLIPS, "order_id": "o1"}, headers={"Idempotency-Key": KEY}
    )

    detail = assert_error(response, 422, "invalid_input")
    assert f"order_id 'o1' and Idempotency-Key '{KEY}' differ" in detail
    assert api.workflows.scheduled == []


async def test_a_key_that_is_not_a_valid_order_id_is_refused(api: Api) -> None:
    for bad in ("has space", "x" * 65, "a/b", ""):
        response = await api.client.post(
            "/orders", json=PAPERCLIPS, headers={"Idempotency-Key": bad}
        )

        detail = assert_error(response, 422, "invalid_input")
        assert "idempotency-key" in detail.lower(), (bad, detail)
    assert api.workflows.scheduled == []


@pytest.mark.parametrize("request_timeout_seconds", [SHORT_REQUEST_TIMEOUT_SECONDS])
async def test_a_503_names_the_key_to_retry_with(api: Api) -> None:
    gate = api.store.hold_saves("order:")  # the record is being written at the deadline

    response = await api.client.post("/orders", json=PAPERCLIPS, headers={"Idempotency-Key": KEY})
    gate.set()

    assert_error(response, 503, "unavailable")
    body = response.json()
    assert (body["retry"], body["order_id"]) == ("same_order_id", KEY), body


async def test_the_key_is_documented(api: Api) -> None:
    spec = (await api.client.get("/openapi.json")).json()

    parameters = spec["paths"]["/orders"]["post"]["parameters"]

    [key] = [p for p in parameters if p["name"] == "Idempotency-Key"]
    assert (key["in"], key["required"]) == ("header", False)
