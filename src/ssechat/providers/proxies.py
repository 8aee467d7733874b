"""Which HTTP proxy, if any, a request to the upstream goes through: read from the environment.

The variables are the ones curl, httpx, aiohttp and Python's ``urllib`` read: ``HTTPS_PROXY`` for
``https`` upstreams, ``HTTP_PROXY`` for ``http`` ones, ``ALL_PROXY`` for both, lower-case names
first (``urllib.request.getproxies_environment`` reads them), and ``NO_PROXY`` for the hosts
reached directly: host names, domain suffixes (``example.com`` and ``.example.com`` both cover
``api.example.com``), ``host:port``, IP addresses, CIDR ranges (``10.0.0.0/8``) or ``*``, as curl
reads it. They are read once, when the provider is made.

A proxy is an ``http://[user:password@]host[:port]`` URL (no scheme means ``http``): the client
speaks plain HTTP to it, and for an ``https`` upstream opens a ``CONNECT`` tunnel through which
TLS runs end to end. Other schemes (``https://``, ``socks5://``) are refused with a clear message.
This module does no IO and must never put a proxy's password in a message.
"""

from __future__ import annotations

import base64
import ipaddress
import urllib.request
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

from ssechat.providers.http1 import Proxy

__all__ = ["UnsupportedProxy", "bypassed", "parse_proxy", "proxy_for"]


class UnsupportedProxy(ValueError):
    """The environment names a proxy this client cannot use; the message says which and why."""


def proxy_for(
    scheme: str, host: str, port: int, environ_proxies: Mapping[str, str] | None = None
) -> Proxy | None:
    """The proxy that requests to ``scheme://host:port`` go through, or None for a direct
    connection. ``environ_proxies`` has ``urllib.request.getproxies_environment()``'s shape
    (``{"https": url, "no": "…"}``), read from the environment when None.
    """
    proxies = dict(
        urllib.request.getproxies_environment() if environ_proxies is None else environ_proxies
    )
    url = proxies.get(scheme) or proxies.get("all")
    if not url:
        return None
    if bypassed(host, port, proxies.get("no", "")):
        return None
    return parse_proxy(url, f"{scheme.upper()}_PROXY")


def bypassed(host: str, port: int, no_proxy: str) -> bool:
    """Whether ``NO_PROXY``'s value ``no_proxy`` sends ``host:port`` around the proxy."""
    host = host.lower().strip("[]").rstrip(".")
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for raw in no_proxy.replace(" ", ",").split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        name, entry_port = _split_port(entry)
        if entry_port is not None and entry_port != port:
            continue
        if address is not None:
            try:
                if address in ipaddress.ip_network(name, strict=False):
                    return True
            except ValueError:
                pass
            continue
        name = name.removeprefix("*").lstrip(".").rstrip(".")
        if name and (host == name or host.endswith(f".{name}")):
            return True
    return False


def _split_port(entry: str) -> tuple[str, int | None]:
    if entry.startswith("["):  # [v6]:port or [v6]
        name, _, rest = entry[1:].partition("]")
        port = rest.removeprefix(":")
        return name, int(port) if port.isdigit() else None
    if entry.count(":") == 1:
        name, _, port = entry.partition(":")
        return name, int(port) if port.isdigit() else None
    return entry, None  # a name, an IPv4 address or range, or a bare IPv6 address


def parse_proxy(url: str, variable: str) -> Proxy:
    """``http://[user:password@]host[:port]`` as a ``Proxy``; ``UnsupportedProxy`` otherwise."""
    if "://" not in url:
        url = f"http://{url}"
    try:
        parts = urlsplit(url)
        port = parts.port or 80
        host = parts.hostname
    except ValueError:
        raise UnsupportedProxy(f"the proxy in {variable} is not a valid URL") from None
    if parts.scheme.lower() != "http":
        raise UnsupportedProxy(
            f"the proxy in {variable} uses {parts.scheme}://; ssechat speaks to proxies over"
            " http:// (https upstreams go through a CONNECT tunnel, encrypted end to end)"
        )
    if not host:
        raise UnsupportedProxy(f"the proxy in {variable} has no host")
    authorization = None
    if parts.username is not None:
        userpass = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        authorization = f"Basic {base64.b64encode(userpass).decode('ascii')}"
    return Proxy(host=host, port=port, authorization=authorization)
