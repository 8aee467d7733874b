"""kill -9 of the server mid-run: after a restart the partial answer is there, `interrupted`.

The upstream sends the first words of its answer and then stalls until the server leaves, so
"mid-run" does not depend on how fast this machine is: the partial answer is exactly those words.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import httpx
import pytest

from ssechat.fake_upstream import FakeUpstream, Scenario
from ssechat.fake_upstream.wire import word_tokens
from ssechat.sse import EventDecoder

from .server_process import poll_until, ssechat_serve

pytestmark = pytest.mark.real_server

ANSWER = " ".join(f"word{i}" for i in range(400))
SENT = 20
STALLED = Scenario(
    text=ANSWER, stall_after=SENT
)  # silent after SENT words, until the client leaves
PARTIAL = "".join(word_tokens(ANSWER)[:SENT])


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


def relay_the_partial_answer(client: httpx.Client, events_url: str) -> None:
    """Follow the run until every word the upstream sent before stalling has been relayed."""
    decoder = EventDecoder()
    text = ""
    with client.stream("GET", events_url) as response:
        for chunk in response.iter_raw():
            for event in decoder.feed(chunk):
                if event.type == "delta":
                    text += json.loads(event.data)["text"]
            if text == PARTIAL:
                return
    raise AssertionError(f"the stream ended having relayed {text!r}")


def test_kill_9_mid_run_leaves_the_partial_answer_marked_interrupted(tmp_path: Path) -> None:
    db = tmp_path / "chat.db"
    with FakeUpstream.running_in_thread(STALLED) as upstream:
        env = {
            "SSECHAT_DATABASE_URL": str(db),
            "OPENAI_BASE_URL": upstream.base_url,
            "SSECHAT_MODEL": "gpt-test",
            "SSECHAT_AUTH": "off",  # what is tested here is the store, not accounts
            "SSECHAT_PERSIST_INTERVAL": "0.1",
        }
        with ssechat_serve(env, tmp_path) as server:
            client = httpx.Client(base_url=server.base_url, timeout=30)
            cid = client.post("/api/conversations", json={}).json()["id"]
            run = client.post(f"/api/conversations/{cid}/messages", json={"content": "go"}).json()
            relay_the_partial_answer(client, run["events_url"])
            # Wait for a batch save of those words to reach the file (another process writes
            # it: polled), then kill without any shutdown code.
            poll_until(
                lambda: saved_content(db, run["message_id"]) == PARTIAL,
                "the partial answer saved to the file",
            )
            server.kill()
            client.close()

        with ssechat_serve(env, tmp_path) as server:
            saved = httpx.get(f"{server.base_url}/api/conversations/{cid}").json()
    answer = next(m for m in saved["messages"] if m["id"] == run["message_id"])
    assert answer["status"] == "interrupted"
    assert answer["content"] == PARTIAL
    assert answer["run_id"] is None


def test_a_graceful_shutdown_mid_run_saves_the_answer_as_interrupted(tmp_path: Path) -> None:
    db = tmp_path / "chat.db"
    with FakeUpstream.running_in_thread(STALLED) as upstream:
        env = {
            "SSECHAT_DATABASE_URL": str(db),
            "OPENAI_BASE_URL": upstream.base_url,
            "SSECHAT_MODEL": "gpt-test",
            "SSECHAT_AUTH": "off",  # what is tested here is the store, not accounts
        }
        with ssechat_serve(env, tmp_path) as server:
            client = httpx.Client(base_url=server.base_url, timeout=30)
            cid = client.post("/api/conversations", json={}).json()["id"]
            run = client.post(f"/api/conversations/{cid}/messages", json={"content": "go"}).json()
            relay_the_partial_answer(client, run["events_url"])
            client.close()
            server.proc.terminate()  # SIGTERM: the lifespan's end runs
            server.proc.wait(timeout=15)  # uvicorn re-raises SIGTERM once it has shut down
        # Before any restart (which would mark it too), the file already says "interrupted".
        status, content = saved_row(db, run["message_id"])
    assert status == "interrupted"
    assert content == PARTIAL
