"""/docs loads every asset from the service itself, and the bearer scheme is declared."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

from app.config import Settings
from app.main import create_app
from tests.fixtures.api import Api

# Any absolute URL (scheme or protocol-relative) in a page would be a host other than the service.
_ABSOLUTE_URL = re.compile(r"""(?:https?:)?//[\w.-]+""", re.IGNORECASE)


class _AssetLinks(HTMLParser):
    """The URLs a browser fetches for a page: script src, link href, img src."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is not None and name in {"src", "href"}:
                self.urls.append(value)


def _asset_urls(html: str) -> list[str]:
    parser = _AssetLinks()
    parser.feed(html)
    return parser.urls


async def test_docs_page_references_only_the_service_and_its_assets_answer(api: Api) -> None:
    expected = {"swagger-ui-bundle.js": "javascript", "swagger-ui.css": "text/css"}
    response = await api.client.get("/docs")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert _ABSOLUTE_URL.findall(html) == [], "the page names another host"

    urls = _asset_urls(html)
    assert urls, html
    for url in urls:
        parts = urlsplit(url)
        assert not parts.scheme, url
        assert not parts.netloc, url
        assert url.startswith("/"), url  # same origin, from the root
    for name, content_type in expected.items():
        (url,) = [url for url in urls if url.endswith("/" + name)]
        asset = await api.client.get(url)
        assert asset.status_code == 200, url
        assert content_type in asset.headers["content-type"], (url, asset.headers)
        assert len(asset.content) > 10_000, url  # the real bundle, not a stub


async def test_swagger_ui_reads_the_schema_from_the_service(api: Api) -> None:
    html = (await api.client.get("/docs")).text
    assert "url: '/openapi.json'" in html
    # The validator badge would be an image from Swagger's public validator.
    assert '"validatorUrl": null' in html


async def test_the_bearer_scheme_is_declared_for_manager_endpoints(api: Api) -> None:
    schema = (await api.client.get("/openapi.json")).json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["HTTPBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "MANAGER_TOKEN (logged at start-up when unset)",
    }
    assert schemes["CustomerJWT"]["bearerFormat"] == "JWT"
    approve = schema["paths"]["/orders/{order_id}/approve"]["post"]
    assert approve["security"] == [{"HTTPBearer": []}]
    # The order routes name the customer scheme, optional (an empty alternative) with
    # CUSTOMER_AUTH=off, the default: anyone may call them, and the docs say so.
    assert schema["paths"]["/orders"]["post"]["security"] == [{"CustomerJWT": []}, {}]


def test_the_order_routes_require_the_customer_scheme_with_customer_auth_on() -> None:
    app = create_app(Settings(manager_token="t", customer_auth="jwt"))

    schema = app.openapi()

    assert schema["paths"]["/orders"]["post"]["security"] == [{"CustomerJWT": []}]
    assert schema["paths"]["/orders/{order_id}"]["get"]["security"] == [{"CustomerJWT": []}]


async def test_there_is_no_redoc_page(api: Api) -> None:
    # ReDoc's bundle loads its logo from Redocly's CDN: not served rather than half offline.
    assert (await api.client.get("/redoc")).status_code == 404
