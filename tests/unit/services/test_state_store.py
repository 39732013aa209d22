"""SidecarStateStore against stand-ins for daprd's state API on loopback: how each answer of
the sidecar becomes a value, an EtagMismatch or DependencyUnavailable. `daprd` answers what a
test scripts; `redis_api` keeps the data and answers as daprd over its Redis store does."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from app.errors import DependencyUnavailable, SidecarUnreachable
from app.services.state_store import Entry, EtagMismatch, SidecarStateStore, compare_and_swap
from tests.fixtures.fakes import RedisStateApi


@dataclass
class FakeDaprd:
    """Answers the next state call with `status` and `body`; records what it was sent."""

    status: int = 204
    body: str = ""
    etag: str | None = None
    received: list[tuple[str, str, dict[str, str], str]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(
            (request.method, request.path_qs, dict(request.headers), await request.text())
        )
        headers = {"ETag": self.etag} if self.etag else {}
        return web.Response(status=self.status, text=self.body, headers=headers)


@pytest.fixture
async def daprd() -> AsyncIterator[tuple[FakeDaprd, str]]:
    fake = FakeDaprd()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield fake, f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture
async def sidecar(daprd: tuple[FakeDaprd, str]) -> AsyncIterator[SidecarStateStore]:
    _, url = daprd
    store = SidecarStateStore(url, "statestore", api_token="secret-token")
    yield store
    await store.aclose()


async def save(store: SidecarStateStore, etag: str | None) -> None:
    await store.save("order:o1", {"order_id": "o1"}, etag)


async def test_a_read_returns_the_value_and_its_etag(
    daprd: tuple[FakeDaprd, str], sidecar: SidecarStateStore
) -> None:
    fake, _ = daprd
    fake.status, fake.body, fake.etag = 200, json.dumps({"quantity": 3}), "7"

    assert await sidecar.get("inventory:cars") == Entry({"quantity": 3}, "7")
    method, path, _, _ = fake.received[0]
    assert (method, path) == ("GET", "/v1.0/state/statestore/inventory:cars?consistency=strong")


async def test_a_missing_key_reads_as_none(
    daprd: tuple[FakeDaprd, str], sidecar: SidecarStateStore
) -> None:
    daprd[0].status = 204

    assert await sidecar.get("order:nobody") is None


async def test_every_call_carries_the_api_token(
    daprd: tuple[FakeDaprd, str], sidecar: SidecarStateStore
) -> None:
    fake, _ = daprd
    await sidecar.get("k")
    await save(sidecar, None)

    assert [headers.get("dapr-api-token") for _, _, headers, _ in fake.received] == [
        "secret-token",
        "secret-token",
    ]


async def test_a_save_sends_first_write_concurrency_and_the_etag(
    daprd: tuple[FakeDaprd, str], sidecar: SidecarStateStore
) -> None:
    fake, _ = daprd
    await save(sidecar, "41")

    sent: list[dict[str, Any]] = json.loads(fake.received[0][3])
    assert sent == [
        {
            "key": "order:o1",
            "value": {"order_id": "o1"},
            "options": {"concurrency": "first-write", "consistency": "strong"},
            "etag": "41",
        }
    ]


async def test_a_replace_of_a_version_since_written_over_is_an_etag_mismatch(
    sidecar_store: SidecarStateStore, redis_api: RedisStateApi
) -> None:
    await save(sidecar_store, None)
    await save(sidecar_store, "1")  # now at version 2

    with pytest.raises(EtagMismatch):
        await save(sidecar_store, "1")


async def test_a_replace_the_store_refuses_is_unavailable_though_daprd_calls_it_a_mismatch(
    sidecar_store: SidecarStateStore, redis_api: RedisStateApi
) -> None:
    # With an ETag, the Redis store reports every write error as an ETag mismatch (409): only
    # the version read back, still the one sent, shows that nobody else wrote.
    await save(sidecar_store, None)
    redis_api.read_only.add("order:")

    with pytest.raises(
        DependencyUnavailable, match=r"state write of order:o1 failed: 409 .*NOPERM"
    ):
        await save(sidecar_store, "1")


async def test_compare_and_swap_on_a_key_the_store_refuses_fails_at_once(
    sidecar_store: SidecarStateStore, redis_api: RedisStateApi
) -> None:
    await save(sidecar_store, None)
    redis_api.read_only.add("order:")

    with pytest.raises(DependencyUnavailable, match="NOPERM"):
        await compare_and_swap(sidecar_store, "order:o1", lambda doc: {**(doc or {}), "n": 1})

    assert redis_api.refused_writes == 1  # not a lost race to retry 100 times


async def test_a_create_of_a_key_that_exists_is_an_etag_mismatch(
    sidecar_store: SidecarStateStore, redis_api: RedisStateApi
) -> None:
    # The Redis store refuses a first-write create of an existing key with a 500, not a 409.
    await save(sidecar_store, None)

    with pytest.raises(EtagMismatch):
        await save(sidecar_store, None)


async def test_a_create_the_store_refuses_is_unavailable_though_it_reads_like_a_conflict(
    sidecar_store: SidecarStateStore, redis_api: RedisStateApi
) -> None:
    # Same 500, same "failed to set key": only reading the key back shows nothing is there.
    redis_api.read_only.add("order:")

    with pytest.raises(
        DependencyUnavailable, match=r"state write of order:o1 failed: 500 .*NOPERM"
    ):
        await save(sidecar_store, None)

    assert redis_api.value("order:o1") is None


async def test_a_failed_create_whose_read_back_fails_too_is_unavailable(
    daprd: tuple[FakeDaprd, str], sidecar: SidecarStateStore
) -> None:
    daprd[0].status = 500
    daprd[0].body = '{"errorCode":"ERR_STATE_SAVE","message":"failed to set key order:o1"}'

    with pytest.raises(DependencyUnavailable):
        await save(sidecar, None)


async def test_failed_to_set_key_on_a_replace_is_unavailable(
    daprd: tuple[FakeDaprd, str], sidecar: SidecarStateStore
) -> None:
    # With an ETag, a 500 is a real failure of the store, not a lost race.
    daprd[0].status = 500
    daprd[0].body = '{"errorCode":"ERR_STATE_SAVE","message":"failed to set key order:o1"}'

    with pytest.raises(DependencyUnavailable, match="state write of order:o1 failed: 500"):
        await save(sidecar, "41")


async def test_a_failed_read_is_unavailable_and_names_the_key(
    daprd: tuple[FakeDaprd, str], sidecar: SidecarStateStore
) -> None:
    daprd[0].status, daprd[0].body = 500, "redis: connection refused"

    with pytest.raises(DependencyUnavailable, match="state read of k failed: 500"):
        await sidecar.get("k")


async def test_an_unreachable_sidecar_is_this_replicas_own_fault() -> None:
    store = SidecarStateStore("http://127.0.0.1:9", "statestore", timeout=2.0)
    try:
        # Nothing listens: the sidecar is not running (another replica's may be).
        with pytest.raises(SidecarUnreachable, match="sidecar is not reachable"):
            await store.get("k")
    finally:
        await store.aclose()
