"""The manager console in real headless Chromium, over the fakes (no Dapr): keyboard use, the
Content-Security-Policy as the browser enforces it, and the page's SSE parser. The flows on
the real stack (approve, reject, restock, errors) are in tests/integration/test_console.py."""

from __future__ import annotations

import json

from playwright.sync_api import Page, Route, expect

from tests.fixtures.api import MANAGER_TOKEN
from tests.fixtures.browser import Browser

RENDER_MS = 30_000

# What the page's parser must make of a stream, however the bytes are cut into chunks: pings
# skipped, fields gathered up to a blank line, multi-line data joined, the last id kept.
STREAM = (
    ": ping\r\n\r\n"
    'id: 3\r\nevent: step\r\ndata: {"step":"notifying"}\r\n\r\n'
    "event: finished\r\ndata: line one\r\ndata: line two\r\nid: 12\r\n\r\n"
)
PARSED = [["step", "3", '{"step":"notifying"}'], ["finished", "12", "line one\nline two"]]

# Feeds `text` to the page's serverSentEvents() in two chunks, cut at every position.
PARSE_AT_EVERY_CUT = """async (text) => {
  const encoder = new TextEncoder();
  const results = [];
  for (let cut = 0; cut <= text.length; cut++) {
    const body = new ReadableStream({
      start(controller) {
        controller.enqueue(encoder.encode(text.slice(0, cut)));
        controller.enqueue(encoder.encode(text.slice(cut)));
        controller.close();
      },
    });
    const events = [];
    for await (const event of serverSentEvents(body)) events.push([event.type, event.id, event.data]);
    results.push(JSON.stringify(events));
  }
  return results;
}"""


def signed_in(page: Page, app_url: str) -> None:
    """Opens the console and signs in with the keyboard alone."""
    page.goto(f"{app_url}/console", timeout=RENDER_MS)
    expect(page.locator("#token")).to_be_focused()
    page.keyboard.type(MANAGER_TOKEN)
    page.keyboard.press("Enter")
    expect(page.locator("#connection")).to_have_text("Live", timeout=RENDER_MS)


def focused(page: Page) -> str:
    return str(page.evaluate("document.activeElement.id || document.activeElement.textContent"))


def test_the_console_can_be_used_with_the_keyboard_alone(app_url: str, browser: Browser) -> None:
    page = browser.page
    signed_in(page, app_url)
    expect(page.locator("#awaiting-title")).to_be_focused()

    reached = []
    for _ in range(7):
        page.keyboard.press("Tab")
        reached.append(focused(page))
        if len(reached) == 1:  # the focus ring shows where the keyboard is
            outline = page.evaluate(
                "(s => [s.outlineStyle, s.outlineWidth])(getComputedStyle(document.activeElement))"
            )
            assert outline == ["solid", "3px"]

    assert reached == [
        "order-item",
        "order-quantity",
        "order-id",
        "Place order",
        "restock-item",
        "restock-quantity",
        "Restock",
    ]
    # Back to the quantity, a new value, Enter: the form is sent.
    for _ in range(5):
        page.keyboard.press("Shift+Tab")
    assert focused(page) == "order-quantity"
    page.keyboard.press("Control+A")
    page.keyboard.type("2")
    page.keyboard.press("Enter")
    expect(page.locator("#order-result")).to_contain_text("accepted", timeout=RENDER_MS)
    expect(page.locator("#orders tr")).to_have_count(1)
    assert browser.foreign == []


def test_the_content_security_policy_stops_other_hosts_and_inline_script(
    app_url: str, browser: Browser
) -> None:
    page = browser.page
    signed_in(page, app_url)
    page.evaluate(
        """() => {
          window.violations = [];
          document.addEventListener("securitypolicyviolation", (e) =>
            window.violations.push(e.effectiveDirective));
        }"""
    )

    # 192.0.2.1 is a documentation address: nothing answers there, and nothing is sent anyway.
    fetched = page.evaluate(
        """() => fetch("http://192.0.2.1/probe").then(() => "sent", () => "refused")"""
    )
    page.evaluate(
        """() => {
          const script = document.createElement("script");
          script.textContent = "window.injected = true";
          document.body.append(script);
        }"""
    )
    page.wait_for_function("window.violations.length >= 2", timeout=RENDER_MS)

    assert fetched == "refused"
    assert page.evaluate("window.injected") is None
    assert sorted(page.evaluate("window.violations")) == ["connect-src", "script-src-elem"]
    # Refused by the page's policy before any request was made: the browser never asked.
    assert browser.foreign == []


def test_the_pages_sse_parser_reads_events_however_the_stream_is_chunked(
    app_url: str, browser: Browser
) -> None:
    page = browser.page
    page.goto(f"{app_url}/console", timeout=RENDER_MS)

    for text in (STREAM, STREAM.replace("\r\n", "\n"), STREAM.replace("\r\n", "\r")):
        results = page.evaluate(PARSE_AT_EVERY_CUT, text)
        assert len(results) == len(text) + 1
        assert {json.dumps(PARSED, separators=(",", ":"))} == set(results), text


def refuse_once(page: Page, url: str, detail: str) -> list[str]:
    """The first request to `url` gets the API's 503 with `detail`; later ones go through to
    the app. Returns the URLs refused."""
    refused: list[str] = []

    def handle(route: Route) -> None:
        if refused:
            route.fallback()
            return
        refused.append(route.request.url)
        body = {"error": "unavailable", "detail": detail}
        route.fulfill(status=503, content_type="application/json", body=json.dumps(body))

    page.route(url, handle)
    return refused


def sign_in(page: Page, app_url: str) -> None:
    page.goto(f"{app_url}/console", timeout=RENDER_MS)
    page.get_by_label("Token (kept for this tab only)").fill(MANAGER_TOKEN)
    page.get_by_role("button", name="Open console").click()


def test_the_console_reconnects_after_the_stream_is_refused_and_says_why(
    app_url: str, browser: Browser
) -> None:
    page = browser.page
    refused = refuse_once(page, f"{app_url}/events", "the Dapr sidecar is not answering")

    sign_in(page, app_url)

    expect(page.get_by_role("alert")).to_have_text("the Dapr sidecar is not answering")
    expect(page.locator("#connection")).to_have_text("Live", timeout=RENDER_MS)
    expect(page.get_by_role("alert")).to_be_hidden()
    assert refused == [f"{app_url}/events"]
    assert browser.foreign == []


def test_a_feed_whose_lists_fail_to_load_is_closed_before_the_next_attempt(
    app_url: str, browser: Browser
) -> None:
    page = browser.page
    events = f"{app_url}/events"
    log: list[str] = []
    page.on("request", lambda r: log.append(f"start {r.url}") if r.url == events else None)
    for ended in ("requestfailed", "requestfinished"):
        page.on(ended, lambda r: log.append(f"closed {r.url}") if r.url == events else None)
    refused = refuse_once(page, f"{app_url}/orders?limit=*", "the state store is not answering")

    sign_in(page, app_url)

    expect(page.locator("#connection")).to_have_text("Live", timeout=RENDER_MS)
    assert len(refused) == 1
    assert log[:3] == [f"start {events}", f"closed {events}", f"start {events}"], log
