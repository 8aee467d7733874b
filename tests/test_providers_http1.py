"""ssechat.providers.http1 over real loopback sockets (and, for exhaustive splits, fed by hand),
and the provider's two transports: which one carries a request, and what both send.

Canned answers come from tiny raw asyncio servers (``http1_support``), so that each test controls
the bytes and sees the connections; the chat scenarios come from the fake upstream.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import shutil
import ssl
import subprocess
import time
import zlib
from pathlib import Path
from typing import Any

import httpx
import pytest

from ssechat.errors import ProviderError, ProviderStreamError, ProviderTimeoutError
from ssechat.fake_upstream import FakeUpstream, Scenario
from ssechat.fake_upstream.wire import generated_tokens
from ssechat.providers import Delta, GenerationParams, OpenAIProvider, http1

from .http1_support import (
    MESSAGES,
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
            response = await client.post(origin(upstream.port), request_head(body), body)
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
        response = await client.post(origin(upstream.port), request_head(body), body)
        assert await response.receive()
        response.close()
        async with asyncio.timeout(1):
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
            response = await client.post(origin(s.port), request_head(b"{}"), b"{}")
            assert await read_all(response) == b"hello"
            response.close()
            async with asyncio.timeout(1):
                await s.closed[i].wait()  # "wait": it is the client that closes it
        client.close()
    assert [index for index, _ in s.requests] == [0, 1]


async def test_a_stale_pooled_connection_is_replaced_once(anyio_backend: str) -> None:
    # Connection 0 answers once, then closes as the second request arrives (the keep-alive race:
    # the request left before the close was seen). The client must retry on a new connection.
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
        for _ in range(2):
            response = await client.post(origin(s.port), request_head(b"{}"), b"{}")
            assert await read_all(response) == b"ok"
            response.close()
        client.close()
    assert [index for index, _ in s.requests] == [0, 0, 1]


async def test_a_stale_connection_is_retried_only_once(anyio_backend: str) -> None:
    async def handler(
        server: RawServer, index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while await server.read_request(index, reader) is not None:
            if len(server.requests) > 1:
                return  # every request after the first: closed unanswered
            writer.write(OK_HEAD + b"content-length: 2\r\n\r\nok")

    async with raw_server(handler) as s:
        client = http1.Client()
        response = await client.post(origin(s.port), request_head(b"{}"), b"{}")
        assert await read_all(response) == b"ok"
        response.close()
        with pytest.raises(http1.ConnectionBroken, match="without sending a response"):
            await client.post(origin(s.port), request_head(b"{}"), b"{}")
        client.close()
    assert [index for index, _ in s.requests] == [0, 0, 1]


# --- timeouts, errors ------------------------------------------------------------------------


async def test_connect_refused(anyio_backend: str) -> None:
    client = http1.Client()
    with pytest.raises(http1.ConnectError):
        await client.post(origin(free_port()), request_head(b"{}"), b"{}")
    client.close()


async def test_connect_timeout_covers_the_tls_handshake(anyio_backend: str) -> None:
    async def silent(server: RawServer, index: int, reader: Any, writer: Any) -> None:
        await reader.read()

    async with raw_server(silent) as s:
        client = http1.Client(connect_timeout=0.2)
        started = time.monotonic()
        with pytest.raises(http1.ConnectTimeout):
            await client.post(http1.Origin("https", "127.0.0.1", s.port), b"", b"")
        assert 0.19 <= time.monotonic() - started < 2
        client.close()
        async with asyncio.timeout(1):
            await s.closed[0].wait()


async def test_idle_timeout_fails_a_stalled_stream_and_closes_it(anyio_backend: str) -> None:
    async with raw_server(
        answering(OK_HEAD + b"transfer-encoding: chunked\r\n\r\n2\r\nhi\r\n")
    ) as s:
        client = http1.Client(idle_timeout=0.2)
        response = await client.post(origin(s.port), request_head(b"{}"), b"{}")
        assert await response.receive() == b"hi"
        started = time.monotonic()
        with pytest.raises(http1.ReadTimeout, match=r"nothing for 0\.2 s"):
            await response.receive()
        assert 0.19 <= time.monotonic() - started < 2
        async with asyncio.timeout(1):
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
        response = await client.post(origin(upstream.port), request_head(body), body)
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
        response = await client.post(origin(s.port), request_head(b"{}"), b"{}")
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
            await client.post(origin(s.port), request_head(b"{}"), b"{}")
        client.close()


# --- cancellation ----------------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["head", "body"])
async def test_cancelling_the_reader_closes_the_connection_at_once(
    anyio_backend: str, stage: str
) -> None:
    # "head": the fake stalls before answering (a non-streamed request); "body": mid-stream.
    scenario = Scenario(stall_after=0) if stage == "head" else Scenario(tokens=1000, rate=50)
    async with FakeUpstream(scenario) as upstream:
        client = http1.Client()
        started = asyncio.Event()

        async def consume() -> None:
            body = chat_body(stream=stage == "body")
            response = await client.post(origin(upstream.port), request_head(body), body)
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
        cancelled = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with asyncio.timeout(1):
            closed_at = await upstream.wait_closed(0)
        assert closed_at - cancelled <= 0.1
        assert upstream.connections[0].closed_by == "client"
        client.close()


# --- bodies ----------------------------------------------------------------------------------


async def exchange_by_hand(pieces: list[bytes], eof: bool) -> tuple[bytes, bool]:
    """Feed ``pieces`` (then EOF, if asked) to a connection, as reads; the body it gives, and
    whether the connection went back to the pool."""
    client = http1.Client()
    conn = http1._Connection(client, origin(1), asyncio.get_running_loop())
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


async def test_a_slow_reader_pauses_the_socket_without_timing_out(
    anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    size = 4 * 1024 * 1024
    payload = bytes(range(256)) * (size // 256)
    high_water = 64 * 1024
    transports: list[RecordingTransport] = []
    made = http1._Connection.connection_made

    def connection_made(self: http1._Connection, transport: Any) -> None:
        transports.append(RecordingTransport(transport))
        made(self, transports[-1])  # type: ignore[arg-type]

    monkeypatch.setattr(http1._Connection, "connection_made", connection_made)
    async with raw_server(answering(OK_HEAD + b"content-length: %d\r\n\r\n" % size + payload)) as s:
        client = http1.Client(idle_timeout=0.2, high_water=high_water)
        response = await client.post(origin(s.port), request_head(b"{}"), b"{}")
        (transport,) = transports
        async with asyncio.timeout(5):
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


# --- TLS, IPv6, the provider's transports -------------------------------------------------------


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1, and its key."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_https_with_reuse(anyio_backend: str, certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    answer = OK_HEAD + b"transfer-encoding: chunked\r\n\r\n" + chunked(SSE)
    async with raw_server(answering(answer, answer), ssl=server_context) as s:
        https = http1.Origin("https", "localhost", s.port)
        client = http1.Client(ssl_context=ssl.create_default_context(cafile=str(cert)))
        for _ in range(2):
            response = await client.post(https, request_head(b"{}"), b"{}")
            assert await read_all(response) == SSE
            response.close()
        client.close()
        untrusted = http1.Client()
        with pytest.raises(http1.ConnectError, match="certificate verify failed"):
            await untrusted.post(https, request_head(b"{}"), b"{}")
        untrusted.close()
    assert [index for index, _ in s.requests] == [0, 0]


async def test_ipv6_base_url(anyio_backend: str) -> None:
    upstream = FakeUpstream()
    try:
        await upstream.start("::1")
    except OSError:
        pytest.skip("no IPv6 loopback")
    async with upstream:
        provider = OpenAIProvider(base_url=upstream.base_url)
        assert provider._direct is not None
        deltas = [d async for d in provider.stream(MESSAGES, "fake-tokens-3", GenerationParams())]
        await provider.aclose()
    assert "".join(d.text for d in deltas) == "".join(generated_tokens(3))
    assert upstream.requests[0].headers["host"] == f"[::1]:{upstream.port}"


async def test_userinfo_is_sent_as_basic_auth_as_httpx_does(anyio_backend: str) -> None:
    async with FakeUpstream() as upstream:
        url = f"http://us%20er:p%40ss@127.0.0.1:{upstream.port}/v1"
        direct = OpenAIProvider(base_url=url, api_key="sk-key")
        async with httpx.AsyncClient() as client:
            through_httpx = OpenAIProvider(base_url=url, api_key="sk-key", client=client)
            for provider in (direct, through_httpx):
                [d async for d in provider.stream(MESSAGES, "fake-tokens-1", GenerationParams())]
                await provider.aclose()
    first, second = (r.headers for r in upstream.requests)
    assert first["authorization"] == second["authorization"] == "Basic dXMgZXI6cEBzcw=="
    assert first["host"] == second["host"]
    assert first["authorization"] == "Basic " + base64.b64encode(b"us er:p@ss").decode()
    assert "p@ss" not in repr(direct)
    assert "p%40ss" not in repr(direct)


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


async def test_a_proxy_from_the_environment_is_used_through_httpx(
    anyio_backend: str, no_proxy_env: pytest.MonkeyPatch
) -> None:
    answer = OK_HEAD + b"transfer-encoding: chunked\r\n\r\n" + chunked(SSE)
    async with raw_server(answering(answer)) as proxy, FakeUpstream() as upstream:
        no_proxy_env.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
        proxied = OpenAIProvider(base_url="http://upstream.invalid/v1")
        no_proxy_env.setenv("NO_PROXY", "127.0.0.1")
        bypassing = OpenAIProvider(base_url=upstream.base_url)
        assert proxied._direct is None
        assert bypassing._direct is not None
        for provider, text in ((proxied, "hi"), (bypassing, "Streaming")):
            deltas = [d async for d in provider.stream(MESSAGES, "m", GenerationParams())]
            assert deltas[0].text.startswith(text)
            await provider.aclose()
    assert len(proxy.requests) == 1
    assert proxy.requests[0][1].startswith(b"POST http://upstream.invalid/v1/chat/completions ")
    assert len(upstream.requests) == 1


async def test_proxied_streams_are_spread_over_httpx_shards(
    anyio_backend: str, no_proxy_env: pytest.MonkeyPatch
) -> None:
    # httpcore's pool gets slow with many connections (see providers.openai): through a proxy,
    # 70 concurrent streams must still be spread over three httpx clients of 32 streams.
    answer = OK_HEAD + b"transfer-encoding: chunked\r\n\r\n" + chunked(SSE)
    streams = 70
    all_in = asyncio.Event()

    async def held_until_all_arrived(
        server: RawServer, index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while await server.read_request(index, reader) is not None:
            if len(server.requests) == streams:
                all_in.set()
            await all_in.wait()
            writer.write(answer)

    async with raw_server(held_until_all_arrived, backlog=streams) as proxy:
        no_proxy_env.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
        provider = OpenAIProvider(base_url="http://upstream.invalid/v1")
        results: list[list[Delta]] = [[] for _ in range(streams)]
        try:
            await asyncio.gather(*(drain_into(got, provider) for got in results))
            assert all(got == [Delta("hi")] for got in results)
            assert len(provider._shards) == 3
        finally:
            await provider.aclose()
    assert len(proxy.requests) == len(proxy.closed) == streams


async def test_provider_errors_through_http1(anyio_backend: str) -> None:
    async with FakeUpstream(Scenario(tokens=5, stall_after=1)) as upstream:
        provider = OpenAIProvider(base_url=upstream.base_url, idle_timeout=0.2, max_retries=0)
        got: list[Delta] = []
        with pytest.raises(ProviderTimeoutError, match=r"nothing for 0\.2 s after the answer"):
            await drain_into(got, provider)
        await provider.aclose()
        with pytest.raises(ProviderError, match="closed"):
            await provider.stream(MESSAGES, "m", GenerationParams()).__anext__()
    assert len(got) == 1
