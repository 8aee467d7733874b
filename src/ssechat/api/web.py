"""Serves the built web UI (``web/dist``) at ``/``, with index.html for client-side routes.

It must never shadow ``/api``: an unknown API path stays a JSON 404.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

__all__ = ["CONTENT_SECURITY_POLICY", "default_web_dir", "mount_web"]

NOT_BUILT = """<!doctype html><meta charset="utf-8"><title>ssechat</title>
<p>The ssechat API is running, but the web UI has not been built.
Run <code>make run</code> from the source checkout (it builds <code>web/dist</code>),
or point <code>SSECHAT_WEB_DIR</code> at a built UI.</p>"""


def default_web_dir() -> Path:
    return Path(__file__).resolve().parents[3] / "web" / "dist"


# The policy the production build also puts in index.html's <meta> (web/vite.config.ts; a test
# checks that the two agree). Sent as a header on every HTML answer, so that a development build,
# or any SSECHAT_WEB_DIR, is covered too; the header can also say frame-ancestors, which a
# <meta> cannot.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "style-src-attr 'unsafe-inline'",
        "img-src 'self' data: blob: https:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "media-src 'none'",
        "object-src 'none'",
        "frame-src 'none'",
        "worker-src 'none'",
        "manifest-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
    ]
)
HTML_CSP = CONTENT_SECURITY_POLICY + "; frame-ancestors 'none'"

# These hold for every file served.
SECURITY_HEADERS = {
    "Content-Security-Policy": "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class _SinglePageApp(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        try:
            response = await super().get_response(path, scope)
        except HTTPException as exc:
            if exc.status_code != 404 or path == "api" or path.startswith("api/"):
                raise
            response = await super().get_response("index.html", scope)
        response.headers.update(SECURITY_HEADERS)
        if response.media_type == "text/html" or path.endswith(".html") or path in ("", "."):
            response.headers["Content-Security-Policy"] = HTML_CSP
        return response


def mount_web(app: FastAPI, web_dir: str) -> None:
    directory = Path(web_dir) if web_dir else default_web_dir()
    if (directory / "index.html").is_file():
        app.mount("/", _SinglePageApp(directory=directory, html=True), name="web")
        return

    @app.get("/", include_in_schema=False)
    async def not_built() -> HTMLResponse:
        return HTMLResponse(
            NOT_BUILT, headers={**SECURITY_HEADERS, "Content-Security-Policy": HTML_CSP}
        )
