"""The manager console and /docs in real headless Chromium against the real stack (daprd,
placement, scheduler, Redis, the app): an order placed on the page waits, is approved or
rejected there and reaches its result live; a wrong token shows the API's own 401 message; no
request leaves the service.

Under tests/integration (the `integration` marker: it needs the Dapr build and a private
stack) and also marked `browser`, as everything that drives Chromium is. One stack and one
browser for the module. Screenshots are left in .artifacts/ (git-ignored).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import ConsoleMessage, Error, Page, ViewportSize, expect

from devstack.stack import Stack
from tests.fixtures.browser import Browser, chromium, docs_operations, screenshot
from tests.fixtures.manager import manager_headers
from tests.fixtures.orders import new_id
from tests.fixtures.stack import MANAGER_TOKEN, module_stack

pytestmark = pytest.mark.browser

# The default threshold (50,000): 4 cars at 15,000 need a manager. The approval timeout is long
# so that a slow machine still decides in time; each wait below ends as soon as its condition
# holds.
LARGE_ORDER = ("cars", 4)
APPROVAL_TIMEOUT_SECONDS = 300
LIVE_MS = 60_000
RENDER_MS = 30_000
PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1280, "height": 900}


console_stack = module_stack(
    "console-stack", app_env={"APPROVAL_TIMEOUT_SECONDS": str(APPROVAL_TIMEOUT_SECONDS)}
)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    with chromium(tmp_path_factory.mktemp("console-profile")) as running:
        yield running


@dataclass
class Tab:
    """One browser tab (its own sessionStorage) and what went wrong in it."""

    page: Page
    errors: list[str] = field(default_factory=list)

    def screenshot(self, name: str) -> Path:
        return screenshot(self.page, name)


@pytest.fixture
def tab(browser: Browser) -> Iterator[Tab]:
    page = browser.context.new_page()
    page.set_viewport_size(DESKTOP)
    opened = Tab(page)

    def console_error(message: ConsoleMessage) -> None:
        if message.type == "error":  # CSP violations and failed loads are reported here
            opened.errors.append(message.text)

    def page_error(error: Error) -> None:
        opened.errors.append(f"uncaught: {error}")

    page.on("console", console_error)
    page.on("pageerror", page_error)
    yield opened
    page.close()


@pytest.fixture(autouse=True)
def nothing_left_the_service(browser: Browser, console_stack: Stack) -> Iterator[None]:
    """After each test: no request of any page went to a host other than the service."""
    yield
    assert browser.foreign == [], "a page asked another host"
    service = urlsplit(console_stack.app_url).netloc
    elsewhere = [url for url in browser.requests if urlsplit(url).netloc not in {service, ""}]
    assert elsewhere == []


def open_console(tab: Tab, stack: Stack, token: str = MANAGER_TOKEN) -> Page:
    page = tab.page
    page.goto(f"{stack.app_url}/console", timeout=RENDER_MS)
    # Marks this document: if the page reloaded, the mark would be gone.
    page.evaluate("window.loadedOnce = true")
    page.get_by_label("Token (kept for this tab only)").fill(token)
    page.get_by_role("button", name="Open console").click()
    return page


def live_console(tab: Tab, stack: Stack) -> Page:
    """The console signed in with the manager token, its feed connected and lists loaded."""
    page = open_console(tab, stack)
    expect(page.locator("#connection")).to_have_text("Live", timeout=RENDER_MS)
    page.locator("#inventory tr[data-item='cars']").wait_for(timeout=RENDER_MS)
    return page


def stock(page: Page, item: str) -> tuple[int, int]:
    row = page.locator(f"#inventory tr[data-item='{item}']")
    return int(row.locator("td.available").inner_text()), int(
        row.locator("td.reserved").inner_text()
    )


def expect_stock(page: Page, item: str, available: int, reserved: int) -> None:
    """The page shows these figures for `item` (once the live updates have arrived)."""
    row = page.locator(f"#inventory tr[data-item='{item}']")
    expect(row.locator("td.available")).to_have_text(str(available), timeout=LIVE_MS)
    expect(row.locator("td.reserved")).to_have_text(str(reserved), timeout=LIVE_MS)


def place_order(page: Page, item: str, quantity: int, order_id: str) -> None:
    form = page.locator("#order-form")
    form.get_by_label("Item").select_option(item)
    form.get_by_label("Quantity").fill(str(quantity))
    form.get_by_label("Order id (optional)").fill(order_id)
    form.get_by_role("button", name="Place order").click()


def wait_for_step(stack: Stack, order_id: str, step: str) -> None:
    """Until the order is at `step`, within LIVE_MS. GET /orders/{id} rather than its event
    stream: a stream would leave the order watched, and the test is about one that is not."""
    deadline = time.monotonic() + LIVE_MS / 1000
    while (current := api_order(stack, order_id)["step"]) != step:
        assert time.monotonic() < deadline, f"{order_id} is at {current}, not {step}"
        time.sleep(0.2)


def api_order(stack: Stack, order_id: str) -> dict[str, object]:
    response = httpx.get(f"{stack.app_url}/orders/{order_id}", timeout=10)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_a_large_order_placed_in_the_console_is_approved_there_and_completes_live(
    console_stack: Stack, tab: Tab
) -> None:
    page = live_console(tab, console_stack)
    item, quantity = LARGE_ORDER
    available, reserved = stock(page, item)
    order_id = new_id("console-approve")

    place_order(page, item, quantity, order_id)

    # It shows up waiting, with its buttons, pushed by the manager feed: no reload.
    card = page.locator(f"#awaiting li[data-order-id='{order_id}']")
    card.wait_for(timeout=LIVE_MS)
    row = page.locator(f"#orders tr[data-order-id='{order_id}']")
    expect(row.locator("td.step")).to_have_text("awaiting_approval", timeout=LIVE_MS)
    expect_stock(page, item, available - quantity, reserved + quantity)  # reserved for it
    tab.screenshot("console-desktop.png")
    page.set_viewport_size(PHONE)
    tab.screenshot("console-phone.png")
    page.set_viewport_size(DESKTOP)

    # Keyboard: focus the button and press Enter, as a keyboard user would.
    approve = page.get_by_role("button", name=f"Approve {order_id}")
    approve.focus()
    page.keyboard.press("Enter")

    expect(row.locator("td.status")).to_have_text("COMPLETED", timeout=LIVE_MS)
    expect(row.locator("td.outcome")).to_have_text("processed", timeout=LIVE_MS)
    expect(card).to_have_count(0)
    # The stock went: fewer available, nothing left reserved by this order.
    expect_stock(page, item, available - quantity, reserved)
    assert page.evaluate("window.loadedOnce") is True, "the page reloaded"
    order = api_order(console_stack, order_id)
    assert (order["status"], order["decision"]) == ("COMPLETED", "approved")
    assert order["result"] == {"processed": True, "reason": None}
    assert tab.errors == []


def test_an_order_waiting_before_the_console_opened_is_rejected_there_and_ends_rejected(
    console_stack: Stack, tab: Tab
) -> None:
    # Placed through the API and waiting before the page connects: the console lists it from
    # GET /orders, and its decision is what makes the manager feed follow it to its end.
    item, quantity = LARGE_ORDER
    order_id = new_id("console-reject")
    placed = httpx.post(
        f"{console_stack.app_url}/orders",
        json={"item": item, "quantity": quantity, "order_id": order_id},
        timeout=10,
    )
    assert placed.status_code == 202, placed.text
    wait_for_step(console_stack, order_id, "awaiting_approval")
    page = live_console(tab, console_stack)
    available, reserved = stock(page, item)

    page.get_by_role("button", name=f"Reject {order_id}").click(timeout=LIVE_MS)

    row = page.locator(f"#orders tr[data-order-id='{order_id}']")
    expect(row.locator("td.outcome")).to_have_text("rejected", timeout=LIVE_MS)
    expect(row.locator("td.status")).to_have_text("COMPLETED", timeout=LIVE_MS)
    # The reservation is released.
    expect_stock(page, item, available + quantity, reserved - quantity)
    order = api_order(console_stack, order_id)
    assert order["decision"] == "rejected"
    assert order["result"] == {"processed": False, "reason": "rejected"}
    assert tab.errors == []


def test_restocking_in_the_console_adds_units(console_stack: Stack, tab: Tab) -> None:
    page = live_console(tab, console_stack)
    available, _ = stock(page, "computers")

    form = page.locator("#restock-form")
    form.get_by_label("Item").select_option("computers")
    form.get_by_label("Units to add").fill("7")
    form.get_by_role("button", name="Restock").click()

    cell = page.locator("#inventory tr[data-item='computers'] td.available")
    expect(cell).to_have_text(str(available + 7), timeout=LIVE_MS)
    assert tab.errors == []


def test_a_wrong_token_shows_the_apis_401_message(console_stack: Stack, tab: Tab) -> None:
    answer = httpx.get(
        f"{console_stack.app_url}/events", headers=manager_headers("wrong"), timeout=10
    )
    assert answer.status_code == 401
    detail = answer.json()["detail"]

    page = open_console(tab, console_stack, token="wrong")

    expect(page.get_by_role("alert")).to_have_text(detail, timeout=RENDER_MS)
    # Asked again, and the wrong token is not kept for the tab.
    expect(page.get_by_label("Token (kept for this tab only)")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0
    # The browser reports the refused stream itself; nothing else went wrong.
    assert [e for e in tab.errors if "401" not in e] == []


def test_an_api_error_is_shown_as_the_api_words_it(console_stack: Stack, tab: Tab) -> None:
    page = live_console(tab, console_stack)
    taken = new_id("console-taken")
    first = httpx.post(
        f"{console_stack.app_url}/orders",
        json={"item": "paperclip", "quantity": 1, "order_id": taken},
        timeout=10,
    )
    assert first.status_code == 202, first.text
    # The same order id with another body: the API refuses it with a 409 and says why.
    again = httpx.post(
        f"{console_stack.app_url}/orders",
        json={"item": "paperclip", "quantity": 2, "order_id": taken},
        timeout=10,
    )
    assert again.status_code == 409, again.text

    place_order(page, "paperclip", 2, taken)

    expect(page.get_by_role("alert")).to_have_text(again.json()["detail"], timeout=RENDER_MS)


def test_docs_render_their_operations_on_the_real_stack(console_stack: Stack, tab: Tab) -> None:
    page = tab.page
    page.goto(f"{console_stack.app_url}/docs", timeout=RENDER_MS)

    operations = docs_operations(page, RENDER_MS)

    assert {
        "POST /orders",
        "GET /orders",
        "GET /orders/{order_id}/events",
        "GET /events",
        "POST /orders/{order_id}/approve",
        "POST /inventory/restock",
    } <= operations
    assert not [operation for operation in operations if "/console" in operation]
    tab.screenshot("docs-stack.png")
    assert tab.errors == []
