"""/orders routes through the real app: status codes, headers, and the JSON error shape."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from app.main import MAX_BODY_BYTES
from app.workflows.contracts import APPROVAL_EVENT, CANCEL_EVENT, Retrying, Step
from tests.fixtures.api import Api, assert_error

BIG_ORDER = {"item": "cars", "quantity": 4}  # 60,000: above the threshold
SMALL_ORDER = {"item": "paperclip", "quantity": 2}


async def place(api: Api, order_id: str, body: dict[str, Any] | None = None) -> httpx.Response:
    response = await api.client.post("/orders", json={**(body or BIG_ORDER), "order_id": order_id})
    assert response.status_code == 202, response.text
    return response


# -- POST /orders ------------------------------------------------------------------------------


async def test_create_is_accepted_with_a_location(api: Api) -> None:
    response = await api.client.post("/orders", json={**BIG_ORDER, "order_id": "o1"})

    assert response.status_code == 202
    assert response.headers["location"] == "/orders/o1"
    body = response.json()
    assert (body["order_id"], body["item"], body["quantity"]) == ("o1", "cars", 4)
    assert (body["total_cost"], body["approval_required"]) == (60_000, True)
    assert body["status"] in {"PENDING", "RUNNING"}
    assert body["result"] is None


async def test_create_without_an_order_id_gets_a_generated_one(api: Api) -> None:
    response = await api.client.post("/orders", json=SMALL_ORDER)

    assert response.status_code == 202
    order_id = response.json()["order_id"]
    assert response.headers["location"] == f"/orders/{order_id}"
    assert [instance for _, instance, _ in api.workflows.scheduled] == [order_id]


async def test_repeated_create_returns_200_with_the_same_order(api: Api) -> None:
    first = await place(api, "o1")

    second = await api.client.post("/orders", json={**BIG_ORDER, "order_id": "o1"})

    assert second.status_code == 200
    assert second.headers["location"] == "/orders/o1"
    assert second.json()["created_at"] == first.json()["created_at"]
    assert len(api.workflows.scheduled) == 1


async def test_same_order_id_with_another_body_is_409(api: Api) -> None:
    await place(api, "o1")

    response = await api.client.post(
        "/orders", json={"item": "cars", "quantity": 5, "order_id": "o1"}
    )

    assert_error(response, 409, "conflict")
    assert len(api.workflows.scheduled) == 1


async def test_unknown_item_is_422_listing_known_items(api: Api) -> None:
    response = await api.client.post("/orders", json={"item": "unicorns", "quantity": 1})

    detail = assert_error(response, 422, "invalid_input")
    assert "cars, computers, paperclip" in detail
    assert api.workflows.scheduled == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"item": "cars", "quantity": 0}, "quantity", id="quantity-zero"),
        pytest.param({"item": "cars", "quantity": -1}, "quantity", id="quantity-negative"),
        pytest.param({"item": "cars", "quantity": "3"}, "quantity", id="quantity-string"),
        pytest.param({"item": "cars", "quantity": 1.5}, "quantity", id="quantity-fraction"),
        pytest.param({"item": "cars", "quantity": True}, "quantity", id="quantity-bool"),
        pytest.param({"item": "cars"}, "quantity", id="missing-quantity"),
        pytest.param({"quantity": 1}, "item", id="missing-item"),
        pytest.param({"item": "", "quantity": 1}, "item", id="empty-item"),
        pytest.param({"item": "cars", "quantity": 1, "colour": "red"}, "colour", id="extra"),
        pytest.param(
            {"item": "cars", "quantity": 1, "order_id": "bad id!"}, "order_id", id="id-chars"
        ),
        pytest.param(
            {"item": "cars", "quantity": 1, "order_id": "a" * 65}, "order_id", id="id-65-chars"
        ),
        pytest.param({"item": "cars", "quantity": 1, "order_id": ""}, "order_id", id="id-empty"),
    ],
)
async def test_invalid_create_body_is_422_naming_the_field(
    api: Api, body: dict[str, Any], field: str
) -> None:
    response = await api.client.post("/orders", json=body)

    detail = assert_error(response, 422, "invalid_input")
    assert field in detail
    assert api.workflows.scheduled == []
    assert api.store.data.keys() <= {
        f"inventory:{item}" for item in ("cars", "computers", "paperclip")
    }


async def test_order_id_of_64_allowed_characters_is_accepted(api: Api) -> None:
    order_id = "A-z_0" + "9" * 59

    response = await api.client.post("/orders", json={**SMALL_ORDER, "order_id": order_id})

    assert response.status_code == 202
    assert response.json()["order_id"] == order_id


async def test_quantity_written_as_a_whole_float_is_that_integer(api: Api) -> None:
    response = await api.client.post("/orders", json={"item": "cars", "quantity": 3.0})

    assert response.status_code == 202
    assert response.json()["quantity"] == 3


async def test_body_that_is_not_utf8_is_422(api: Api) -> None:
    response = await api.client.post(
        "/orders",
        content=b'{"item": "\xff\xfe", "quantity": 1}',
        headers={"content-type": "application/json"},
    )

    assert_error(response, 422, "invalid_input")
    assert api.workflows.scheduled == []


async def test_malformed_json_is_422(api: Api) -> None:
    response = await api.client.post(
        "/orders", content=b'{"item": "cars",', headers={"content-type": "application/json"}
    )

    assert_error(response, 422, "invalid_input")
    assert api.workflows.scheduled == []


async def test_empty_body_is_422(api: Api) -> None:
    response = await api.client.post("/orders", headers={"content-type": "application/json"})

    assert_error(response, 422, "invalid_input")


async def test_body_over_the_limit_is_413_with_the_error_shape(api: Api) -> None:
    padding = "x" * (MAX_BODY_BYTES + 1)

    response = await api.client.post(
        "/orders", json={"item": "cars", "quantity": 1, "order_id": padding}
    )

    assert_error(response, 413, "payload_too_large")
    assert api.workflows.scheduled == []


async def test_streamed_body_over_the_limit_is_413_with_the_error_shape(api: Api) -> None:
    async def chunks() -> Any:
        yield b'{"item": "cars", "quantity": 1, "order_id": "'
        for _ in range(MAX_BODY_BYTES // 1024 + 1):
            yield b"x" * 1024
        yield b'"}'

    response = await api.client.post(
        "/orders", content=chunks(), headers={"content-type": "application/json"}
    )

    assert_error(response, 413, "payload_too_large")
    assert api.workflows.scheduled == []


async def test_create_with_the_engine_down_is_accepted_and_pending(api: Api) -> None:
    # Accepting needs only the state store; the start outbox starts the workflow later.
    api.workflows.unavailable = True

    response = await api.client.post("/orders", json={**BIG_ORDER, "order_id": "o1"})

    assert response.status_code == 202, response.text
    assert response.json()["status"] == "PENDING"
    assert (await api.client.get("/orders/o1")).json()["status"] == "PENDING"
    assert api.workflows.scheduled == []


# -- GET /orders/{id} --------------------------------------------------------------------------


async def test_get_returns_the_order(api: Api) -> None:
    await place(api, "o1")
    api.workflows.set("o1", "RUNNING", Step.AWAITING_APPROVAL)

    response = await api.client.get("/orders/o1")

    assert response.status_code == 200
    body = response.json()
    assert (body["order_id"], body["status"], body["step"]) == (
        "o1",
        "RUNNING",
        "awaiting_approval",
    )


async def test_get_of_an_order_whose_step_is_retried_shows_why(api: Api) -> None:
    await place(api, "o1")
    since = datetime(2026, 12, 7, 16, 0, tzinfo=UTC)
    retrying = Retrying(reason="unavailable", error="state write failed", attempts=3, since=since)
    api.workflows.set("o1", "RUNNING", Step.RESERVING, retrying=retrying)

    body = (await api.client.get("/orders/o1")).json()

    assert body["step"] == "reserving_inventory"
    assert body["retrying"] == {
        "reason": "unavailable",
        "error": "state write failed",
        "attempts": 3,
        "since": "2026-12-07T16:00:00Z",
    }


async def test_get_of_an_order_going_well_shows_no_retrying(api: Api) -> None:
    await place(api, "o1")
    api.workflows.set("o1", "RUNNING", Step.RESERVING)

    assert (await api.client.get("/orders/o1")).json()["retrying"] is None


async def test_get_of_a_completed_order_shows_its_result(api: Api) -> None:
    await place(api, "o1")
    api.workflows.set("o1", "COMPLETED", Step.DONE, {"processed": False, "reason": "rejected"})

    response = await api.client.get("/orders/o1")

    assert response.json()["result"] == {"processed": False, "reason": "rejected"}


async def test_get_of_an_unknown_order_is_404(api: Api) -> None:
    assert_error(await api.client.get("/orders/nope"), 404, "not_found")


async def test_get_with_an_impossible_order_id_is_422(api: Api) -> None:
    assert_error(await api.client.get("/orders/" + "a" * 65), 422, "invalid_input")


async def test_get_with_wait_long_polls_the_engine_before_answering(api: Api) -> None:
    await place(api, "o1")

    response = await api.client.get("/orders/o1", params={"wait": 5})

    assert response.status_code == 200
    assert api.workflows.waits == [("o1", 5)]


async def test_get_without_wait_does_not_block(api: Api) -> None:
    await place(api, "o1")

    await api.client.get("/orders/o1")

    assert api.workflows.waits == []


@pytest.mark.parametrize("wait", ["-1", "31", "soon"])
async def test_get_with_an_out_of_range_wait_is_422(api: Api, wait: str) -> None:
    await place(api, "o1")

    assert_error(await api.client.get("/orders/o1", params={"wait": wait}), 422, "invalid_input")


# -- GET /orders -------------------------------------------------------------------------------


async def test_list_is_newest_first(api: Api) -> None:
    for order_id in ("o1", "o2", "o3"):
        await place(api, order_id, SMALL_ORDER)

    response = await api.client.get("/orders")

    assert response.status_code == 200
    body = response.json()
    assert [order["order_id"] for order in body["orders"]] == ["o3", "o2", "o1"]
    assert body["next_cursor"] is None


async def test_list_pages_with_next_cursor(api: Api) -> None:
    for order_id in ("o1", "o2", "o3"):
        await place(api, order_id, SMALL_ORDER)

    first = (await api.client.get("/orders", params={"limit": 2})).json()
    second = (
        await api.client.get("/orders", params={"limit": 2, "cursor": first["next_cursor"]})
    ).json()

    assert [order["order_id"] for order in first["orders"]] == ["o3", "o2"]
    assert [order["order_id"] for order in second["orders"]] == ["o1"]
    assert second["next_cursor"] is None


async def test_list_filters_by_status(api: Api) -> None:
    for order_id in ("o1", "o2"):
        await place(api, order_id, SMALL_ORDER)
    api.workflows.set("o1", "COMPLETED", Step.DONE, {"processed": True, "reason": None})

    response = await api.client.get("/orders", params={"status": "COMPLETED"})

    assert [order["order_id"] for order in response.json()["orders"]] == ["o1"]


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"status": "DONE"}, id="unknown-status"),
        pytest.param({"limit": 0}, id="limit-zero"),
        pytest.param({"limit": 101}, id="limit-too-big"),
        pytest.param({"cursor": "abc"}, id="cursor-not-a-number"),
    ],
)
async def test_list_with_bad_query_parameters_is_422(api: Api, params: dict[str, Any]) -> None:
    assert_error(await api.client.get("/orders", params=params), 422, "invalid_input")


# -- manager authentication ----------------------------------------------------------------------

BAD_CREDENTIALS = [
    pytest.param({}, id="no-token"),
    pytest.param({"Authorization": "Bearer wrong"}, id="wrong-token"),
    pytest.param({"Authorization": "Basic dDp0"}, id="basic-scheme"),
    pytest.param({"Authorization": "t"}, id="no-scheme"),
]


@pytest.mark.parametrize("headers", BAD_CREDENTIALS)
async def test_approve_without_the_manager_token_is_401_and_changes_nothing(
    api: Api, headers: dict[str, str]
) -> None:
    await place(api, "o1")
    before = api.snapshot_of_store()

    response = await api.client.post("/orders/o1/approve", headers=headers)

    assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"
    assert api.workflows.events == []
    assert api.snapshot_of_store() == before


@pytest.mark.parametrize("headers", BAD_CREDENTIALS)
async def test_cancel_without_the_manager_token_is_401_and_changes_nothing(
    api: Api, headers: dict[str, str]
) -> None:
    await place(api, "o1")
    before = api.snapshot_of_store()

    response = await api.client.post("/orders/o1/cancel", headers=headers)

    assert_error(response, 401, "unauthorized")
    assert api.workflows.events == []
    assert api.snapshot_of_store() == before


async def test_unauthenticated_approve_of_an_unknown_order_is_401_not_404(api: Api) -> None:
    assert_error(await api.client.post("/orders/nope/approve"), 401, "unauthorized")


# -- POST /orders/{id}/approve -------------------------------------------------------------------


async def test_approve_is_202_and_sends_the_decision(api: Api, manager: dict[str, str]) -> None:
    await place(api, "o1")

    response = await api.client.post(
        "/orders/o1/approve", headers=manager, json={"approved": True, "approver": "alice"}
    )

    assert response.status_code == 202
    assert response.json()["order_id"] == "o1"
    assert api.workflows.events == [
        ("o1", APPROVAL_EVENT, {"seq": 1, "approval": True, "approver": "alice"})
    ]


async def test_approve_without_a_body_approves(api: Api, manager: dict[str, str]) -> None:
    await place(api, "o1")

    response = await api.client.post("/orders/o1/approve", headers=manager)

    assert response.status_code == 202
    assert api.workflows.events == [
        ("o1", APPROVAL_EVENT, {"seq": 1, "approval": True, "approver": "manager"})
    ]


async def test_approve_with_approved_false_rejects(api: Api, manager: dict[str, str]) -> None:
    await place(api, "o1")

    response = await api.client.post(
        "/orders/o1/approve", headers=manager, json={"approved": False, "approver": "bob"}
    )

    assert response.status_code == 202
    assert api.workflows.events == [
        ("o1", APPROVAL_EVENT, {"seq": 1, "approval": False, "approver": "bob"})
    ]


async def test_approve_of_an_unknown_order_is_404(api: Api, manager: dict[str, str]) -> None:
    assert_error(await api.client.post("/orders/nope/approve", headers=manager), 404, "not_found")


async def test_approve_of_an_order_below_the_threshold_is_409(
    api: Api, manager: dict[str, str]
) -> None:
    await place(api, "o1", SMALL_ORDER)

    response = await api.client.post("/orders/o1/approve", headers=manager)

    assert_error(response, 409, "conflict")
    assert api.workflows.events == []


async def test_second_approval_is_409(api: Api, manager: dict[str, str]) -> None:
    await place(api, "o1")
    await api.client.post("/orders/o1/approve", headers=manager)

    response = await api.client.post(
        "/orders/o1/approve", headers=manager, json={"approved": False}
    )

    assert_error(response, 409, "decision_already_made")
    assert len(api.workflows.events) == 1


async def test_approve_of_a_finished_order_is_409(api: Api, manager: dict[str, str]) -> None:
    await place(api, "o1")
    api.workflows.set(
        "o1", "COMPLETED", Step.DONE, {"processed": False, "reason": "approval_timeout"}
    )

    assert_error(await api.client.post("/orders/o1/approve", headers=manager), 409, "conflict")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"approved": "yes"}, id="approved-string"),
        pytest.param({"approved": 1}, id="approved-int"),
        pytest.param({"approved": True, "note": "ok"}, id="extra-field"),
        pytest.param({"approver": ""}, id="empty-approver"),
    ],
)
async def test_invalid_approval_body_is_422_and_sends_nothing(
    api: Api, manager: dict[str, str], body: dict[str, Any]
) -> None:
    await place(api, "o1")

    response = await api.client.post("/orders/o1/approve", headers=manager, json=body)

    assert_error(response, 422, "invalid_input")
    assert api.workflows.events == []


async def test_approve_the_engine_cannot_take_now_is_still_202(
    api: Api, manager: dict[str, str]
) -> None:
    await place(api, "o1")
    api.workflows.unavailable = True

    response = await api.client.post("/orders/o1/approve", headers=manager)

    assert response.status_code == 202
    assert api.workflows.events == []


async def test_approve_with_the_state_store_down_is_503(api: Api, manager: dict[str, str]) -> None:
    await place(api, "o1")
    api.store.fail_next_saves = 1

    response = await api.client.post("/orders/o1/approve", headers=manager)

    assert_error(response, 503, "unavailable")
    assert api.workflows.events == []


# -- POST /orders/{id}/cancel --------------------------------------------------------------------


async def test_cancel_is_202_and_sends_the_cancel_event(api: Api, manager: dict[str, str]) -> None:
    await place(api, "o1")

    response = await api.client.post("/orders/o1/cancel", headers=manager)

    assert response.status_code == 202
    assert api.workflows.events == [("o1", CANCEL_EVENT, {"seq": 1})]


async def test_cancel_of_an_unknown_order_is_404(api: Api, manager: dict[str, str]) -> None:
    assert_error(await api.client.post("/orders/nope/cancel", headers=manager), 404, "not_found")


async def test_cancel_past_payment_is_409(api: Api, manager: dict[str, str]) -> None:
    await place(api, "o1")
    api.workflows.set("o1", "RUNNING", Step.PROCESSING_PAYMENT)

    response = await api.client.post("/orders/o1/cancel", headers=manager)

    assert_error(response, 409, "conflict")
    assert api.workflows.events == []


async def test_cancel_of_a_finished_order_is_409(api: Api, manager: dict[str, str]) -> None:
    await place(api, "o1")
    api.workflows.set("o1", "COMPLETED", Step.DONE, {"processed": True, "reason": None})

    assert_error(await api.client.post("/orders/o1/cancel", headers=manager), 409, "conflict")


# -- anything else -------------------------------------------------------------------------------


async def test_unknown_route_is_404_with_the_error_shape(api: Api) -> None:
    assert_error(await api.client.get("/nowhere"), 404, "not_found")


async def test_wrong_method_is_405_with_the_error_shape(api: Api) -> None:
    assert_error(await api.client.delete("/orders/o1"), 405, "method_not_allowed")


async def test_405_names_every_method_the_path_allows(api: Api) -> None:
    response = await api.client.put("/orders", json=SMALL_ORDER)

    assert_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET, POST"
