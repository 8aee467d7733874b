"""The failures of a request made with ``ssechat.providers.http1``: one tree, all ``HTTPError``.

    HTTPError
    ├── ConnectError          no connection: refused, unreachable, unresolved, failed handshake,
    │                         a proxy that refused the tunnel
    ├── ConnectTimeout        connecting (name, proxy tunnel and TLS handshake included) too long
    ├── ReadTimeout           the server went silent for ``idle_timeout`` seconds
    ├── ConnectionBroken      the connection ended before the response did
    │   └── StaleConnection   a kept-alive connection the server had closed: it broke before any
    │                         byte of the answer, so the request was never processed
    ├── ProtocolError         not an HTTP/1.1 response this client can read
    │   └── DecodingError     an unknown content coding, or bytes that do not decode
    └── ClientClosed          the client was closed before or during the request

No message may carry a request header: an API key is one.
"""

from __future__ import annotations

__all__ = [
    "ClientClosed",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionBroken",
    "DecodingError",
    "HTTPError",
    "ProtocolError",
    "ReadTimeout",
    "StaleConnection",
]


class HTTPError(Exception):
    """Base of every failure of a request made with this module."""


class ConnectError(HTTPError):
    """No connection: refused, unreachable, a name that does not resolve, a failed handshake."""


class ConnectTimeout(HTTPError):
    """Connecting (resolving the name and the TLS handshake included) took too long."""


class ReadTimeout(HTTPError):
    """The server sent nothing for ``idle_timeout`` seconds while a response was awaited."""


class ConnectionBroken(HTTPError):
    """The connection ended, or broke, before the response did."""


class ProtocolError(HTTPError):
    """What the server sent is not an HTTP/1.1 response this client can read."""


class DecodingError(ProtocolError):
    """The body's content coding is unknown here, or its bytes do not decode."""


class ClientClosed(HTTPError):
    """The client was closed before, or while, the request was made."""


class StaleConnection(ConnectionBroken):
    """A connection taken from the pool broke before any byte of the answer arrived: the server
    closed it as the request left (the keep-alive race). The request was not processed, so the
    caller may send it again at once; the client itself never does (retries are the caller's)."""
