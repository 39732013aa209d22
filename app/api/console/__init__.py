"""The manager console: one HTML page and its script, style and icon, shipped inside the package
and served by the app itself (no build step, nothing fetched from another host).

The page talks to the same API as every other client; the manager token lives in the tab's
sessionStorage and travels only as the bearer header (see assets/console.js).

The files are read once, at import, and answered from memory: a request for them does no file
I/O and no thread hop, so it cannot run into the request deadline on a busy machine (serving
them with StaticFiles, the first request took 60-140 ms here and now and then over the unit
tests' 0.5 s deadline under load).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Final

from fastapi import APIRouter, Header, Response

from app.errors import NotFound

HERE: Final = Path(__file__).parent
ASSETS: Final = HERE / "assets"

# Only the service itself: scripts, styles, images and API calls from 'self', no inline script
# or style (so an injected order field can never run), no framing, no <base>, no form posts
# elsewhere. The page's forms are handled by its script and never submit natively.
CONTENT_SECURITY_POLICY: Final = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
_HEADERS: Final = {
    "X-Content-Type-Options": "nosniff",
    # Revalidated on every load (a 304 while unchanged): a new release's page is never shown
    # with the old script.
    "Cache-Control": "no-cache",
}
_PAGE_HEADERS: Final = {
    **_HEADERS,
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    # The token is typed into this page: no other site may frame it or learn it was visited.
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
_MEDIA_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


@dataclass(frozen=True)
class _File:
    body: bytes
    media_type: str
    etag: str

    @classmethod
    def read(cls, path: Path) -> _File:
        body = path.read_bytes()
        return cls(body, _MEDIA_TYPES[path.suffix], f'"{hashlib.sha256(body).hexdigest()[:32]}"')

    def response(self, if_none_match: str | None, headers: dict[str, str]) -> Response:
        headers = {**headers, "ETag": self.etag}
        if if_none_match == self.etag:
            return Response(status_code=304, headers=headers)
        return Response(self.body, media_type=self.media_type, headers=headers)


# The page sits outside the assets folder: it is served only by its route, with its headers.
_PAGE: Final = _File.read(HERE / "page.html")
_ASSETS: Final = {path.name: _File.read(path) for path in ASSETS.iterdir() if path.is_file()}

IfNoneMatch = Annotated[str | None, Header()]
router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("")
async def console(if_none_match: IfNoneMatch = None) -> Response:
    """The manager console's page."""
    return _PAGE.response(if_none_match, _PAGE_HEADERS)


@router.get("/assets/{name}")
async def console_asset(name: str, if_none_match: IfNoneMatch = None) -> Response:
    """The console's script, style or icon."""
    asset = _ASSETS.get(name)
    if asset is None:
        raise NotFound(f"no console asset named {name!r}")
    return asset.response(if_none_match, _HEADERS)
