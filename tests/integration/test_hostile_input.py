"""Hostile input against the running service: generated requests from the OpenAPI document,
and bodies far over the limit."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from devstack.stack import Stack
from tests.fixtures.orders import assert_invariant
from tests.fixtures.stack import MANAGER_TOKEN
from tests.fixtures.waiting import eventually


async def _all_orders_finished(api: httpx.AsyncClient) -> bool:
    cursor: str | None = None
    while True:
        params = {"limit": "100", **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/orders", params=params)).json()
        if any(order["result"] is None for order in page["orders"]):
            return False
        cursor = page["next_cursor"]
        if cursor is None:
            return True


async def test_generated_requests_cause_no_server_error_and_match_the_schema(
    stack: Stack, api: httpx.AsyncClient
) -> None:
    schemathesis = Path(sys.executable).with_name("schemathesis")
    process = await asyncio.create_subprocess_exec(
        str(schemathesis), "run", f"{stack.app_url}/openapi.json",
        # Every check, except that any schema-valid body is accepted: the catalog is data, so
        # "item": "anvil" is schema-valid and rightly a 422 naming the known items.
        "--checks", "all", "--exclude-checks", "positive_data_acceptance",
        "--header", f"Authorization: Bearer {MANAGER_TOKEN}",
        # The event streams answer 200 with a stream that lasts as long as an order (or, for
        # GET /events, the connection): tests/*/test_events.py cover them.
        "--exclude-tag", "events",
        "--max-examples", "120", "--seed", "3", "--no-color",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), 600)
    report = output.decode()
    assert process.returncode == 0, report[-6000:]
    generated = re.search(r"(\d+) generated", report)
    assert generated is not None, report[-2000:]
    assert int(generated.group(1)) >= 1000, report[-2000:]
    tested = re.search(r"Tested: (\d+)", report)
    selected = re.search(r"Selected: (\d+)/(\d+)", report)
    assert tested is not None, report[-2000:]
    assert selected is not None, report[-2000:]
    assert int(tested.group(1)) == int(selected.group(1)), "every operation is exercised"
    assert int(selected.group(1)) == int(selected.group(2)) - 2, "all but the two event streams"
    # Whatever orders the fuzzer managed to place run to their end and balance the books.
    await eventually(
        lambda: _all_orders_finished(api), bool, deadline_seconds=120, what="all orders finished"
    )
    for item in ("paperclip", "cars", "computers"):
        assert assert_invariant(stack, item)["reserved"] == 0


async def test_declared_oversized_body_is_refused_with_413(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/orders",
        content=b"{" + b" " * 1_000_000 + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


async def test_streamed_oversized_body_is_refused_before_it_is_read_whole(
    api: httpx.AsyncClient,
) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(1000):  # up to 64 MB, far more than the server should ever take
            sent += 65536
            yield b" " * 65536

    try:
        response = await api.post(
            "/orders", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 413
    except (httpx.RemoteProtocolError, httpx.WriteError):
        pass  # the server closed the connection after answering 413 mid-stream
    assert sent < 64 * 1024 * 1024, "the server read the whole 64 MB body"
