"""A real MCP server, written with the official ``mcp`` SDK, for the tool tests.

    python tests/mcp_test_server.py stdio
    python tests/mcp_test_server.py http --port N      (Streamable HTTP at http://127.0.0.1:N/mcp)

Tools: ``echo`` (the text back), ``slow`` (waits, then answers), ``fail`` (raises: an MCP error
result), ``xss`` (Markdown holding every payload of one list of ``shared/fixtures/xss``, raw) and
``crash`` (the process exits at once, mid-call).

When ``SSECHAT_TEST_MCP_MARKS`` names a directory, every call leaves a file there as it starts
(``<tool>-started-<n>``) and ``slow`` one more when its call is cancelled (``slow-cancelled-<n>``),
so that a test can await what happened at the server instead of sleeping and hoping; ``n`` is the
process id and a counter, unique across restarts of the server.

This file is a test fixture: it must never be imported by ssechat itself.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
from pathlib import Path

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

REPO = Path(__file__).resolve().parents[1]
DEFAULT_XSS_DIR = REPO.parent / "shared" / "fixtures" / "xss"

server = MCPServer("ssechat-test", log_level="WARNING")
_calls = itertools.count(1)


def _mark(name: str) -> str:
    """Leave ``<name>-<n>`` in the marks directory (if any); returns the ``n`` used."""
    n = f"{os.getpid()}-{next(_calls)}"
    marks = os.environ.get("SSECHAT_TEST_MCP_MARKS")
    if marks:
        # Written then renamed, so a poller never sees a half-made mark.
        path = Path(marks) / f"{name}-{n}"
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(n)
        tmp.rename(path)
    return n


@server.tool()
async def echo(text: str) -> str:
    """Return the text, unchanged."""
    _mark("echo-started")
    return text


@server.tool()
async def slow(seconds: float = 60) -> str:
    """Wait the given number of seconds, then say so."""
    n = _mark("slow-started")
    try:
        await anyio.sleep(seconds)
    except anyio.get_cancelled_exc_class():
        marks = os.environ.get("SSECHAT_TEST_MCP_MARKS")
        if marks:
            (Path(marks) / f"slow-cancelled-{n}").write_text(n)
        raise
    return f"slept {seconds:g} s"


@server.tool()
async def fail(message: str = "it failed") -> str:
    """Raise: the caller gets an error result holding the message."""
    _mark("fail-started")
    # A ToolError's message reaches the caller; any other exception is masked by the SDK.
    raise ToolError(message)


@server.tool()
def xss(list: str = "XSS_Polyglots") -> str:
    """Markdown holding every payload of one XSS list, one per line, raw."""
    # Synchronous: the SDK runs it in a worker thread, so its file reads never block the loop.
    _mark("xss-started")
    folder = Path(os.environ.get("SSECHAT_TEST_XSS_DIR", DEFAULT_XSS_DIR))
    names = sorted(p.stem for p in folder.glob("*.txt"))
    if list not in names:
        raise ToolError(f"unknown list {list!r}; one of: {', '.join(names)}")
    payloads = (folder / f"{list}.txt").read_text(encoding="utf-8", errors="replace")
    lines = [line for line in payloads.splitlines() if line.strip()]
    return f"# {list}\n\n" + "\n".join(lines) + "\n"


@server.tool()
async def crash() -> str:
    """Exit the whole process at once, in the middle of the call."""
    _mark("crash-started")
    sys.stdout.flush()
    os._exit(3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("transport", choices=["stdio", "http"])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    if args.transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
