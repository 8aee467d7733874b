"""A big import is read streaming, in bounded memory, measured: a real ``ssechat serve`` is sent
a ~40 MB ChatGPT export (streamed from disk, so the client's memory does not matter), and the
server's peak resident memory (VmHWM, reset just before through /proc/<pid>/clear_refs) grows by
less than half the file's size. Reading the body whole, or parsing it whole, would grow it by
more than the file (the bytes, then their parsed objects several times over)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from bench.exports import write_chatgpt_export

from .server_process import ServerProcess, ssechat_serve

pytestmark = pytest.mark.real_server

CONVERSATIONS = 1400
MESSAGES = 20  # per conversation: 28 000 messages of about 800 characters


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])  # "VmHWM:   123456 kB"
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def _import(server: ServerProcess, path: Path) -> dict[str, object]:
    with path.open("rb") as body, httpx.Client(timeout=600) as client:
        answer = client.post(f"{server.base_url}/api/import", content=body)
    assert answer.status_code == 200, answer.text
    result: dict[str, object] = answer.json()
    return result


def test_a_40_mb_import_grows_the_servers_peak_memory_by_less_than_half_the_file(
    tmp_path: Path,
) -> None:
    warm = tmp_path / "warm.json"
    write_chatgpt_export(warm, conversations=20, messages=4, chars=200, seed=1)
    big = tmp_path / "conversations.json"
    size = write_chatgpt_export(
        big, conversations=CONVERSATIONS, messages=MESSAGES, chars=800, seed=2
    )
    assert size > 35 * 1024 * 1024
    env = {"SSECHAT_AUTH": "off"}
    with ssechat_serve(env, tmp_path, args=("--db", str(tmp_path / "chat.db"))) as server:
        pid = server.proc.pid
        clear_refs = Path(f"/proc/{pid}/clear_refs")
        try:
            clear_refs.write_text("5")
        except OSError as error:
            pytest.skip(f"cannot reset the server's peak RSS ({clear_refs}: {error.strerror})")
        # A small import first: what every import loads once (modules, threads, the database's
        # pages) is then in the baseline, not counted as the big file's.
        assert _import(server, warm)["imported"] == 20
        before = _status_kib(pid, "VmRSS")
        clear_refs.write_text("5")  # VmHWM := the current RSS
        result = _import(server, big)
        peak = _status_kib(pid, "VmHWM")
    assert result["imported"] == CONVERSATIONS
    assert result["skipped"] == 0
    growth = (peak - before) * 1024
    print(
        f"\nimport of {size / 1e6:.1f} MB ({CONVERSATIONS} conversations, "
        f"{CONVERSATIONS * MESSAGES} messages): RSS before {before / 1024:.1f} MiB, "
        f"peak {peak / 1024:.1f} MiB, growth {growth / 1e6:.1f} MB "
        f"({100 * growth / size:.0f}% of the file)"
    )
    assert growth < size / 2
