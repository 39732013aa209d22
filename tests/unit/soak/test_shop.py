"""The soak's client repeats what failed, as the answer allows, and counts each failure by kind."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from soak.shop import Shop, Unanswered


def shop_answering(answers: list[Callable[[httpx.Request], httpx.Response]]) -> Shop:
    """A Shop whose requests get `answers` in turn (the last one from then on)."""
    calls = iter(answers)
    last = answers[-1]

    def handler(request: httpx.Request) -> httpx.Response:
        return next(calls, last)(request)

    shop = Shop("http://shop", "token")
    shop.api = httpx.AsyncClient(base_url="http://shop", transport=httpx.MockTransport(handler))
    return shop


def unavailable(request: httpx.Request) -> httpx.Response:
    body = {"error": "unavailable", "detail": "...", "may_have_happened": True,
            "retry": "same_order_id", "order_id": "o1"}  # fmt: skip
    return httpx.Response(503, json=body)


def refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def accepted(request: httpx.Request) -> httpx.Response:
    return httpx.Response(202, json={"order_id": "o1"})


async def test_a_create_is_repeated_through_503s_and_refused_connections() -> None:
    shop = shop_answering([unavailable, refused, unavailable, accepted])
    await shop.create("o1", "paperclip", 1, deadline=time.monotonic() + 10)
    assert shop.failures == {
        "POST /orders: 503 unavailable": 2,
        "POST /orders: no answer (ConnectError)": 1,
    }


async def test_a_request_still_failing_at_its_deadline_is_unanswered() -> None:
    shop = shop_answering([unavailable])
    with pytest.raises(Unanswered):
        await shop.create("o1", "paperclip", 1, deadline=time.monotonic() + 0.5)
    assert shop.failures["POST /orders: 503 unavailable"] >= 2


async def test_a_refused_decision_is_an_answer_not_a_failure() -> None:
    shop = shop_answering(
        [lambda request: httpx.Response(409, json={"error": "decision_already_made"})]
    )
    answer = await shop.decide("o1", "reject", deadline=time.monotonic() + 5)
    assert answer == 409
    assert not shop.failures
