"""One HTTP/1.1 connection and the response it carries: the protocol side of ``http1``.

``Connection`` is an ``asyncio.Protocol`` around httptools' ``HttpResponseParser``: each read is
parsed in ``data_received`` and its body bytes queued, so the reading task wakes at most once per
batch of reads and takes everything queued in one piece. The idle timeout costs no timer per
read: the connection stamps the time of its last read and one ``loop.call_at`` per request looks
at it, re-armed only when it fires early. Past ``high_water`` unread bytes the socket stops being
read until they are. ``Response`` is the caller's view of one exchange; ``Decoder`` undoes gzip
and deflate.

This module must never log, never put a request header in an exception or a repr, and never let
an OSError, ssl, zlib or httptools exception escape: every failure is an ``HTTPError``.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Hashable
from typing import Protocol, cast

import httptools

from ssechat.providers.http1.errors import (
    ConnectionBroken,
    DecodingError,
    HTTPError,
    ProtocolError,
    ReadTimeout,
)

__all__ = ["Connection", "Decoder", "Pool", "Response"]

_HEAD_LIMIT = 64 * 1024
# The most body bytes one ``receive`` hands out when more are queued: a burst (a fast upstream,
# or a reader that fell behind) goes on as a series of ~4 KiB pieces, each a delta of a few dozen
# tokens, not as one piece of everything queued. Measured in the benchmark's saturated scenario
# (100 streams bursting): 4.9-6.2 µs per token uncapped, 3.2 with this cap; paced reads are far
# smaller and never reach it.
_TAKE_LIMIT = 4 * 1024
# A timer that fires this close to its deadline is on time (libuv counts in milliseconds).
_TIMER_SLACK = 0.002


class _Stop(Exception):
    """Raised in a parser callback to stop parsing what follows."""


class Pool(Protocol):
    """Where a connection goes back when its exchange is over (``Client``)."""

    def release(self, conn: Connection) -> None:
        """Keep ``conn`` for another request to the same place (or close it)."""
        ...

    def forget(self, conn: Connection) -> None:
        """``conn`` is closed: drop it."""
        ...


class Response:
    """The answer to a ``Client.post``: status, reason, headers (names in lower case, repeated
    ones joined with ``", "``), and the body as it streams in."""

    __slots__ = ("_closed", "_conn", "_decoder", "headers", "reason", "status")

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._closed = False
        self.status = conn.status
        self.reason = conn.reason.decode("ascii", "ignore")
        self.headers = conn.headers
        coding = self.headers.get("content-encoding", "").strip().lower()
        self._decoder = None if coding in ("", "identity") else Decoder(coding)

    async def receive(self) -> bytes:
        """Everything of the body that has arrived since the last call, waiting if there is
        none yet; ``b""`` once the body is complete."""
        conn = self._conn
        while not self._closed:
            chunks = conn.chunks
            first = conn.first
            if first < len(chunks):
                if conn.buffered <= _TAKE_LIMIT:  # everything queued: the common case
                    rest = chunks if first == 0 else chunks[first:]
                    data = rest[0] if len(rest) == 1 else b"".join(rest)
                    conn.chunks = []
                    conn.first = 0
                    conn.buffered = 0
                else:
                    size = 0
                    end = first
                    while size < _TAKE_LIMIT:
                        size += len(chunks[end])
                        end += 1
                    data = b"".join(chunks[first:end])
                    conn.first = end
                    conn.buffered -= size
                if conn.paused and conn.buffered <= conn.low_water:
                    conn.resume()
                if self._decoder is None:
                    return data
                data = self._decoder.decode(data)
                if data:
                    return data
                continue
            if conn.error is not None:
                raise conn.error
            if conn.complete:
                decoder, self._decoder = self._decoder, None
                if decoder is not None:
                    return decoder.flush()
                break
            conn.waiter = waiter = conn.loop.create_future()
            await waiter
        return b""

    async def read(self, limit: int) -> bytes:
        """The body, or its first ``limit`` bytes."""
        parts: list[bytes] = []
        size = 0
        while size < limit:
            data = await self.receive()
            if not data:
                break
            parts.append(data)
            size += len(data)
        return b"".join(parts)[:limit]

    async def drain(self, limit: int, seconds: float) -> bool:
        """Read and drop the rest of the body, if it ends within ``limit`` bytes and ``seconds``,
        so that the connection can be reused; whether it did. Never raises."""
        conn = self._conn
        loop = conn.loop
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            conn.wake()

        timer = loop.call_later(seconds, expire)
        received = 0
        try:
            while not conn.complete:
                if self._closed or conn.error is not None or expired or received > limit:
                    return False
                received += conn.buffered
                conn.chunks = []
                conn.first = 0
                conn.buffered = 0
                if conn.paused:
                    conn.resume()
                conn.waiter = waiter = loop.create_future()
                await waiter
        finally:
            timer.cancel()
        return True

    def close(self) -> None:
        """Give the connection back if the body was complete, else abort it now."""
        if not self._closed:
            self._closed = True
            self._conn.finish()

    async def aclose(self) -> None:
        self.close()


class Decoder:
    """gzip or deflate, or a refusal of any other content coding."""

    __slots__ = ("_coding", "_raw_fallback", "_zlib")

    def __init__(self, coding: str) -> None:
        self._coding = coding
        self._zlib: zlib._Decompress | None = None
        if coding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS | 16)
        elif coding == "deflate":
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS)
        # Some servers send "deflate" without its zlib header: raw deflate, tried once.
        self._raw_fallback = coding == "deflate"

    def decode(self, data: bytes) -> bytes:
        if self._zlib is None:
            raise DecodingError(f"the body is encoded as {self._coding!r}, which is not supported")
        try:
            return self._zlib.decompress(data)
        except zlib.error as exc:
            if self._raw_fallback:
                self._raw_fallback = False
                self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
                return self.decode(data)
            raise DecodingError(f"the {self._coding} body does not decode ({exc})") from None
        finally:
            self._raw_fallback = False

    def flush(self) -> bytes:
        if self._zlib is None:
            return b""
        try:
            return self._zlib.flush()
        except zlib.error as exc:
            raise DecodingError(f"the {self._coding} body does not decode ({exc})") from None


class Connection(asyncio.Protocol):
    """One TCP (or TLS) connection and the exchange it carries, if any."""

    def __init__(
        self,
        pool: Pool,
        key: Hashable,
        loop: asyncio.AbstractEventLoop,
        *,
        high_water: int,
        idle_timeout: float | None,
    ) -> None:
        self._pool = pool
        self.key = key  # where the pool keeps it: the origin, and the proxy it goes through
        self.loop = loop
        self._high_water = high_water
        # Reading resumes once the queue is down to half the high water: not at every take.
        self.low_water = high_water // 2
        self._idle_timeout = idle_timeout
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._timer: asyncio.TimerHandle | None = None
        self.closed = False
        self.pooled = False
        self.idle_since = 0.0
        self.paused = False
        self.waiter: asyncio.Future[None] | None = None
        self._reset()

    def _reset(self) -> None:
        self._active = False
        self.received = False  # any byte of the response
        self.status = 0
        self.reason = b""
        self.headers: dict[str, str] = {}
        self._head_size = 0
        self._head_done = False
        self._keep_alive = False
        self._until_close = False  # a body without length: it ends with the connection
        self._reusable = True
        self._last_read = 0.0
        self.complete = False
        self.error: HTTPError | None = None
        self.chunks: list[bytes] = []
        self.first = 0  # chunks[first:] are the body bytes not yet handed out
        self.buffered = 0

    # --- the exchange, from the caller's side ---------------------------------------------------

    def usable(self) -> bool:
        transport = self._transport
        return not self.closed and transport is not None and not transport.is_closing()

    async def exchange(self, request: bytes) -> Response:
        transport = self._transport
        assert transport is not None
        self._reset()
        self._active = True
        self._parser = httptools.HttpResponseParser(self)
        # h11, which httpx uses, accepts lines that end in a bare LF; so does this client.
        self._parser.set_dangerous_leniencies(lenient_optional_cr_before_lf=True)
        if self._idle_timeout is not None:
            self._last_read = now = self.loop.time()
            self._timer = self.loop.call_at(now + self._idle_timeout, self._check_idle)
        try:
            transport.write(request)
            while not self._head_done:
                if self.error is not None:
                    raise self.error
                self.waiter = waiter = self.loop.create_future()
                await waiter
        except BaseException:
            self._active = False
            self.abort(None)
            raise
        return Response(self)

    def finish(self) -> None:
        """The caller is done with the response: pool the connection or abort it."""
        self._active = False
        self._stop_timer()
        self.waiter = None
        if (
            self.complete
            and self._keep_alive
            and self._reusable
            and self.error is None
            and self.usable()
        ):
            self.chunks = []
            self.first = 0
            self.buffered = 0
            if self.paused:
                self.resume()
            self._pool.release(self)
        else:
            self.abort(None)

    def abort(self, error: HTTPError | None) -> None:
        """Close at once; a response still awaited fails with ``error``, if given."""
        if error is not None and self._active and not self.complete and self.error is None:
            self.error = error
            self.wake()
        self._stop_timer()
        if not self.closed:
            self.closed = True
            if self._transport is not None:
                self._transport.abort()
            self._pool.forget(self)

    def resume(self) -> None:
        self.paused = False
        if self._transport is not None and not self.closed:
            self._transport.resume_reading()
        self._last_read = self.loop.time()

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _fail(self, error: HTTPError) -> None:
        if self.error is None:
            self.error = error
        self.wake()
        self.abort(None)

    def _check_idle(self) -> None:
        self._timer = None
        timeout = self._idle_timeout
        if not self._active or self.complete or self.error is not None or timeout is None:
            return
        now = self.loop.time()
        transport = self._transport
        if self.paused or (transport is not None and transport.get_write_buffer_size()):
            self._last_read = now  # the reader, or the request's upload, is slow: not the server
        deadline = self._last_read + timeout
        if deadline - now > _TIMER_SLACK:
            self._timer = self.loop.call_at(deadline, self._check_idle)
        else:
            self._fail(ReadTimeout(f"the server sent nothing for {timeout:g} s"))

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # --- asyncio's side -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if not self._active or self.complete:
            # Bytes nobody asked for: what follows them cannot be trusted to be a response.
            self._reusable = False
            if not self._active:
                self.abort(None)
            return
        self.received = True
        self._last_read = self.loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(ProtocolError("the server switched protocols"))
        except httptools.HttpParserError as exc:
            if self.complete:
                self._reusable = False  # bytes after the response
            else:
                self._fail(ProtocolError(f"malformed HTTP response ({exc})"))
        else:
            if self.buffered > self._high_water and not self.paused:
                self.paused = True
                assert self._transport is not None
                self._transport.pause_reading()
        self.wake()

    def eof_received(self) -> bool | None:
        self._ended(None)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._ended(exc)
        self._stop_timer()
        self._pool.forget(self)

    def _ended(self, exc: Exception | None) -> None:
        if not self._active or self.complete or self.error is not None:
            return
        if exc is None and self._head_done and self._until_close:
            self.complete = True
            self._keep_alive = False
            self._stop_timer()
            self.wake()
            return
        if not self.received:
            what = "without sending a response"
        elif not self._head_done:
            what = "in the middle of the response head"
        else:
            what = "before the response body ended"
        if exc is None:
            error = ConnectionBroken(f"the server closed the connection {what}")
        else:
            error = ConnectionBroken(f"the connection broke {what} ({exc})")
        self._fail(error)

    # --- httptools' side ------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.complete:
            self._reusable = False
            raise _Stop  # a second response to one request: leave it unread

    def on_status(self, reason: bytes) -> None:
        self.reason += reason
        self._count(len(reason))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value))
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        previous = self.headers.get(key)
        self.headers[key] = text if previous is None else f"{previous}, {text}"

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:
            return  # an interim response (100 Continue…): the real one follows
        self.status = status
        self._head_done = True
        self._keep_alive = self._parser.should_keep_alive()
        headers = self.headers
        self._until_close = (
            "content-length" not in headers
            and "chunked" not in headers.get("transfer-encoding", "").lower()
            and status not in (204, 304)
        )

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)

    def on_message_complete(self) -> None:
        if not self._head_done:  # the end of an interim response
            self.reason = b""
            self.headers = {}
            return
        self.complete = True
        self._stop_timer()

    def _count(self, size: int) -> None:
        self._head_size += size
        if self._head_size > _HEAD_LIMIT:
            self._fail(ProtocolError(f"the response head is larger than {_HEAD_LIMIT} bytes"))
            raise _Stop
