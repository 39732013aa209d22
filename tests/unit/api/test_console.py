"""The manager console's route and assets, and that no page the service serves (the console,
/docs and what they load) points the browser at another host."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest

from app.api.console import CONTENT_SECURITY_POLICY
from tests.fixtures.api import Api, assert_error

# Attributes through which HTML makes the browser fetch or navigate.
_URL_ATTRIBUTES = {"src", "href", "action", "formaction", "poster", "data", "manifest"}
_CSS_URL = re.compile(r"""url\(\s*['"]?([^'")]+)|@import\s+['"]([^'"]+)""")
_ABSOLUTE_URL = re.compile(r"""(?:https?:)?//[A-Za-z0-9]""")
# Swagger UI's bundle is third-party code: its text names many sites (RFC links in error
# messages, the validator it is configured not to use, JSON Schema ids), so a text scan would
# only find false positives. What it requests is checked where it matters, in a real browser
# with every other host blocked (tests/browser/test_docs.py, tests/integration/test_console.py).
_THIRD_PARTY_SCRIPTS = {"/static-offline-docs/swagger-ui-bundle.js"}
# An XML namespace names, it does not fetch: the only absolute URL the console's icon holds.
_SVG_NAMESPACE = 'xmlns="http://www.w3.org/2000/svg"'


class _References(HTMLParser):
    """Every URL an HTML page refers to, and the text of its inline scripts and styles."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is None:
                continue
            if name in _URL_ATTRIBUTES:
                self.urls.append(value)
            elif name == "srcset":
                self.urls += [part.split()[0] for part in value.split(",") if part.strip()]
            elif name == "style":
                self.inline.append(value)
            elif name == "content" and "url=" in value.lower():  # <meta http-equiv="refresh">
                self.urls.append(value.lower().split("url=", 1)[1])
        self._in = tag if tag in {"script", "style"} else None

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in is not None:
            self.inline.append(data)


def _same_host(url: str) -> bool:
    parts = urlsplit(url.strip())
    return parts.scheme in {"", "data"} and not parts.netloc


async def _crawl(api: Api, start: str) -> dict[str, str]:
    """`start` and every same-host page, script, style and image it loads, by path; fails on
    any reference to another host."""
    seen: dict[str, str] = {}
    queue = [start]
    while queue:
        path = queue.pop()
        if path in seen:
            continue
        response = await api.client.get(path)
        assert response.status_code == 200, (path, response.text)
        kind = response.headers["content-type"].split(";")[0]
        text = response.text
        seen[path] = kind
        found: list[str] = []
        if kind == "text/html":
            page = _References()
            page.feed(text)
            found = page.urls
            for inline in page.inline:
                assert not _ABSOLUTE_URL.search(inline), (path, inline)
        elif kind == "text/css":
            found = [a or b for a, b in _CSS_URL.findall(text)]
        elif kind in {"text/javascript", "application/javascript"}:
            if path not in _THIRD_PARTY_SCRIPTS:
                assert not _ABSOLUTE_URL.search(text), (path, _ABSOLUTE_URL.search(text))
        elif kind == "image/svg+xml":
            assert not _ABSOLUTE_URL.search(text.replace(_SVG_NAMESPACE, "")), (path, text)
        for url in found:
            assert _same_host(url), f"{path} refers to another host: {url}"
            if not url.startswith("data:"):
                queue.append(urlsplit(urljoin(path, url)).path)
    return seen


async def test_the_console_page_is_html_with_a_self_only_content_security_policy(
    api: Api,
) -> None:
    response = await api.client.get("/console")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    directives = dict(d.split(" ", 1) for d in CONTENT_SECURITY_POLICY.split("; "))
    assert directives["default-src"] == "'none'"
    assert {directives[d] for d in ("script-src", "style-src", "connect-src")} == {"'self'"}
    assert response.headers["x-frame-options"] == "DENY"
    assert '<meta name="viewport"' in response.text


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/console/assets/console.js", "text/javascript"),
        ("/console/assets/console.css", "text/css"),
        ("/console/assets/icon.svg", "image/svg+xml"),
    ],
)
async def test_the_console_assets_are_served_with_their_content_types(
    api: Api, path: str, content_type: str
) -> None:
    response = await api.client.get(path)

    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == content_type


async def test_the_console_page_is_served_only_by_its_route_with_its_headers(api: Api) -> None:
    # The page sits outside the assets folder: no copy of it without the security headers.
    response = await api.client.get("/console/assets/page.html")

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


async def test_the_console_is_not_an_api_operation(api: Api) -> None:
    paths = (await api.client.get("/openapi.json")).json()["paths"]

    assert not [path for path in paths if path.startswith("/console")]


async def test_the_console_loads_only_its_own_assets(api: Api) -> None:
    loaded = await _crawl(api, "/console")

    assert loaded == {
        "/console": "text/html",
        "/console/assets/console.js": "text/javascript",
        "/console/assets/console.css": "text/css",
        "/console/assets/icon.svg": "image/svg+xml",
    }


async def test_the_docs_load_only_the_services_own_assets(api: Api) -> None:
    loaded = await _crawl(api, "/docs")

    assert set(loaded) == {
        "/docs",
        "/static-offline-docs/swagger-ui.css",
        "/static-offline-docs/swagger-ui-bundle.js",
        "/static-offline-docs/favicon.png",
    }
    # The spec the docs page loads sends "Try it out" to the service itself: no other server.
    spec = (await api.client.get("/openapi.json")).json()
    assert all(_same_host(server["url"]) for server in spec.get("servers", []))


async def test_a_reference_to_another_host_is_caught() -> None:
    # The scan itself can fail: the forms a foreign reference takes are all recognised.
    page = _References()
    page.feed(
        '<link href="https://cdn.example/x.css"><script src="//cdn.example/x.js"></script>'
        '<img srcset="/a.png 1x, http://cdn.example/b.png 2x"><div style="background: url(\'//x.example/a\')"></div>'
    )
    assert [url for url in page.urls if not _same_host(url)] == [
        "https://cdn.example/x.css",
        "//cdn.example/x.js",
        "http://cdn.example/b.png",
    ]
    assert _ABSOLUTE_URL.search(page.inline[0])
    assert [a or b for a, b in _CSS_URL.findall("@import 'https://f.example/a.css';")] == [
        "https://f.example/a.css"
    ]


async def test_the_console_files_are_one_metrics_series_each_route(api: Api) -> None:
    # Labelled by route template, never by file: the series stay as few as the routes.
    for path in ("/console", "/console/assets/console.js", "/console/assets/console.css"):
        assert (await api.client.get(path)).status_code == 200

    metrics = (await api.client.get("/metrics")).text

    assert 'route="/console"' in metrics
    assert 'route="/console/assets/{name}"' in metrics
    assert "console.js" not in metrics


@pytest.mark.parametrize("path", ["/console", "/console/assets/console.js"])
async def test_an_unchanged_console_file_is_not_sent_again(api: Api, path: str) -> None:
    first = await api.client.get(path)

    again = await api.client.get(path, headers={"If-None-Match": first.headers["etag"]})

    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == first.headers["etag"]
    assert first.headers["cache-control"] == "no-cache"


async def test_an_unknown_console_asset_is_a_json_404(api: Api) -> None:
    response = await api.client.get("/console/assets/nothing.js")

    assert assert_error(response, 404, "not_found") == "no console asset named 'nothing.js'"
