"""kill -9 of the server mid-run: after a restart the partial answer is there, `interrupted`."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from ssechat.fake_upstream import FakeUpstream, Scenario
from ssechat.sse import EventDecoder

from .server_process import ssechat_serve

pytestmark = pytest.mark.real_server

ANSWER = " ".join(f"word{i}" for i in range(400))


def saved_row(db: Path, message_id: str) -> tuple[str, str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        row = conn.execute(
            "SELECT status, content FROM messages WHERE id = ?", (message_id,)
        ).fetchone()
    finally:
        conn.close()
    return (str(row[0]), str(row[1])) if row else ("", "")


def saved_content(db: Path, message_id: str) -> str:
    return saved_row(db, message_id)[1]


def test_kill_9_mid_run_leaves_the_partial_answer_marked_interrupted(tmp_path: Path) -> None:
    db = tmp_path / "chat.db"
    with FakeUpstream.running_in_thread(Scenario(text=ANSWER, rate=50)) as upstream:
        env = {
            "SSECHAT_DATABASE_URL": str(db),
            "OPENAI_BASE_URL": upstream.base_url,
            "SSECHAT_MODEL": "gpt-test",
            "SSECHAT_PERSIST_INTERVAL": "0.1",
        }
        with ssechat_serve(env, tmp_path) as server:
            client = httpx.Client(base_url=server.base_url, timeout=10)
            cid = client.post("/api/conversations", json={}).json()["id"]
            run = client.post(f"/api/conversations/{cid}/messages", json={"content": "go"}).json()
            decoder = EventDecoder()
            deltas = 0
            with client.stream("GET", run["events_url"]) as response:
                for chunk in response.iter_raw():
                    deltas += sum(e.type == "delta" for e in decoder.feed(chunk))
                    if deltas >= 10:
                        break
            # Wait for a batch save to reach the file, then kill without any shutdown code.
            deadline = time.monotonic() + 10
            while not saved_content(db, run["message_id"]):
                assert time.monotonic() < deadline, "no partial answer was ever saved"
                time.sleep(0.02)
            server.kill()
            client.close()

        with ssechat_serve(env, tmp_path) as server:
            saved = httpx.get(f"{server.base_url}/api/conversations/{cid}").json()
    answer = next(m for m in saved["messages"] if m["id"] == run["message_id"])
    assert answer["status"] == "interrupted"
    assert answer["content"]
    assert ANSWER.startswith(answer["content"])
    assert len(answer["content"]) < len(ANSWER)
    assert answer["run_id"] is None


def test_a_graceful_shutdown_mid_run_saves_the_answer_as_interrupted(tmp_path: Path) -> None:
    db = tmp_path / "chat.db"
    with FakeUpstream.running_in_thread(Scenario(text=ANSWER, rate=50)) as upstream:
        env = {
            "SSECHAT_DATABASE_URL": str(db),
            "OPENAI_BASE_URL": upstream.base_url,
            "SSECHAT_MODEL": "gpt-test",
        }
        with ssechat_serve(env, tmp_path) as server:
            client = httpx.Client(base_url=server.base_url, timeout=10)
            cid = client.post("/api/conversations", json={}).json()["id"]
            run = client.post(f"/api/conversations/{cid}/messages", json={"content": "go"}).json()
            with client.stream("GET", run["events_url"]) as response:
                decoder = EventDecoder()
                for chunk in response.iter_raw():
                    if any(e.type == "delta" for e in decoder.feed(chunk)):
                        break
            client.close()
            server.proc.terminate()  # SIGTERM: the lifespan's end runs
            server.proc.wait(timeout=15)  # uvicorn re-raises SIGTERM once it has shut down
        # Before any restart (which would mark it too), the file already says "interrupted".
        status, content = saved_row(db, run["message_id"])
    assert status == "interrupted"
    assert content
    assert ANSWER.startswith(content)
