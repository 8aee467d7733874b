"""``python -m ssechat.fake_upstream``: run the fake upstream on its own, for benchmarks and demos.

It prints its base URL, then serves until interrupted. It must never be pointed at by a
production deployment: it answers with made-up text.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Sequence

from ssechat.fake_upstream.scenario import parse_model
from ssechat.fake_upstream.server import FakeUpstream


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ssechat.fake_upstream",
        description="A fake OpenAI-compatible API; choose answers with fake-… model names.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9100, help="port (default 9100; 0: any)")
    parser.add_argument("--fixtures", help="directory of recorded .sse streams to replay")
    parser.add_argument(
        "--default",
        default="fake-tokens-20",
        help="the scenario, as a fake- model name, for requests naming any other model",
    )
    args = parser.parse_args(argv)
    try:
        default = parse_model(args.default)
    except ValueError as exc:
        parser.error(str(exc))
    if default is None:
        parser.error("--default must be a fake- model name, e.g. fake-tokens-20@20")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(FakeUpstream(default, fixtures_dir=args.fixtures), args))
    return 0


async def _serve(upstream: FakeUpstream, args: argparse.Namespace) -> None:
    await upstream.start(args.host, args.port)
    print(f"fake upstream on {upstream.base_url}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await upstream.stop()


if __name__ == "__main__":
    raise SystemExit(main())
