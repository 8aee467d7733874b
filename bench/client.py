"""The load generator's client: one raw asyncio ``Protocol`` per stream, no HTTP library.

It speaks just enough HTTP/1.1 (one request per connection, Content-Length or chunked bodies)
and cuts the body into SSE frames on the blank line, classifying each frame with a byte search.
Tokens are counted in the text, not by frame, because a relay may send the tokens that arrived
together as one event: the fake upstream's generated tokens are words, each but a stream's first
with one leading space and none inside, so a text carries as many tokens as it has spaces, plus
one if it does not begin with a space (it holds the stream's first token; the field names' own
``": "`` are subtracted). Each token is
timestamped, when asked, with the time its bytes were handed to the protocol (all tokens of one
read share that time). Three wire formats are understood:

- ``openai``: the upstream's ``data: {chat.completion.chunk}`` frames, then ``data: [DONE]``;
- ``tutorial``: ``data: <text>`` frames, then ``data: [DONE]`` (the Koa and FastAPI relays,
  ssechat's ``/api/chat``);
- ``run``: ssechat's run stream (``id``/``event: delta``/``data: {"text"}`` … ``event: done``).

It must stay cheap (a few microseconds per frame) so that it is never the bottleneck, and must
only ever connect to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, cast

import orjson

__all__ = [
    "HOST",
    "Kind",
    "Stream",
    "StreamProtocol",
    "Totals",
    "fetch",
    "open_stream",
    "request",
    "wait_until",
]

HOST = "127.0.0.1"
Kind = Literal["openai", "tutorial", "run", "json"]
clock = time.perf_counter

_HEAD_LIMIT = 64 * 1024
_OPENAI_TOKEN = b'"delta":{"content":'
_RUN_DELTA = b"\nevent: delta\n"
_RUN_DONE = b"\nevent: done\n"
_RUN_ERROR = b"\nevent: error\n"
_RUN_START = b"\nevent: run\n"
_DATA_DONE = b"data: [DONE]"
# Frames that the bulk path leaves to the frame-by-frame one.
_SPECIAL: dict[str, tuple[bytes, ...]] = {
    "openai": (b"[DONE]", b'"error"'),
    "tutorial": (_DATA_DONE, b"event:"),
    "run": (_RUN_DONE, _RUN_ERROR, _RUN_START),
    "json": (),
}


class Totals:
    """Counters shared by all the streams of one phase, sampled by the window sampler."""

    __slots__ = ("active", "finished", "first_tokens", "heartbeats", "open", "tokens")

    def __init__(self) -> None:
        self.tokens = 0
        self.first_tokens = 0  # streams that have received their first token
        self.active = 0  # streams that have received a token and have not ended
        self.open = 0  # streams whose 200 head arrived and that have not ended
        self.finished = 0  # streams that ended, in any way
        self.heartbeats = 0


@dataclass(slots=True)
class Stream:
    """What one stream saw. Times are ``time.perf_counter()`` seconds."""

    sent_at: float = 0.0
    status: int = 0
    first_at: float = 0.0
    end_at: float = 0.0
    tokens: int = 0
    heartbeats: int = 0
    done: bool = False
    dropped: bool = False  # closed by us on purpose (drop_after) before the end
    error: str = ""
    done_status: str = ""
    run_id: str = ""
    body: bytes = b""  # the body of a non-event-stream answer
    times: list[float] | None = None  # arrival time of each token, when asked for
    ids: list[int] | None = None  # run streams: the id of each delta, when asked for
    texts: list[str] | None = None  # the text of each token frame, when asked for
    headers: dict[str, str] = field(default_factory=dict)


class StreamProtocol(asyncio.Protocol):
    """Sends one request and reads one response; ``finished`` resolves at its end."""

    def __init__(
        self,
        request_bytes: bytes,
        kind: Kind,
        result: Stream,
        totals: Totals,
        *,
        sep: bytes = b"\n\n",
        drop_after: int = 0,
        coalesce: float = 0.0,
    ) -> None:
        self.request_bytes = request_bytes
        self.kind: Kind = kind
        self.result = result
        self.totals = totals
        self.sep = sep
        self.drop_after = drop_after
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self._head = b""
        self._in_body = False
        self._chunked = False
        self._length = -1
        self._chunk_left = 0  # >0: bytes left in this chunk; 0: a size line next; -1: a CRLF
        self._cbuf = b""
        self._sse = b""
        self._body: list[bytes] = []
        self._body_size = 0
        self._ended = False
        # Bulk counting when nothing per token is asked for.
        self._bulk = (
            result.times is None
            and result.texts is None
            and result.ids is None
            and not drop_after
            and kind != "json"
        )
        self._marker = {"openai": _OPENAI_TOKEN, "run": _RUN_DELTA}.get(kind, sep)
        # Bulk reads may be coalesced: after each read the socket rests ``coalesce`` seconds,
        # so that one read takes many frames (the kernel buffers them meanwhile).
        self.coalesce = coalesce if self._bulk else 0.0

    # --- asyncio callbacks ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave like one.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request_bytes)

    def data_received(self, data: bytes) -> None:
        if self.finished.done():
            return
        now = clock()
        if not self._in_body:
            data = self._read_head(data)
            if not data:
                return
        if self._chunked:
            data = self._dechunk(data)
        elif self._length >= 0:
            data = data[: self._length - self._body_size]
            self._ended = self._body_size + len(data) >= self._length
        if data:
            if self.kind == "json" or self.result.status != 200:
                self._body.append(data)
                self._body_size += len(data)
            else:
                self._frames(data, now)
        if self._ended and not self.finished.done():
            plain = self.kind == "json" or self.result.status != 200
            self._finish(now, self._status_error() if plain else "the body ended without done")
        elif self.coalesce and self.transport is not None and not self.finished.done():
            self.transport.pause_reading()
            asyncio.get_running_loop().call_later(self.coalesce, self._resume)

    def _resume(self) -> None:
        if self.transport is not None and not self.finished.done():
            self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.finished.done():
            return
        plain = self.kind == "json" or self.result.status != 200
        close_delimited = self._in_body and not self._chunked and self._length < 0
        if plain and (self._ended or close_delimited):
            self._finish(clock(), self._status_error())
        else:
            self._finish(clock(), f"connection lost ({exc or 'closed by the server'})")

    def _status_error(self) -> str:
        status = self.result.status
        if self.kind == "json" or status == 200:
            return ""
        return f"HTTP {status}: {b''.join(self._body)[:200]!r}"

    # --- HTTP ---------------------------------------------------------------------------------

    def _read_head(self, data: bytes) -> bytes:
        head = self._head + data
        end = head.find(b"\r\n\r\n")
        if end < 0:
            if len(head) > _HEAD_LIMIT:
                self._finish(clock(), "response head too large")
            self._head = head
            return b""
        self._head = b""
        self._in_body = True
        lines = head[:end].decode("latin-1").split("\r\n")
        try:
            self.result.status = int(lines[0].split(" ", 2)[1])
        except (IndexError, ValueError):
            self._finish(clock(), f"bad status line {lines[0][:80]!r}")
            return b""
        headers = self.result.headers
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if self.result.status == 200:
            self.totals.open += 1
        self._chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        if not self._chunked and headers.get("content-length", "").isdigit():
            self._length = int(headers["content-length"])
            if self._length == 0:
                self._ended = True
        return head[end + 4 :]

    def _dechunk(self, data: bytes) -> bytes:
        if self._cbuf:
            data = self._cbuf + data
            self._cbuf = b""
        out: list[bytes] = []
        pos, n, left = 0, len(data), self._chunk_left
        while pos < n:
            if left > 0:
                end = pos + left
                if end > n:
                    out.append(data[pos:])
                    left -= n - pos
                    pos = n
                    break
                out.append(data[pos:end])
                pos, left = end, -1
            if left == -1:
                if n - pos < 2:
                    break
                pos, left = pos + 2, 0
            eol = data.find(b"\r\n", pos)
            if eol < 0:
                break
            size = int(data[pos:eol].partition(b";")[0], 16)
            pos = eol + 2
            if size == 0:
                self._ended = True
                pos = n
                break
            left = size
        self._chunk_left = left
        if pos < n:
            self._cbuf = data[pos:]
        return out[0] if len(out) == 1 else b"".join(out)

    # --- SSE frames ---------------------------------------------------------------------------

    def _frames(self, data: bytes, now: float) -> None:
        buf = self._sse + data if self._sse else data
        sep, step, start = self.sep, len(self.sep), 0
        if self._bulk:
            # Nothing per token to record: count the tokens of every complete frame with one
            # C-level search, unless something else (an end, an error, a heartbeat) is there.
            cut = buf.rfind(sep)
            if cut < 0:
                self._sse = buf
                return
            cut += step
            region = buf[:cut] if cut < len(buf) else buf
            if not self._special(region):
                self._sse = buf[cut:]
                count = self._count(region)
                if count:
                    self._tokens(count, now)
                return
        kind = self.kind
        while True:
            end = buf.find(sep, start)
            if end < 0:
                break
            frame = buf[start:end]
            start = end + step
            if kind == "run":
                self._run_frame(frame, now)
            elif kind == "openai":
                if _OPENAI_TOKEN in frame:
                    self._token(now, frame, 0)
                elif frame.startswith(_DATA_DONE):
                    self._finish(now, "", done=True)
                elif b'"error"' in frame:
                    self._finish(now, f"error frame {frame[:120]!r}")
            else:
                first = frame[:1]
                if first == b"d":
                    if frame == _DATA_DONE:
                        self._finish(now, "", done=True)
                    else:
                        self._token(now, frame, 6)
                elif first == b":":
                    self._heartbeat()
                elif frame.startswith(b"event: error"):
                    self._finish(now, f"error event {frame[:160]!r}")
            if self.finished.done():
                self._sse = b""
                return
        self._sse = buf[start:]

    def _special(self, region: bytes) -> bool:
        if region[:1] == b":" or self.sep + b":" in region:
            return True  # a comment: a heartbeat
        return any(marker in region for marker in _SPECIAL[self.kind])

    def _count(self, region: bytes) -> int:
        """Tokens in a run of whole token frames (see the module docstring)."""
        frames = region.count(self._marker)
        if not frames or self.kind == "openai":
            return frames  # the upstream sends one token per chunk
        # run frames carry "id: ", "event: " and "data: "; tutorial frames a "data: " per line.
        if self.kind == "run":
            fields, spaced = 3 * frames + region.count(b"retry: "), region.count(b'{"text":" ')
        else:
            fields, spaced = region.count(b"data: "), region.count(b"data:  ")
        # A text not starting with a space holds the stream's first token, which has none.
        return region.count(b" ") - fields + frames - spaced

    def _tokens(self, count: int, now: float) -> None:
        result = self.result
        if not result.tokens:
            result.first_at = now
            self.totals.first_tokens += 1
            self.totals.active += 1
        result.tokens += count
        self.totals.tokens += count

    def _run_frame(self, frame: bytes, now: float) -> None:
        if _RUN_DELTA in frame:
            result = self.result
            if result.ids is not None:
                result.ids.append(int(frame[4 : frame.index(b"\n")]))
            self._token(now, frame, -1)
        elif frame[:1] == b":":
            self._heartbeat()
        elif _RUN_DONE in frame:
            data = orjson.loads(frame[frame.index(b"\ndata: ") + 7 :])
            self.result.done_status = str(data.get("status"))
            ok = data.get("status") in ("complete", "length")
            self._finish(now, "" if ok else f"run ended {data.get('status')}", done=True)
        elif _RUN_ERROR in frame:
            self.result.error = frame[frame.index(b"\ndata: ") + 7 :].decode(errors="replace")
        elif _RUN_START in frame:
            data = orjson.loads(frame[frame.index(b"\ndata: ") + 7 :])
            self.result.run_id = str(data.get("run_id", ""))

    def _token(self, now: float, frame: bytes, text_at: int) -> None:
        """One token frame, carrying one token or several that arrived together."""
        result = self.result
        count = self._count(frame + self.sep)
        self._tokens(count, now)
        if result.times is not None:
            result.times.extend([now] * count)
        if result.texts is not None:
            result.texts.append(_token_text(frame, text_at))
        if self.drop_after and result.tokens >= self.drop_after:
            result.dropped = True
            self._finish(now, "")

    def _heartbeat(self) -> None:
        self.result.heartbeats += 1
        self.totals.heartbeats += 1

    def _finish(self, now: float, error: str, *, done: bool = False) -> None:
        if self.finished.done():
            return
        result = self.result
        result.end_at = now
        result.done = done
        if error and not result.error:
            result.error = error
        if self._body:
            result.body = b"".join(self._body)
        self.totals.finished += 1
        if result.tokens:
            self.totals.active -= 1
        if result.status == 200 and self._in_body:
            self.totals.open -= 1
        if self.transport is not None:
            self.transport.abort()
        self.finished.set_result(None)

    def abort(self, reason: str = "") -> None:
        """End the stream now: a deadline (``reason`` says which), or the end of a phase
        (no reason: the stream is marked ``dropped``, which is not an error)."""
        if not reason and not self.finished.done():
            self.result.dropped = True
        self._finish(clock(), reason)


def _token_text(frame: bytes, at: int) -> str:
    if at > 0:  # tutorial frames: the text follows "data: "
        return frame[at:].decode()
    if at == 0:  # an openai chunk
        chunk = orjson.loads(frame[6:])
        return str(chunk["choices"][0]["delta"]["content"])
    return str(orjson.loads(frame[frame.index(b"\ndata: ") + 7 :])["text"])


# --- requests ---------------------------------------------------------------------------------


def request(
    method: str,
    path: str,
    port: int,
    *,
    body: object = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    """The bytes of one HTTP/1.1 request (``Connection: close``); ``body`` is sent as JSON."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}", "Connection: close"]
    payload = b""
    if body is not None:
        payload = orjson.dumps(body)
        lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


async def open_stream(
    port: int,
    request_bytes: bytes,
    kind: Kind,
    totals: Totals,
    *,
    result: Stream | None = None,
    sep: bytes = b"\n\n",
    limit: float = 60.0,
    drop_after: int = 0,
    registry: list[StreamProtocol] | None = None,
    coalesce: float = 0.0,
) -> Stream:
    """Connect, send, read until the stream ends (or ``limit`` seconds pass); never raises."""
    result = result if result is not None else Stream()
    loop = asyncio.get_running_loop()
    result.sent_at = clock()
    proto = StreamProtocol(
        request_bytes, kind, result, totals, sep=sep, drop_after=drop_after, coalesce=coalesce
    )
    try:
        await loop.create_connection(lambda: proto, HOST, port)
    except OSError as exc:
        proto.abort(f"connect failed ({exc})")
        return result
    if registry is not None:
        registry.append(proto)
    try:
        async with asyncio.timeout(limit):
            await proto.finished
    except TimeoutError:
        proto.abort(f"no end after {limit:g} s")
    return result


async def fetch(
    port: int,
    method: str,
    path: str,
    body: object = None,
    *,
    headers: dict[str, str] | None = None,
    limit: float = 30.0,
) -> tuple[int, bytes]:
    """A plain request (setup calls): the status and the whole body."""
    result = await open_stream(
        port,
        request(method, path, port, body=body, headers=headers),
        "json",
        Totals(),
        limit=limit,
    )
    if result.error:
        raise RuntimeError(f"{method} {path}: {result.error}")
    return result.status, result.body


async def wait_until(condition: Callable[[], bool], limit: float, every: float = 0.02) -> bool:
    """Poll ``condition`` every ``every`` s for at most ``limit`` s; return its last value.

    The counters it watches are plain attributes bumped by protocol callbacks: polling them is
    cheaper than an event per frame on the hot path.
    """
    deadline = clock() + limit
    while clock() < deadline:
        if condition():
            return True
        await asyncio.sleep(every)
    return condition()
