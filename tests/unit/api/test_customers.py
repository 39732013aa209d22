"""CUSTOMER_AUTH=jwt over the in-process app: which tokens are refused (and change nothing), and
that every order route shows a customer their own orders only."""

from __future__ import annotations

import asyncio
import http.server
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from app.services.state_store import Entry
from tests.fixtures.api import (
    MANAGER_TOKEN,
    REQUEST_TIMEOUT_SECONDS,
    Api,
    assert_error,
    running_api,
)
from tests.fixtures.customers import (
    AUDIENCE,
    ISSUER,
    TokenIssuer,
    bearer,
    other_key,
    unsigned_token,
)
from tests.fixtures.fakes import InMemoryStateStore
from tests.fixtures.manager import manager_headers

BIG_ORDER = {"item": "cars", "quantity": 4}  # 60,000: waits for a manager
SMALL_ORDER = {"item": "paperclip", "quantity": 1}


@pytest.fixture
def issuer(tmp_path: Path) -> TokenIssuer:
    return TokenIssuer(tmp_path / "jwks.json")


@pytest.fixture
async def api(store: InMemoryStateStore, issuer: TokenIssuer) -> AsyncIterator[Api]:
    async with running_api(store, REQUEST_TIMEOUT_SECONDS, **issuer.settings()) as running:
        yield running


async def place(api: Api, headers: dict[str, str], order_id: str, body: dict[str, object]) -> str:
    response = await api.client.post(
        "/orders", headers=headers, json={**body, "order_id": order_id}
    )
    assert response.status_code == 202, response.text
    return order_id


def _refused_tokens() -> dict[str, object]:
    now = int(time.time())
    return {
        "expired": {"exp": now - 3600, "iat": now - 7200},
        "wrong audience": {"aud": "another-service"},
        "wrong issuer": {"iss": "https://id.elsewhere.test"},
        "wrong signature": "signed_by_other_key",
        "unknown kid": "unknown_kid",
        "alg none": "alg_none",
        "missing sub": "no_sub",
        "no exp": {"exp": None},
        "not a jwt": "garbage",
    }


REFUSED = _refused_tokens()


def refused_token(issuer: TokenIssuer, case: str) -> str:
    spec = REFUSED[case]
    if spec == "signed_by_other_key":
        return issuer.token("alice", signed_by=other_key())
    if spec == "unknown_kid":
        return issuer.token("alice", kid="key-unknown")
    if spec == "alg_none":
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": now + 600}
        return unsigned_token(claims)
    if spec == "no_sub":
        return issuer.token(None)
    if spec == "garbage":
        return "not.a.token"
    assert isinstance(spec, dict)
    return issuer.token("alice", **spec)


# -- tokens refused -------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(REFUSED))
async def test_a_refused_token_is_401_on_create_and_changes_nothing(
    api: Api, issuer: TokenIssuer, case: str
) -> None:
    before = api.snapshot_of_store()

    response = await api.client.post(
        "/orders",
        headers=bearer(refused_token(issuer, case)),
        json={**SMALL_ORDER, "order_id": "forged"},
    )

    assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"
    assert api.snapshot_of_store() == before
    assert api.workflows.scheduled == []


@pytest.mark.parametrize("case", sorted(REFUSED))
async def test_a_refused_token_cannot_cancel(api: Api, issuer: TokenIssuer, case: str) -> None:
    await place(api, issuer.headers("alice"), "o1", BIG_ORDER)
    before = api.snapshot_of_store()

    response = await api.client.post(
        "/orders/o1/cancel", headers=bearer(refused_token(issuer, case))
    )

    assert_error(response, 401, "unauthorized")
    assert api.snapshot_of_store() == before
    assert api.workflows.events == []


async def test_an_expired_token_names_why(api: Api, issuer: TokenIssuer) -> None:
    response = await api.client.get("/orders", headers=bearer(refused_token(issuer, "expired")))
    assert "expired" in assert_error(response, 401, "unauthorized")


async def test_creating_without_a_token_is_401_with_a_bearer_challenge(api: Api) -> None:
    before = api.snapshot_of_store()
    response = await api.client.post("/orders", json=SMALL_ORDER)
    assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"
    assert api.snapshot_of_store() == before


@pytest.mark.parametrize(
    "path", ["/orders", "/orders/o1", "/orders/o1/history", "/orders/o1/events"]
)
async def test_reading_without_a_token_is_401(api: Api, path: str) -> None:
    assert_error(await api.client.get(path), 401, "unauthorized")


async def test_a_token_whose_subject_is_not_a_name_is_422(api: Api, issuer: TokenIssuer) -> None:
    before = api.snapshot_of_store()
    response = await api.client.post(
        "/orders", headers=issuer.headers("alice\nINFO forged line"), json=SMALL_ORDER
    )
    assert "printable" in assert_error(response, 422, "invalid_input")
    assert api.snapshot_of_store() == before


# -- orders belong to their customer --------------------------------------------------------


async def test_a_customers_order_is_unknown_to_another_customer_on_every_read(
    api: Api, issuer: TokenIssuer
) -> None:
    await place(api, issuer.headers("alice"), "alices", BIG_ORDER)
    bob = issuer.headers("bob")
    unknown = await api.client.get("/orders/never-placed", headers=bob)

    for path in ["/orders/alices", "/orders/alices/history", "/orders/alices/events"]:
        response = await api.client.get(path, headers=bob)
        # The very answer of an id never used: nothing tells bob that alice's exists.
        assert assert_error(response, 404, "not_found") == assert_error(unknown, 404).replace(
            "never-placed", "alices"
        )


async def test_another_customers_long_poll_is_404_at_once(api: Api, issuer: TokenIssuer) -> None:
    await place(api, issuer.headers("alice"), "alices", BIG_ORDER)

    started = time.monotonic()
    response = await api.client.get("/orders/alices?wait=5", headers=issuer.headers("bob"))

    assert_error(response, 404, "not_found")
    assert time.monotonic() - started < 2


async def test_a_customer_cannot_cancel_another_customers_order(
    api: Api, issuer: TokenIssuer
) -> None:
    await place(api, issuer.headers("alice"), "alices", BIG_ORDER)
    before = api.snapshot_of_store()

    response = await api.client.post("/orders/alices/cancel", headers=issuer.headers("bob"))

    assert_error(response, 404, "not_found")
    assert api.snapshot_of_store() == before
    assert api.workflows.events == []


async def test_a_customer_cancels_their_own_order(api: Api, issuer: TokenIssuer) -> None:
    alice = issuer.headers("alice")
    await place(api, alice, "alices", BIG_ORDER)

    response = await api.client.post("/orders/alices/cancel", headers=alice)

    assert response.status_code == 202, response.text
    assert response.json()["decision"] == "cancelled"
    assert response.json()["decided_by"] is None  # even their own name: customers see none


async def alice_and_bob_order(api: Api, issuer: TokenIssuer, each: int) -> dict[str, str]:
    """alice-0, bob-0, alice-1, ... (`each` orders each, taking turns); alice's headers."""
    alice, bob = issuer.headers("alice"), issuer.headers("bob")
    for n in range(each):
        await place(api, alice, f"alice-{n}", SMALL_ORDER)
        await place(api, bob, f"bob-{n}", SMALL_ORDER)
    return alice


async def test_listing_shows_a_customer_their_own_orders_only(
    api: Api, issuer: TokenIssuer
) -> None:
    alice = await alice_and_bob_order(api, issuer, 3)

    listed = (await api.client.get("/orders", headers=alice)).json()

    assert [o["order_id"] for o in listed["orders"]] == ["alice-2", "alice-1", "alice-0"]
    assert listed["next_cursor"] is None


async def test_a_customers_listing_pages_through_their_own_orders(
    api: Api, issuer: TokenIssuer
) -> None:
    alice = await alice_and_bob_order(api, issuer, 5)

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await api.client.get("/orders", headers=alice, params=params)).json()
        seen += [o["order_id"] for o in page["orders"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == [f"alice-{n}" for n in range(4, -1, -1)]


async def test_a_customers_listing_reads_none_of_the_shops_index(
    api: Api, issuer: TokenIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = issuer.headers("alice"), issuer.headers("bob")
    for n in range(30):
        await place(api, bob, f"bob-{n}", SMALL_ORDER)
    await place(api, alice, "alice-0", SMALL_ORDER)
    read: list[str] = []
    get = api.store.get

    async def recording_get(key: str) -> Entry | None:
        read.append(key)
        return await get(key)

    monkeypatch.setattr(api.store, "get", recording_get)

    listed = (await api.client.get("/orders", headers=alice)).json()

    assert [o["order_id"] for o in listed["orders"]] == ["alice-0"]
    assert not [key for key in read if key.startswith("orders:") or "bob" in key]


@pytest.mark.parametrize("manager", ["jwt", "static"])
async def test_a_manager_sees_every_customers_orders(
    api: Api, issuer: TokenIssuer, manager: str
) -> None:
    await place(api, issuer.headers("alice"), "alices", SMALL_ORDER)
    await place(api, issuer.headers("bob"), "bobs", SMALL_ORDER)
    headers = (
        issuer.headers("mia", manager=True) if manager == "jwt" else manager_headers(MANAGER_TOKEN)
    )

    listed = (await api.client.get("/orders", headers=headers)).json()

    assert {o["order_id"] for o in listed["orders"]} == {"alices", "bobs"}
    for path in ["/orders/alices", "/orders/bobs/history"]:
        assert (await api.client.get(path, headers=headers)).status_code == 200


async def test_a_manager_jwt_approves_in_its_own_name(api: Api, issuer: TokenIssuer) -> None:
    await place(api, issuer.headers("alice"), "alices", BIG_ORDER)

    response = await api.client.post(
        "/orders/alices/approve", headers=issuer.headers("mia", manager=True)
    )

    assert response.status_code == 202, response.text
    assert response.json()["decided_by"] == "mia"


async def test_a_customer_token_on_a_manager_route_is_403(api: Api, issuer: TokenIssuer) -> None:
    alice = issuer.headers("alice")
    await place(api, alice, "alices", BIG_ORDER)
    before = api.snapshot_of_store()

    response = await api.client.post("/orders/alices/approve", headers=alice)

    assert_error(response, 403, "forbidden")
    assert api.snapshot_of_store() == before
    assert_error(await api.client.get("/events", headers=alice), 403, "forbidden")


async def test_a_customer_never_sees_who_decided(api: Api, issuer: TokenIssuer) -> None:
    alice = issuer.headers("alice")
    await place(api, alice, "alices", BIG_ORDER)
    approve = {"approved": True, "approver": "carol"}
    response = await api.client.post(
        "/orders/alices/approve", headers=manager_headers(MANAGER_TOKEN), json=approve
    )
    assert response.status_code == 202, response.text

    own = (await api.client.get("/orders/alices", headers=alice)).json()
    listed = (await api.client.get("/orders", headers=alice)).json()["orders"][0]
    history = (await api.client.get("/orders/alices/history", headers=alice)).json()
    managers = (await api.client.get("/orders/alices", headers=issuer.headers("m", True))).json()

    assert (own["decision"], own["decided_by"]) == ("approved", None)
    assert listed["decided_by"] is None
    assert "carol" not in str(history)
    assert managers["decided_by"] == "carol"


async def test_another_customers_order_id_is_taken_without_telling_what_it_holds(
    api: Api, issuer: TokenIssuer
) -> None:
    await place(api, issuer.headers("alice"), "shared-id", SMALL_ORDER)

    response = await api.client.post(
        "/orders", headers=issuer.headers("bob"), json={**SMALL_ORDER, "order_id": "shared-id"}
    )

    detail = assert_error(response, 409, "conflict")
    assert "paperclip" not in detail
    assert "alice" not in detail


# -- the JWKS from a URL (loopback only) ----------------------------------------------------


@pytest.fixture
def jwks_url(issuer: TokenIssuer) -> Iterator[str]:
    body = issuer.jwks_file.read_bytes()

    class Jwks(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Jwks)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    finally:
        server.shutdown()
        server.server_close()


async def test_keys_from_a_jwks_url_verify_tokens(
    store: InMemoryStateStore, issuer: TokenIssuer, jwks_url: str
) -> None:
    async with running_api(store, REQUEST_TIMEOUT_SECONDS, **issuer.settings(jwks_url)) as api:
        created = await api.client.post(
            "/orders", headers=issuer.headers("alice"), json=SMALL_ORDER
        )
        forged = await api.client.post(
            "/orders", headers=bearer(issuer.token("alice", kid="key-unknown")), json=SMALL_ORDER
        )
    assert created.status_code == 202, created.text
    assert_error(forged, 401, "unauthorized")


async def test_off_keeps_anonymous_ordering(store: InMemoryStateStore) -> None:
    async with running_api(store, REQUEST_TIMEOUT_SECONDS) as api:
        created = await api.client.post("/orders", json={**BIG_ORDER, "order_id": "anon"})
        read = await api.client.get("/orders/anon")
    assert created.status_code == 202, created.text
    assert read.status_code == 200


async def test_concurrent_creates_of_one_customer_are_each_listed_once(
    api: Api, issuer: TokenIssuer
) -> None:
    alice = issuer.headers("alice")
    await asyncio.gather(*(place(api, alice, f"a-{n}", SMALL_ORDER) for n in range(8)))
    listed = (await api.client.get("/orders", headers=alice)).json()["orders"]
    assert sorted(o["order_id"] for o in listed) == sorted(f"a-{n}" for n in range(8))


# -- names ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("approver", "why"),
    [
        ("alice\nINFO order x: approved by root", "printable"),
        ("tab\there", "printable"),
        ("a" * 65, "at most 64"),
        ("", "at least 1"),
    ],
)
async def test_an_approver_name_that_is_not_a_short_printable_name_is_422(
    store: InMemoryStateStore, approver: str, why: str
) -> None:
    async with running_api(store, REQUEST_TIMEOUT_SECONDS) as api:
        await api.client.post("/orders", json={**BIG_ORDER, "order_id": "o1"})
        before = api.snapshot_of_store()
        response = await api.client.post(
            "/orders/o1/approve",
            headers=manager_headers(MANAGER_TOKEN),
            json={"approved": True, "approver": approver},
        )
        detail = assert_error(response, 422, "invalid_input")
        assert detail.startswith("approver: "), detail
        assert why in detail, detail
        assert api.snapshot_of_store() == before


async def test_a_name_with_accents_and_spaces_is_a_name(store: InMemoryStateStore) -> None:
    async with running_api(store, REQUEST_TIMEOUT_SECONDS) as api:
        await api.client.post("/orders", json={**BIG_ORDER, "order_id": "o1"})
        response = await api.client.post(
            "/orders/o1/approve",
            headers=manager_headers(MANAGER_TOKEN),
            json={"approver": "Zoë O'Brien-Łukasz"},
        )
    assert response.status_code == 202, response.text


async def test_a_customers_repeated_create_is_listed_once(api: Api, issuer: TokenIssuer) -> None:
    alice = issuer.headers("alice")
    await place(api, alice, "same", SMALL_ORDER)
    again = await api.client.post(
        "/orders", headers=alice, json={**SMALL_ORDER, "order_id": "same"}
    )
    await place(api, alice, "next", SMALL_ORDER)

    listed = (await api.client.get("/orders", headers=alice)).json()["orders"]

    assert again.status_code == 200, again.text
    assert [o["order_id"] for o in listed] == ["next", "same"]
