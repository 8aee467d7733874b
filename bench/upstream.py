"""``python -m bench.upstream --port P``: ssechat's fake upstream, served fairly on uvloop.

The same ``FakeUpstream`` as ``python -m ssechat.fake_upstream`` (same wire bytes, same model-name
scenarios), with two changes that only matter to a benchmark:

- it runs on uvloop, which lowers its cost per token: the upstream shares a CPU with the load
  generator and must not become the bottleneck;
- each connection's kernel send buffer is capped at ``SNDBUF`` bytes. An unpaced stream only
  yields the event loop when a write would block, and loopback's send buffers grow to megabytes:
  without the cap one stream writes tens of thousands of tokens before the next one starts, so
  "100 concurrent streams" would in fact run one after another.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket

import uvloop

from ssechat.fake_upstream import FakeUpstream, parse_model

SNDBUF = 64 * 1024


class FairUpstream(FakeUpstream):
    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SNDBUF)
        writer.transport.set_write_buffer_limits(high=SNDBUF // 4)
        await super()._on_connect(reader, writer)


async def _serve(port: int, default: str) -> None:
    upstream = FairUpstream(parse_model(default))
    await upstream.start("127.0.0.1", port)
    print(f"fake upstream (uvloop) on {upstream.base_url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await upstream.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.upstream")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--default", default="fake-tokens-20")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(_serve(args.port, args.default))


if __name__ == "__main__":
    main()
