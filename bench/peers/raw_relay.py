"""A benchmark peer: the barest relay Python can be, to show what a Python server can reach here.

No framework, no task per stream, no timer per token: uvloop, ``httptools`` to parse the client's
request and the upstream's chunked response, ``orjson`` for each chunk, and the upstream
protocol writes ``data: <content>`` straight into the client's transport. Not a product (no
timeouts, no retries, no heartbeats, no back-pressure): a floor to measure ssechat against.

    OPENAI_BASE_URL=http://127.0.0.1:UP/v1 python bench/peers/raw_relay.py --port P

``GET /chat?message=..&model=..`` streams the answer as the tutorial does; ``GET /health``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from urllib.parse import parse_qs, urlsplit

import httptools
import orjson
import uvloop

HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)
DONE = b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n"


class Upstream(asyncio.Protocol):
    """One upstream request; its chunks go straight to the client's transport."""

    def __init__(self, client: asyncio.Transport, request: bytes) -> None:
        self.client = client
        self.request = request
        self.parser = httptools.HttpResponseParser(self)
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        buffer = self.buffer + body if self.buffer else body
        out = []
        start = 0
        while (end := buffer.find(b"\n\n", start)) >= 0:
            frame = buffer[start:end]
            start = end + 2
            if frame == b"data: [DONE]":
                continue
            choices = orjson.loads(frame[6:]).get("choices")
            if choices and (content := (choices[0].get("delta") or {}).get("content")):
                piece = b"data: " + content.encode() + b"\n\n"
                out.append(b"%x\r\n%b\r\n" % (len(piece), piece))
        self.buffer = buffer[start:]
        if out and not self.client.is_closing():
            self.client.write(b"".join(out))

    def on_message_complete(self) -> None:
        if not self.client.is_closing():
            self.client.write(DONE)
            self.client.close()
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.client.is_closing():
            self.client.close()


class Client(asyncio.Protocol):
    """One client connection, one request."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.upstream: asyncio.Transport | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_message_complete(self) -> None:
        assert self.transport is not None
        parts = urlsplit(self.url.decode())
        if parts.path == "/health":
            self.transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            return
        query = parse_qs(parts.query)
        body = orjson.dumps(
            {
                "model": query.get("model", ["fake-tokens-20"])[0],
                "messages": [{"role": "user", "content": query.get("message", ["hi"])[0]}],
                "stream": True,
            }
        )
        request = (
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: %b:%d\r\ncontent-type: application/json"
            b"\r\naccept: text/event-stream\r\ncontent-length: %d\r\n\r\n%b"
            % (self.host.encode(), self.port, len(body), body)
        )
        self.transport.write(HEAD)
        asyncio.get_running_loop().create_task(self.open(request))

    async def open(self, request: bytes) -> None:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        client = self.transport
        transport, _ = await loop.create_connection(
            lambda: Upstream(client, request), self.host, self.port
        )
        self.upstream = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if self.upstream is not None:
            self.upstream.close()


async def serve(port: int) -> None:
    base = urlsplit(os.environ["OPENAI_BASE_URL"])
    host, upstream_port = base.hostname or "127.0.0.1", base.port or 80
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: Client(host, upstream_port), "127.0.0.1", port, backlog=4096
    )
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8400)
    uvloop.run(serve(parser.parse_args().port))
