"""A minimal asyncio HTTP/1.1 client for one job: a request whose answer is read as it streams.

Written here, not taken from a library, because a measurement demanded it (``bench/PROFILE.md``,
"The upstream transport"): with aiohttp's client, used as its documentation advises, the whole
server spent 12-17 % more CPU per paced token, 50 % more per stream start, and held fewer paced
streams; httpx cost six times more per token than this client. It is shaped for that path: no
task, no timer and no cancel scope per read, flow control past ``high_water`` unread bytes,
bursts handed out in ~4 KiB pieces, keep-alive pools, and HTTP proxies (absolute-form requests
for ``http``, ``CONNECT`` tunnels for ``https``).

- ``client``: ``Client`` (the pool), ``Origin``, ``Proxy``, the CONNECT tunnel;
- ``connection``: one connection as an ``asyncio.Protocol`` around httptools, and ``Response``;
- ``errors``: the exception tree, every failure an ``HTTPError``.

Bodies: chunked, Content-Length, or until the connection closes; gzip and deflate are decoded
(asking for ``identity`` is the caller's business), any other content coding is an error. The
package never retries (the caller's policy does) and never logs.
"""

from __future__ import annotations

from ssechat.providers.http1.client import Client, Origin, Proxy
from ssechat.providers.http1.connection import Response
from ssechat.providers.http1.errors import (
    ClientClosed,
    ConnectError,
    ConnectionBroken,
    ConnectTimeout,
    DecodingError,
    HTTPError,
    ProtocolError,
    ReadTimeout,
    StaleConnection,
)

__all__ = [
    "Client",
    "ClientClosed",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionBroken",
    "DecodingError",
    "HTTPError",
    "Origin",
    "ProtocolError",
    "Proxy",
    "ReadTimeout",
    "Response",
    "StaleConnection",
]
