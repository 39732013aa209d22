"""The manager console: one HTML page and its script and style, shipped inside the package and
served by the app itself (no build step, nothing fetched from another host).

The page talks to the same API as every other client; the manager token lives in the tab's
sessionStorage and travels only as the bearer header (see assets/console.js). The page itself
is outside the assets folder, so it is served only by the route, with its headers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

HERE: Final = Path(__file__).parent
ASSETS: Final = HERE / "assets"
ASSETS_URL: Final = "/console/assets"

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
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    # The token is typed into this page: never let another site frame it or read where it was.
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    # A new release's page must not be served from a stale cache alongside new assets.
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


@router.get("/console", response_class=FileResponse)
async def console() -> FileResponse:
    """The manager console's page."""
    return FileResponse(HERE / "page.html", media_type="text/html", headers=_HEADERS)


def install(app: FastAPI) -> None:
    """The console's page and its assets (script, style, icon)."""
    app.include_router(router)
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="console-assets")
