"""`ssechat chat` against a real `ssechat serve`: the answer streams into a terminal."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from .server_process import BIN, ssechat_serve

pytestmark = pytest.mark.real_server


def test_chat_streams_into_a_terminal_then_continues_the_conversation(tmp_path: Path) -> None:
    env = {
        "SSECHAT_DATABASE_URL": str(tmp_path / "chat.db"),
        "SSECHAT_DEMO_TOKENS_PER_SECOND": "80",
    }
    with ssechat_serve(env, tmp_path) as server:
        controller, terminal = pty.openpty()
        proc = subprocess.Popen(
            [str(BIN), "chat", "What is SSE?", "--url", server.base_url],
            stdout=terminal,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.close(terminal)
        shown = b""
        streamed_while_running = False
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([controller], [], [], 1.0)
                if not ready:
                    continue
                try:
                    chunk = os.read(controller, 4096)
                except OSError:  # the terminal closed: the command is done
                    break
                if not chunk:
                    break
                shown += chunk
                if len(shown) > 20 and proc.poll() is None:
                    streamed_while_running = True
            _, err = proc.communicate(timeout=30)
        finally:
            os.close(controller)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, err
        assert streamed_while_running, "the answer only appeared once the command had ended"
        cid = err.strip().rsplit(" ", 1)[-1]

        second = subprocess.run(
            [str(BIN), "chat", "And again?", "--url", server.base_url, "--conversation", cid],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert second.returncode == 0, second.stderr
        saved = httpx.get(f"{server.base_url}/api/conversations/{cid}").json()

    contents = [m["content"] for m in saved["messages"]]
    assert contents[0] == "What is SSE?"
    # A terminal turns each LF into CRLF.
    assert shown.decode().replace("\r\n", "\n") == contents[1]
    assert "OPENAI_API_KEY" in contents[1]
    assert contents[2] == "And again?"
    assert contents[3] == second.stdout
    assert [m["role"] for m in saved["messages"]] == ["user", "assistant", "user", "assistant"]
