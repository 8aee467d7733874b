"""The ``import`` scenario: ``POST /api/import`` of a ~100 MB ChatGPT export, as JSON and as
its zip, into a fresh server on SQLite and on PostgreSQL: how long it takes, and the server's
memory while it reads.

The export is written once per run by ``bench.exports.write_chatgpt_export`` (deterministic,
streamed to a file). For each database and each form, a server is started afresh; its RSS is
read (``VmRSS``), its peak is reset (``echo 5 > /proc/PID/clear_refs``, which sets ``VmHWM`` to
the current RSS), the file is posted streaming from disk (``socket.sendfile``: the load
generator never holds it in memory), and when the answer has come the peak (``VmHWM``) is read.
Reported: seconds from the first byte sent to the whole answer, MB/s and conversations/s, RSS
before and the peak during, per database and form. The answer must be 200 with every
conversation imported and none skipped, else it counts as an error.

The server's own process only: on PostgreSQL the database's memory is not in these figures.
Like every scenario it starts its own servers and only talks to 127.0.0.1; it never changes the
server's code or settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.exports import write_chatgpt_export
from bench.procs import HOST, loadavg
from bench.scenarios import Bench
from bench.stats import rnd

__all__ = ["ImportSizes", "importing", "post_file", "status_kib"]

ANSWER_WITHIN = 900.0  # seconds: a slow import on a busy machine is a figure, not a hang


@dataclass(frozen=True, slots=True)
class ImportSizes:
    conversations: int
    messages: int  # per conversation
    chars: int  # per message


def status_kib(pid: int, field: str) -> int | None:
    """A ``kB`` field of ``/proc/PID/status`` (``VmRSS``, ``VmHWM``), in KiB."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


def reset_peak(pid: int) -> bool:
    """Reset the process's peak RSS to its current RSS; False where the kernel refuses."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def post_file(
    port: int, path: str, file: Path, headers: dict[str, str]
) -> tuple[int, bytes, float]:
    """POST ``file`` to ``path`` streaming it from disk; (status, body, seconds from the first
    byte sent to the end of the answer). Blocking: run it in a thread."""
    size = file.stat().st_size
    head = [f"POST {path} HTTP/1.1", f"Host: {HOST}:{port}", f"Content-Length: {size}",
            "Content-Type: application/octet-stream", "Connection: close",
            *(f"{k}: {v}" for k, v in headers.items())]  # fmt: skip
    with socket.create_connection((HOST, port), timeout=ANSWER_WITHIN) as sock:
        started = time.perf_counter()
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        # Answered before the end (413, 400): the answer says why.
        with file.open("rb") as upload, contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendfile(upload)
        chunks = []
        while chunk := sock.recv(1 << 16):
            chunks.append(chunk)
        seconds = time.perf_counter() - started
    answer = b"".join(chunks)
    head_end = answer.find(b"\r\n\r\n")
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0
    body = answer[head_end + 4 :] if head_end >= 0 else b""
    if b"transfer-encoding: chunked" in answer[:head_end].lower():
        body = _unchunk(body)
    return status, body, seconds


def _unchunk(body: bytes) -> bytes:
    out, at = bytearray(), 0
    while True:
        line_end = body.find(b"\r\n", at)
        if line_end < 0:
            return bytes(out)
        size = int(body[at:line_end].split(b";")[0], 16)
        if size == 0:
            return bytes(out)
        out += body[line_end + 2 : line_end + 2 + size]
        at = line_end + 2 + size + 2


async def _one(bench: Bench, name: str, file: Path, conversations: int) -> dict[str, Any]:
    with bench.peer(name) as peer:
        assert peer.stat is not None
        pid = peer.stat.pid
        rss = status_kib(pid, "VmRSS")
        reset = reset_peak(pid)
        status, body, seconds = await asyncio.to_thread(
            post_file, peer.port, "/api/import", file, peer.auth
        )
        peak = status_kib(pid, "VmHWM")
    size = await asyncio.to_thread(lambda: file.stat().st_size)
    error = ""
    if status != 200:
        error = f"HTTP {status}: {body[:200]!r}"
    else:
        answer = orjson.loads(body)
        if (answer.get("imported"), answer.get("skipped")) != (conversations, 0):
            error = f"imported {answer.get('imported')}, skipped {answer.get('skipped')}"
    return {
        "bytes": size,
        "seconds": rnd(seconds, 2),
        "mb_per_s": rnd(size / 1e6 / seconds, 2) if seconds > 0 else None,
        "conversations_per_s": rnd(conversations / seconds, 1) if seconds > 0 else None,
        "rss_before_mib": rnd(rss / 1024, 1) if rss is not None else None,
        "peak_rss_mib": rnd(peak / 1024, 1) if peak is not None and reset else None,
        "peak_over_before_mib": rnd((peak - rss) / 1024, 1)
        if peak is not None and rss is not None and reset
        else None,
        "errors": 1 if error else 0,
        "error_examples": [error] if error else [],
        "loadavg": loadavg(),
    }


async def importing(bench: Bench, names: list[str], sizes: ImportSizes) -> dict[str, Any]:
    """The scenario on each peer of ``names`` (``ssechat``: SQLite, ``ssechat-pg``)."""
    folder = bench.work / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    files = {"json": folder / "conversations.json", "zip": folder / "chatgpt-export.zip"}
    written = {}
    for form, path in files.items():
        started = time.perf_counter()
        size = await asyncio.to_thread(
            write_chatgpt_export,
            path,
            conversations=sizes.conversations,
            messages=sizes.messages,
            chars=sizes.chars,
            as_zip=form == "zip",
        )
        written[form] = {"bytes": size, "written_in_s": rnd(time.perf_counter() - started, 1)}
    out: dict[str, Any] = {"sizes": asdict(sizes), "files": written, "runs": {}}
    for name in names:
        database = "SQLite" if name == "ssechat" else "PostgreSQL"
        for form, path in files.items():
            await bench.wait_quiet()
            run = await _one(bench, name, path, sizes.conversations)
            run["database"] = database
            out["runs"][f"{name} {form}"] = run
            bench.say(
                f"import {form} on {database}: {run['seconds']} s ({run['mb_per_s']} MB/s), "
                f"RSS {run['rss_before_mib']} -> peak {run['peak_rss_mib']} MiB; "
                f"errors={run['errors']}"
            )
    out["errors"] = sum(r["errors"] for r in out["runs"].values())
    for path in files.values():
        path.unlink(missing_ok=True)
    return out
