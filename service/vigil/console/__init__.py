"""The web console: static files (HTML, CSS, ES modules) served by ``vigil serve`` at ``/``.

No build step and nothing fetched from elsewhere at run time: the page loads only what is
in ``static/`` and talks only to this API (its Content-Security-Policy says so). See
docs/console.md.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).with_name("static")
"""The console's files (shipped as package data)."""

# Same-origin only: scripts, styles, images (MJPEG, snapshots), videos and the event feed.
# A page that tried to load anything from elsewhere would be refused by the browser.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; form-action 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


def mount_console(app: FastAPI) -> None:
    """Serve the console's page at ``/`` and its files under ``/console/``; API paths keep
    their JSON answers (the static files are not mounted over them)."""

    @app.get("/", include_in_schema=False)
    async def console_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers=_HEADERS)

    @app.get("/console", include_in_schema=False)
    async def console_redirect() -> RedirectResponse:
        return RedirectResponse("/")

    app.mount("/console", StaticFiles(directory=STATIC_DIR), name="console")
