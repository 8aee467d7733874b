"""ssechat.providers.http1 over real loopback sockets (and, for exhaustive splits, fed by hand).

Canned answers come from tiny raw asyncio servers (``http1_support``), so that each test controls
the bytes and sees the connections; the chat scenarios come from the fake upstream.
"""

from __future__ import annotations

import asyncio
import gzip
import ssl
import zlib
from pathlib import Path
from typing import Any

import pytest

from ssechat.errors import ProviderStreamError
from ssechat.fake_upstream import FakeUpstream, Scenario
from ssechat.providers import OpenAIProvider, http1
from ssechat.providers.http1.connection import Connection

from .http1_support import (
    OK_HEAD,
    SSE,
    FakeTransport,
    RawServer,
    RecordingTransport,
    answering,
    chat_body,
    chunked,
    drain_into,
    fetch,
    free_port,
    origin,
    raw_server,
    read_all,
    request_head,
)

pytestmark = pytest.mark.anyio


# --- pooling ---------------------------------------------------------------------------------


async def test_keep_alive_reuses_one_connection(anyio_backend: str) -> None:
    async with FakeUpstream() as upstream:
        client = http1.Client()
        for _ in range(3):
            body = chat_body()
            response = await client.request(origin(upstream.port), request_head(body), body)
            assert response.status == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert b"data: [DONE]" in await read_all(response)
            response.close()
        assert len(upstream.requests) == 3
        assert len(upstream.connections) == 1
        assert upstream.connections[0].closed_at is None
        client.close()
        await upstream.wait_closed()


async def test_an_unfinished_response_is_not_pooled(anyio_backend: str) -> None:
    async with FakeUpstream(Scenario(tokens=1000, rate=100)) as upstream:
        client = http1.Client()
        body = chat_body()
        response = await client.request(origin(upstream.port), request_head(body), body)
        assert await response.receive()
        response.close()
        async with asyncio.timeout(10):
            await upstream.wait_closed(0)
        assert upstream.connections[0].closed_by == "client"
        client.close()


@pytest.mark.parametrize(
    ("answer", "then"),
    [
        (OK_HEAD + b"connection: close\r\ncontent-length: 5\r\n\r\nhello", "wait"),
        (OK_HEAD + b"\r\nhello", "close"),  # no length: the body ends with the connection
    ],
    ids=["connection-close", "until-close"],
)
async def test_connection_close_and_until_close_bodies_are_not_pooled(
    anyio_backend: str, answer: bytes, then: str
) -> None:
    async with raw_server(answering(answer, then=then)) as s:
        client = http1.Client()
        for i in range(2):
            response = await client.request(origin(s.port), request_head(b"{}"), b"{}")
            assert await read_all(response) == b"hello"
            response.close()
            async with asyncio.timeout(10):
                await s.closed[i].wait()  # "wait": it is the client that closes it
        client.close()
    assert [index for index, _ in s.requests] == [0, 1]


async def test_a_stale_pooled_connection_is_reported_not_retried(anyio_backend: str) -> None:
    # Connection 0 answers once, then closes as the second request arrives (the keep-alive race:
    # the request left before the close was seen). The client says so; retrying is the caller's.
    answer = OK_HEAD + b"content-length: 2\r\n\r\nok"

    async def handler(
        server: RawServer, index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while await server.read_request(index, reader) is not None:
            if index == 0 and len(server.requests) == 2:
                return  # close without a byte of answer
            writer.write(answer)

    async with raw_server(handler) as s:
        client = http1.Client()
        assert await fetch(client, s.port) == b"ok"
        with pytest.raises(http1.StaleConnection, match="kept-alive connection was closed"):
            await fetch(client, s.port)
        assert await fetch(client, s.port) == b"ok"  # a new connection
        client.close()
    assert [index for index, _ in s.requests] == [0, 0, 1]


async def test_a_fresh_connection_closed_unanswered_is_not_stale(anyio_backend: str) -> None:
    async def handler(
        server: RawServer, index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await server.read_request(index, reader)  # and close without answering

    async with raw_server(handler) as s:
        client = http1.Client()
        with pytest.raises(http1.ConnectionBroken, match="without sending a response") as info:
            await fetch(client, s.port)
        assert not isinstance(info.value, http1.StaleConnection)
        client.close()


# --- timeouts, errors ------------------------------------------------------------------------


async def test_connect_refused(anyio_backend: str) -> None:
    client = http1.Client()
    with pytest.raises(http1.ConnectError):
        await client.request(origin(free_port()), request_head(b"{}"), b"{}")
    client.close()


async def test_connect_timeout_covers_the_tls_handshake(anyio_backend: str) -> None:
    async def silent(server: RawServer, index: int, reader: Any, writer: Any) -> None:
        await reader.read()

    async with raw_server(silent) as s:
        client = http1.Client(connect_timeout=0.2)
        with pytest.raises(http1.ConnectTimeout):
            await client.request(http1.Origin("https", "127.0.0.1", s.port), b"", b"")
        client.close()
        async with asyncio.timeout(10):
            await s.closed[0].wait()


async def test_idle_timeout_fails_a_stalled_stream_and_closes_it(anyio_backend: str) -> None:
    async with raw_server(
        answering(OK_HEAD + b"transfer-encoding: chunked\r\n\r\n2\r\nhi\r\n")
    ) as s:
        client = http1.Client(idle_timeout=0.2)
        response = await client.request(origin(s.port), request_head(b"{}"), b"{}")
        assert await response.receive() == b"hi"
        with pytest.raises(http1.ReadTimeout, match=r"nothing for 0\.2 s"):
            await response.receive()
        async with asyncio.timeout(10):
            await s.closed[0].wait()  # aborted at once, not left to the caller
        response.close()
        client.close()


async def test_a_steady_stream_slower_than_the_timeout_in_total_does_not_time_out(
    anyio_backend: str,
) -> None:
    # 12 tokens 50 ms apart: 0.6 s in all, never 0.2 s of silence.
    async with FakeUpstream(Scenario(tokens=12, rate=20)) as upstream:
        client = http1.Client(idle_timeout=0.2)
        body = chat_body()
        response = await client.request(origin(upstream.port), request_head(body), body)
        assert (await read_all(response)).count(b"data: ") == 1 + 12 + 1 + 1  # role, DONE
        response.close()
        client.close()


async def test_no_timer_is_created_per_read(
    anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop = asyncio.get_running_loop()
    consumed = asyncio.Event()
    reads = 200

    async def one_chunk_per_read(
        server: RawServer, index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await server.read_request(index, reader)
        writer.write(OK_HEAD + b"transfer-encoding: chunked\r\n\r\n")
        for _ in range(reads):
            consumed.clear()
            writer.write(b"1\r\nx\r\n")
            await consumed.wait()  # the client has read it: the next write is a read of its own
        writer.write(b"0\r\n\r\n")
        await reader.read()

    async with raw_server(one_chunk_per_read) as s:
        client = http1.Client(idle_timeout=30)
        response = await client.request(origin(s.port), request_head(b"{}"), b"{}")
        timers = 0
        call_at = loop.call_at

        def counting_call_at(*args: Any, **kwargs: Any) -> asyncio.TimerHandle:
            nonlocal timers
            timers += 1
            return call_at(*args, **kwargs)

        monkeypatch.setattr(loop, "call_at", counting_call_at)
        received = 0
        while data := await response.receive():
            received += len(data)
            consumed.set()
        monkeypatch.undo()
        response.close()
        client.close()
    assert received == reads
    assert timers == 0


@pytest.mark.parametrize(
    "answer",
    [b"HTTX/1.1 200 OK\r\n\r\n", b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n"],
    ids=["status-line", "chunk-size"],
)
async def test_malformed_http_is_a_protocol_error_and_a_stream_error(
    anyio_backend: str, answer: bytes
) -> None:
    async with raw_server(answering(answer, answer)) as s:
        client = http1.Client()
        with pytest.raises(http1.ProtocolError, match="malformed"):
            await fetch(client, s.port)
        client.close()
        provider = OpenAIProvider(base_url=f"http://127.0.0.1:{s.port}/v1", max_retries=2)
        with pytest.raises(ProviderStreamError, match="could not be read") as info:
            await drain_into([], provider)
        await provider.aclose()
    assert info.value.retryable is False
    assert len(s.requests) == 2  # not retried


async def test_a_head_too_large_is_refused(anyio_backend: str) -> None:
    head = OK_HEAD + b"x-big: " + b"a" * 70_000 + b"\r\ncontent-length: 0\r\n\r\n"
    async with raw_server(answering(head)) as s:
        client = http1.Client()
        with pytest.raises(http1.ProtocolError, match="larger than"):
            await client.request(origin(s.port), request_head(b"{}"), b"{}")
        client.close()


# --- cancellation ----------------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["head", "body"])
async def test_cancelling_the_reader_closes_the_connection(anyio_backend: str, stage: str) -> None:
    # "head": the fake stalls before answering (a non-streamed request); "body": mid-stream.
    scenario = Scenario(stall_after=0) if stage == "head" else Scenario(tokens=1000, rate=50)
    async with FakeUpstream(scenario) as upstream:
        client = http1.Client()
        started = asyncio.Event()

        async def consume() -> None:
            body = chat_body(stream=stage == "body")
            response = await client.request(origin(upstream.port), request_head(body), body)
            try:
                while await response.receive():
                    started.set()
            finally:
                response.close()

        task = asyncio.create_task(consume())
        if stage == "head":
            await upstream.wait_requests(1)
        else:
            await started.wait()
        assert upstream.connections[0].closed_at is None
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with asyncio.timeout(10):
            await upstream.wait_closed(0)
        # The client closed it (the stream had far to go, or never began): the cancel did.
        assert upstream.connections[0].closed_by == "client"
        client.close()


# --- bodies ----------------------------------------------------------------------------------


async def exchange_by_hand(pieces: list[bytes], eof: bool) -> tuple[bytes, bool]:
    """Feed ``pieces`` (then EOF, if asked) to a connection, as reads; the body it gives, and
    whether the connection went back to the pool."""
    client = http1.Client()
    conn = Connection(
        client,
        origin(1),
        asyncio.get_running_loop(),
        high_water=client.high_water,
        idle_timeout=client.idle_timeout,
    )
    transport = FakeTransport()
    conn.connection_made(transport)
    task = asyncio.create_task(conn.exchange(b"request"))
    await transport.written.wait()
    for piece in pieces:
        conn.data_received(piece)
    if eof:
        conn.eof_received()
        conn.connection_lost(None)
    response = await task
    body = await read_all(response)
    response.close()
    return body, conn.pooled


GZIPPED = gzip.compress(b"hello " * 50)
DEFLATED = zlib.compress(b"hello " * 50)
RAW_DEFLATED = zlib.compress(b"hello " * 50)[2:-4]
BODIES = {
    "chunked": (OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(SSE[:10], SSE[10:]), SSE),
    "length": (OK_HEAD + b"content-length: %d\r\n\r\n" % len(SSE) + SSE, SSE),
    "until-close": (OK_HEAD + b"\r\n" + SSE, SSE),
    "interim-100": (b"HTTP/1.1 100 Continue\r\n\r\n" + OK_HEAD + b"content-length: 2\r\n\r\nhi",
                    b"hi"),
    "gzip": (OK_HEAD + b"content-encoding: gzip\r\n" + b"transfer-encoding: chunked\r\n\r\n"
             + chunked(GZIPPED[:7], GZIPPED[7:]), b"hello " * 50),
    "deflate": (OK_HEAD + b"content-encoding: deflate\r\ncontent-length: %d\r\n\r\n"
                % len(DEFLATED) + DEFLATED, b"hello " * 50),
    "raw-deflate": (OK_HEAD + b"content-encoding: deflate\r\ncontent-length: %d\r\n\r\n"
                    % len(RAW_DEFLATED) + RAW_DEFLATED, b"hello " * 50),
}  # fmt: skip


@pytest.mark.parametrize("kind", list(BODIES))
async def test_a_body_split_at_every_offset(anyio_backend: str, kind: str) -> None:
    raw, expected = BODIES[kind]
    eof = kind == "until-close"
    for cut in range(1, len(raw)):
        body, pooled = await exchange_by_hand([raw[:cut], raw[cut:]], eof)
        assert body == expected, cut
        assert pooled is not eof  # a complete keep-alive response gives its connection back
    body, _ = await exchange_by_hand([raw[i : i + 1] for i in range(len(raw))], eof)
    assert body == expected


async def test_a_cut_off_body_is_a_broken_connection(anyio_backend: str) -> None:
    raw, _ = BODIES["length"]
    with pytest.raises(http1.ConnectionBroken, match="before the response body ended"):
        await exchange_by_hand([raw[:-3]], eof=True)


async def test_an_unknown_content_coding_is_a_decoding_error(anyio_backend: str) -> None:
    raw = OK_HEAD + b"content-encoding: br\r\ncontent-length: 3\r\n\r\nabc"
    with pytest.raises(http1.DecodingError, match="'br'"):
        await exchange_by_hand([raw], eof=False)


async def test_a_burst_is_handed_out_in_pieces_of_about_4_kib_in_order(
    anyio_backend: str,
) -> None:
    # 800 frames of 62 bytes arrive in one read (49 600 bytes, under the high water): receive()
    # hands them out in ~4 KiB pieces of whole body chunks, so that a burst becomes deltas of a
    # few dozen tokens, not one delta of everything queued.
    frames = [b"data: %054d\n\n" % i for i in range(800)]
    body = b"".join(b"%x\r\n%b\r\n" % (len(f), f) for f in frames) + b"0\r\n\r\n"
    client = http1.Client()
    conn = Connection(
        client, origin(1), asyncio.get_running_loop(), high_water=64 * 1024, idle_timeout=None
    )
    transport = FakeTransport()
    conn.connection_made(transport)
    task = asyncio.create_task(conn.exchange(b"request"))
    await transport.written.wait()
    conn.data_received(OK_HEAD + b"transfer-encoding: chunked\r\n\r\n" + body)
    response = await task
    pieces = []
    while piece := await response.receive():
        pieces.append(piece)
    response.close()
    assert b"".join(pieces) == b"".join(frames)
    size = len(frames[0]) * -(-4096 // len(frames[0]))  # the fewest whole frames over 4 KiB
    assert [len(p) for p in pieces[:-1]] == [size] * (len(b"".join(frames)) // size)
    assert conn.pooled  # read to its end: the connection went back to the pool


async def test_a_slow_reader_pauses_the_socket_without_timing_out(
    anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    size = 4 * 1024 * 1024
    payload = bytes(range(256)) * (size // 256)
    high_water = 64 * 1024
    transports: list[RecordingTransport] = []
    made = Connection.connection_made

    def connection_made(self: Connection, transport: Any) -> None:
        transports.append(RecordingTransport(transport))
        made(self, transports[-1])  # type: ignore[arg-type]

    monkeypatch.setattr(Connection, "connection_made", connection_made)
    async with raw_server(answering(OK_HEAD + b"content-length: %d\r\n\r\n" % size + payload)) as s:
        client = http1.Client(idle_timeout=0.2, high_water=high_water)
        response = await client.request(origin(s.port), request_head(b"{}"), b"{}")
        (transport,) = transports
        async with asyncio.timeout(10):
            await transport.paused.wait()
        buffered = response._conn.buffered
        assert high_water < buffered <= high_water + 256 * 1024  # at most one read beyond
        await asyncio.sleep(0.5)  # a reader slower than the idle timeout: not the server's fault
        assert response._conn.buffered == buffered  # nothing more was read meanwhile
        assert await read_all(response) == payload
        assert transport.pauses >= 2  # paused again after a resume: the socket kept the pace
        assert transport.resumes == transport.pauses
        response.close()
        client.close()


# --- TLS ---------------------------------------------------------------------------------------


async def test_https_with_reuse(anyio_backend: str, certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    answer = OK_HEAD + b"transfer-encoding: chunked\r\n\r\n" + chunked(SSE)
    async with raw_server(answering(answer, answer), ssl=server_context) as s:
        https = http1.Origin("https", "localhost", s.port)
        client = http1.Client(ssl_context=ssl.create_default_context(cafile=str(cert)))
        for _ in range(2):
            response = await client.request(https, request_head(b"{}"), b"{}")
            assert await read_all(response) == SSE
            response.close()
        client.close()
        untrusted = http1.Client()
        with pytest.raises(http1.ConnectError, match="certificate verify failed"):
            await untrusted.request(https, request_head(b"{}"), b"{}")
        untrusted.close()
    assert [index for index, _ in s.requests] == [0, 0]
