"""``RequestGuard``: refuses, before routing, what another site could make a browser send.

Two checks, as pure ASGI middleware (one pass over the headers, no request object):

- **Host allow-list** (``SSECHAT_ALLOWED_HOSTS``): a request whose ``Host`` names another host
  is answered 400. A page on ``evil.example`` that rebinds its DNS name to 127.0.0.1 reaches the
  server with ``Host: evil.example``, so this is what stops DNS rebinding.
- **Same origin for changes**: a request that changes anything or starts a generation (every
  method but GET, HEAD and OPTIONS, and ``GET /api/chat``) must come from the server's own
  origin: ``Origin`` must be it, or, when a browser sends no ``Origin``, ``Sec-Fetch-Site`` must
  be ``same-origin`` (or absent: not a browser). Otherwise 403, and the route never runs.
  Requests that carry ``Authorization: Bearer`` are exempt: a browser never adds that header by
  itself, and no CORS policy lets another site add it with the user's cookie.

The server's own origin is the scheme it was reached by (``https`` behind a trusted proxy that
says so: ``SSECHAT_TRUSTED_PROXIES``, applied before this by uvicorn's proxy-headers middleware)
and the ``Host`` it was asked for, which the first check has vetted. Sign-in and setup are
covered too, so another site cannot sign a browser into an account of its choosing.

With accounts off (``SSECHAT_AUTH=off``) it also refuses every request that reached the server on
an address that is not loopback, however the server was started.

This module must never read a body, look at a cookie's value, or answer anything but these
refusals.
"""

from __future__ import annotations

import ipaddress

from starlette.types import ASGIApp, Receive, Scope, Send

from ssechat.api.errors import error_response
from ssechat.config import Settings

__all__ = ["RequestGuard", "host_name"]

_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
_STARTS_GENERATION = frozenset({"/api/chat", "/api/chat/"})


def host_name(host: str) -> str:
    """The lowercased name of a ``Host`` value, without its port: ``[::1]:80`` -> ``[::1]``."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end > 0 else host
    name, _, _ = host.partition(":")
    return name.rstrip(".")


class RequestGuard:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        names = settings.allowed_host_names
        self.any_host = "*" in names
        self.hosts = names
        # Accounts off is only for a server on loopback; settings say where it should listen,
        # but a server started some other way (uvicorn --factory --host 0.0.0.0) may not.
        self.loopback_only = settings.auth == "off"
        self._loopback: dict[str, bool] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = origin = fetch_site = None
        bearer = False
        for name, value in scope["headers"]:
            if name == b"host":
                host = value
            elif name == b"origin":
                origin = value
            elif name == b"sec-fetch-site":
                fetch_site = value
            elif name == b"authorization":
                bearer = value[:7].lower() == b"bearer "
        host_text = host.decode("latin-1") if host is not None else ""
        if not host_text or (not self.any_host and host_name(host_text) not in self.hosts):
            response = error_response(
                400,
                "invalid_host",
                "this server does not answer to that host name; add it to SSECHAT_ALLOWED_HOSTS",
            )
            await response(scope, receive, send)
            return
        if self.loopback_only and not self._on_loopback(scope):
            response = error_response(
                403,
                "forbidden",
                "accounts are off (SSECHAT_AUTH=off): this server only answers on loopback",
            )
            await response(scope, receive, send)
            return
        method = scope["method"]
        if not bearer and (method not in _SAFE or scope["path"] in _STARTS_GENERATION):
            own = f"{scope.get('scheme', 'http')}://{host_text}".lower()
            if origin is not None:
                same = origin.decode("latin-1").strip().lower() == own
            else:
                same = fetch_site is None or fetch_site.lower() == b"same-origin"
            if not same:
                response = error_response(
                    403,
                    "forbidden",
                    "cross-site request refused: this must come from the ssechat page itself, "
                    "or carry an API key",
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _on_loopback(self, scope: Scope) -> bool:
        server = scope.get("server")
        address = str(server[0]) if server else ""
        known = self._loopback.get(address)
        if known is None:
            try:
                known = ipaddress.ip_address(address.strip("[]")).is_loopback
            except ValueError:
                # A listening socket's address is an IP; a name comes from an in-process client
                # (an ASGI test transport), which no network reaches.
                known = True
            self._loopback[address] = known
        return known
