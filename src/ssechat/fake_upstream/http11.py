"""The minimal HTTP/1.1 the fake upstream speaks, and its socket-level tricks.

Request line, headers and a Content-Length body in; status line, headers, chunked or
Content-Length bodies out; plus what only a raw socket allows: a write cut into pieces that each
reach the peer on their own, and a reset (RST) instead of a clean close. Nothing here knows about
chat completions, and nothing here may be used to serve real traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ssechat.fake_upstream import wire

__all__ = [
    "BadRequest",
    "Request",
    "read_request",
    "reset",
    "send_json",
    "set_nodelay",
    "write_frame",
]

_BODY_LIMIT = 32 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    keep_alive: bool


class BadRequest(Exception):
    """The request cannot be parsed; the answer is a 400 and a closed connection."""


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """The next request on the connection, or None at a clean EOF between requests."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise
    except asyncio.LimitOverrunError:
        raise BadRequest("request head too large") from None
    lines = head[:-4].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest(f"malformed request line {lines[0][:100]!r}")
    method, target, version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon:
            raise BadRequest(f"malformed header line {line[:100]!r}")
        name, value = name.strip().lower(), value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    if "transfer-encoding" in headers:
        raise BadRequest("request bodies must have a Content-Length")
    length = headers.get("content-length", "0")
    if not length.isdigit() or int(length) > _BODY_LIMIT:
        raise BadRequest("bad or too large Content-Length")
    body = await reader.readexactly(int(length)) if length != "0" else b""
    connection = headers.get("connection", "").lower()
    keep_alive = "close" not in connection and (version == "HTTP/1.1" or "keep-alive" in connection)
    return Request(method, target, headers, body, keep_alive)


async def send_json(
    writer: asyncio.StreamWriter,
    status: int,
    body: bytes,
    keep_alive: bool,
    extra_headers: list[tuple[str, str]] | None = None,
) -> None:
    headers = [
        ("content-type", "application/json"),
        ("content-length", str(len(body))),
        ("connection", "keep-alive" if keep_alive else "close"),
    ]
    if extra_headers:
        headers.extend(extra_headers)
    writer.write(wire.http_head(status, headers) + body)
    await writer.drain()


async def write_frame(
    writer: asyncio.StreamWriter, frame: bytes, rng: random.Random | None, chop: int | None
) -> None:
    if chop is None and (rng is None or len(frame) < 2):
        writer.write(wire.chunked(frame))
        await writer.drain()
        return
    # Each piece is its own HTTP chunk, write and drain, so the client's reads end there.
    for piece in _pieces(frame, rng, chop):
        writer.write(wire.chunked(piece))
        await writer.drain()


def _pieces(frame: bytes, rng: random.Random | None, chop: int | None) -> Iterator[bytes]:
    if chop is not None:
        return (frame[i : i + chop] for i in range(0, len(frame), chop))
    assert rng is not None
    cuts = sorted(rng.sample(range(1, len(frame)), min(rng.randint(1, 4), len(frame) - 1)))
    bounds = [0, *cuts, len(frame)]
    return (frame[a:b] for a, b in itertools.pairwise(bounds))


def set_nodelay(writer: asyncio.StreamWriter) -> None:
    # Each frame must leave at once, as a real streaming API's do: no Nagle delay.
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def reset(writer: asyncio.StreamWriter) -> None:
    """Abort with SO_LINGER 0, so the peer sees a TCP RST rather than a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        # Whatever is still in the kernel's send queue would be thrown away with the RST.
        await _wait_sent(sock)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _wait_sent(sock: Any, limit: float = 1.0) -> None:
    """Best effort: wait until the kernel has sent (and the peer acknowledged) every byte."""
    try:
        import fcntl
        import termios
    except ImportError:  # not a Unix: nothing to ask
        return
    deadline = time.monotonic() + limit
    buf = bytearray(4)
    while time.monotonic() < deadline:
        try:
            fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, buf)
        except OSError:
            return
        if struct.unpack("i", buf)[0] == 0:
            return
        await asyncio.sleep(0.001)
