"""A frozen state store (every call hangs, as with Redis under SIGSTOP) gets prompt answers."""

from __future__ import annotations

import time

import pytest

from tests.fixtures.api import SHORT_REQUEST_TIMEOUT_SECONDS, Api, assert_error


@pytest.fixture
def request_timeout_seconds() -> float:
    return SHORT_REQUEST_TIMEOUT_SECONDS


async def test_a_request_the_store_leaves_hanging_is_a_503_at_the_deadline(api: Api) -> None:
    api.store.frozen = True
    started = time.monotonic()

    response = await api.client.get("/orders/o1")

    elapsed = time.monotonic() - started
    detail = assert_error(response, 503, "unavailable")
    assert "state store" in detail
    assert SHORT_REQUEST_TIMEOUT_SECONDS <= elapsed < SHORT_REQUEST_TIMEOUT_SECONDS + 1.0


async def test_a_long_poll_gets_its_wait_on_top_of_the_deadline(api: Api) -> None:
    api.store.frozen = True
    started = time.monotonic()

    response = await api.client.get("/orders/o1", params={"wait": 1})

    elapsed = time.monotonic() - started
    assert_error(response, 503, "unavailable")
    assert SHORT_REQUEST_TIMEOUT_SECONDS + 1 <= elapsed < SHORT_REQUEST_TIMEOUT_SECONDS + 2.0


async def test_writes_answer_at_the_deadline_too(api: Api, manager: dict[str, str]) -> None:
    api.store.frozen = True

    create = await api.client.post("/orders", json={"item": "cars", "quantity": 1})
    restock = await api.client.post(
        "/inventory/restock", headers=manager, json={"item": "cars", "quantity": 1}
    )

    assert_error(create, 503, "unavailable")
    assert_error(restock, 503, "unavailable")


async def test_readyz_is_503_while_the_store_does_not_answer(api: Api) -> None:
    api.store.frozen = True

    response = await api.client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["detail"] == "state store did not answer within 0.2s"


async def test_requests_that_answer_in_time_are_untouched(api: Api) -> None:
    response = await api.client.get("/inventory")

    assert response.status_code == 200


async def test_an_approval_the_engine_leaves_hanging_is_accepted_and_queued_in_time(
    api: Api, manager: dict[str, str]
) -> None:
    created = await api.client.post("/orders", json={"item": "cars", "quantity": 4})
    order_id = created.json()["order_id"]
    api.workflows.hanging = True
    started = time.monotonic()

    approved = await api.client.post(f"/orders/{order_id}/approve", headers=manager)

    assert approved.status_code == 202, approved.text
    assert time.monotonic() - started < SHORT_REQUEST_TIMEOUT_SECONDS
    assert api.store.data["orders:outbox"][0]["order_ids"] == [order_id]
    again = await api.client.post(f"/orders/{order_id}/approve", headers=manager)
    assert_error(again, 409, "decision_already_made")
