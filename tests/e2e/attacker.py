"""Another site for the cross-site tests: a stdlib HTTP server on 127.0.0.2 serving fixed pages.

127.0.0.2 is a loopback address like 127.0.0.1, but to a browser it is another site (an IP
address is its own site), so a page served here is "another site" to ssechat at 127.0.0.1:
its requests carry ``Origin: http://127.0.0.2:…`` and ``Sec-Fetch-Site: cross-site``, and the
``SameSite=Lax`` session cookie is sent only with its top-level GET navigations.

This module must never contact ssechat itself: everything the attack does, the browser does.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

ATTACKER_HOST = "127.0.0.2"


class AttackerSite:
    """Serves ``pages`` (path -> HTML) on 127.0.0.2 until closed; 404 for anything else."""

    def __init__(self, pages: Mapping[str, str]) -> None:
        served = {path: html.encode() for path, html in pages.items()}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = served.get(self.path.split("?", 1)[0])
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body or b"not here")

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet: pytest shows what matters

        self._server = ThreadingHTTPServer((ATTACKER_HOST, 0), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://{ATTACKER_HOST}:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="attacker-site", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)

    def __enter__(self) -> AttackerSite:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
