"""Where the upstream's requests go, and their rendered heads: the base URL, made concrete once.

``Endpoint.parse`` turns ``OPENAI_BASE_URL`` into the ``http1.Origin`` to reach, the ``Proxy`` on
the way (from the environment, ``providers.proxies``) and the request heads of the two calls the
provider makes (``POST …/chat/completions``, ``GET …/models``), all but their content length, so
that a stream start renders nothing but that number. Through a proxy, an ``http`` upstream's
request target is in absolute form; an ``https`` one goes through a tunnel in origin form.
Credentials in the base URL are sent as Basic auth, in place of the key, as curl and httpx do.

A URL that cannot be used is not an exception here: ``Endpoint.parse`` returns the reason, which
the provider raises at the first request (a server that starts with a mistyped URL still serves
the demo model). This module does no IO and must never put a key or a password in a message.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

from ssechat.providers.http1 import Origin, Proxy
from ssechat.providers.proxies import UnsupportedProxy, proxy_for

__all__ = ["Endpoint", "without_userinfo"]


@dataclass(frozen=True, slots=True)
class Endpoint:
    origin: Origin
    proxy: Proxy | None
    chat_head: bytes  # "POST … HTTP/1.1" and its headers, to which "content-length" is added
    models_head: bytes  # the whole head of "GET …/models"

    @classmethod
    def parse(
        cls,
        base_url: str,
        headers: Mapping[str, str],
        models_headers: Mapping[str, str],
        environ_proxies: Mapping[str, str] | None = None,
    ) -> Endpoint | str:
        """The endpoint of ``base_url`` (no trailing slash), or why it cannot be used."""
        shown = without_userinfo(base_url)
        try:
            parts = urlsplit(base_url)
            scheme = parts.scheme.lower()
            host = parts.hostname
            port = parts.port
        except ValueError as exc:
            return f"the upstream URL {shown!r} is not usable ({exc})"
        if scheme not in ("http", "https"):
            return (
                f"the upstream URL {shown!r} is not usable (it must start with http:// or https://)"
            )
        if not host:
            return f"the upstream URL {shown!r} is not usable (it has no host)"
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        if not (path.isascii() and path.isprintable() and " " not in path):
            return f"the upstream URL {shown!r} is not usable (its path must be plain ASCII)"
        origin = Origin(scheme, host, port or (443 if scheme == "https" else 80))
        try:
            proxy = proxy_for(scheme, origin.host, origin.port, environ_proxies)
        except UnsupportedProxy as exc:
            return str(exc)
        netloc = parts.netloc.rpartition("@")[2]
        # What both requests carry besides their own headers: the host, keep-alive, credentials
        # of the URL (in place of the key), and the proxy's own credentials in absolute form.
        common = {"host": netloc}
        shared = {"connection": "keep-alive"}
        if parts.username is not None or parts.password is not None:
            userpass = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
            shared["authorization"] = f"Basic {base64.b64encode(userpass.encode()).decode('ascii')}"
        prefix = ""
        if proxy is not None and scheme == "http":
            prefix = f"http://{netloc}"  # absolute form: the proxy forwards it
            if proxy.authorization:
                shared["proxy-authorization"] = proxy.authorization
        fields = {**common, **headers, **shared}
        model_fields = {**common, **models_headers, **shared}
        base_path = parts.path.rstrip("/")
        query = f"?{parts.query}" if parts.query else ""
        chat = _head("POST", f"{prefix}{base_path}/chat/completions{query}", fields)
        models = _head("GET", f"{prefix}{base_path}/models{query}", model_fields) + b"\r\n"
        return cls(origin=origin, proxy=proxy, chat_head=chat, models_head=models)


def _head(method: str, target: str, fields: Mapping[str, str]) -> bytes:
    lines = "".join(f"{name}: {value}\r\n" for name, value in fields.items())
    return f"{method} {target} HTTP/1.1\r\n{lines}".encode("latin-1")


def without_userinfo(url: str) -> str:
    """``url`` without its ``user:password@``: what messages and logs may show."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
