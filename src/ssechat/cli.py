"""The ``ssechat`` command line: ``ssechat serve`` starts the server.

It must never contain server logic: it parses flags into ``Settings`` and hands them on.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ssechat import __version__
from ssechat.config import Settings

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ssechat", description=__doc__)
    parser.add_argument("--version", action="version", version=f"ssechat {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="start the chat server")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8000)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env(host=args.host, port=args.port)
    except ValueError as exc:
        print(f"ssechat: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        return serve(settings)
    return 2  # pragma: no cover - argparse rejects unknown commands


def serve(settings: Settings) -> int:
    import uvicorn

    from ssechat.api import create_app

    print(f"ssechat {__version__} listening on http://{settings.host}:{settings.port}", flush=True)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=5,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
