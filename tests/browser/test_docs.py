"""/docs in real headless Chromium with every other host unreachable: the operation
list renders, "Authorize" sends the manager's bearer token, and no request leaves the service."""

from __future__ import annotations

from playwright.sync_api import Request

from tests.fixtures.api import MANAGER_TOKEN
from tests.fixtures.browser import Browser, docs_operations

# Generous for a shared 2-core machine; each wait returns as soon as its condition holds.
RENDER_MS = 30_000
ACTION_MS = 10_000


def test_swagger_ui_renders_offline_and_authorize_sends_the_bearer_token(
    app_url: str, browser: Browser
) -> None:
    page = browser.page
    page.goto(f"{app_url}/docs", timeout=RENDER_MS)
    operations = docs_operations(page, RENDER_MS)
    assert {
        "POST /orders",
        "GET /orders/{order_id}",
        "POST /orders/{order_id}/approve",
    } <= operations

    # Authorize: the manager's bearer scheme takes the manager token (the dialog also offers the
    # order routes' CustomerJWT scheme).
    page.click("button.btn.authorize", timeout=ACTION_MS)
    dialog = page.locator(".dialog-ux .modal-ux")
    dialog.wait_for(timeout=ACTION_MS)
    assert "CustomerJWT" in dialog.inner_text()
    manager = dialog.locator(".auth-container", has_text="HTTPBearer")
    manager.locator("input").fill(MANAGER_TOKEN)
    manager.locator("button.authorize").click(timeout=ACTION_MS)
    manager.locator("button.btn-done").click(timeout=ACTION_MS)

    # Try the manager endpoint from the page: the request carries the token.
    approve = page.locator("#operations-orders-approve_order_orders__order_id__approve_post")
    approve.locator(".opblock-summary").click(timeout=ACTION_MS)
    approve.locator("button.try-out__btn").click(timeout=ACTION_MS)
    approve.locator("tr[data-param-name='order_id'] input").fill("docs-probe")

    def is_approve(request: Request) -> bool:
        return request.method == "POST" and request.url.endswith("/orders/docs-probe/approve")

    with page.expect_request(is_approve, timeout=ACTION_MS) as sent:
        approve.locator("button.execute").click(timeout=ACTION_MS)
    assert sent.value.headers.get("authorization") == f"Bearer {MANAGER_TOKEN}"
    status = approve.locator(".live-responses-table tr.response .response-col_status").first
    status.wait_for(timeout=ACTION_MS)
    assert status.inner_text().strip() == "404"  # authorized; the order is unknown

    path = browser.screenshot("docs.png")
    assert path.stat().st_size > 0
    assert browser.foreign == [], "the page asked another host"
    assert any(url.endswith("/swagger-ui-bundle.js") for url in browser.requests)
