"""`ssechat chat` against a real `ssechat serve`: the answer streams into a terminal, signed with
an API key (from --api-key or SSECHAT_API_KEY); without one it says how to get one."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from ssechat.cli import NEEDS_KEY

from .server_process import BIN, clean_env, ssechat_serve

pytestmark = pytest.mark.real_server

ADMIN = {"email": "admin@example.com", "password": "correct horse battery"}


def make_key(base_url: str) -> str:
    """Sign in as the admin and make an API key, as a person would in the web UI."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        assert client.post("/api/auth/login", json=ADMIN).status_code == 200
        created = client.post("/api/keys", json={"name": "terminal"})
        assert created.status_code == 201, created.text
        return str(created.json()["key"])


def test_chat_streams_into_a_terminal_then_continues_the_conversation(tmp_path: Path) -> None:
    env = {
        "SSECHAT_DATABASE_URL": str(tmp_path / "chat.db"),
        "SSECHAT_DEMO_TOKENS_PER_SECOND": "80",
        "SSECHAT_ADMIN_EMAIL": ADMIN["email"],
        "SSECHAT_ADMIN_PASSWORD": ADMIN["password"],
    }
    with ssechat_serve(env, tmp_path) as server:
        key = make_key(server.base_url)
        controller, terminal = pty.openpty()
        proc = subprocess.Popen(
            [str(BIN), "chat", "What is SSE?", "--url", server.base_url, "--api-key", key],
            env=clean_env(),
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

        # The key from the environment this time.
        second = subprocess.run(
            [str(BIN), "chat", "And again?", "--url", server.base_url, "--conversation", cid],
            env=clean_env(SSECHAT_API_KEY=key),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert second.returncode == 0, second.stderr
        saved = httpx.get(
            f"{server.base_url}/api/conversations/{cid}", headers={"Authorization": f"Bearer {key}"}
        ).json()

    contents = [m["content"] for m in saved["messages"]]
    assert contents[0] == "What is SSE?"
    # A terminal turns each LF into CRLF.
    assert shown.decode().replace("\r\n", "\n") == contents[1]
    assert "OPENAI_API_KEY" in contents[1]
    assert contents[2] == "And again?"
    assert contents[3] == second.stdout
    assert [m["role"] for m in saved["messages"]] == ["user", "assistant", "user", "assistant"]


def test_chat_without_a_key_says_how_to_make_one(tmp_path: Path) -> None:
    env = {
        "SSECHAT_DATABASE_URL": str(tmp_path / "chat.db"),
        "SSECHAT_ADMIN_EMAIL": ADMIN["email"],
        "SSECHAT_ADMIN_PASSWORD": ADMIN["password"],
    }
    with ssechat_serve(env, tmp_path) as server:
        without = subprocess.run(
            [str(BIN), "chat", "Hello?", "--url", server.base_url],
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        wrong = subprocess.run(
            [str(BIN), "chat", "Hello?", "--url", server.base_url, "--api-key", "ssk_wrong"],
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        with httpx.Client(base_url=server.base_url) as client:
            assert client.post("/api/auth/login", json=ADMIN).status_code == 200
            conversations = client.get("/api/conversations").json()["conversations"]
    assert without.returncode == 1
    assert NEEDS_KEY in without.stderr
    assert "--api-key" in without.stderr
    assert "SSECHAT_API_KEY" in without.stderr
    assert wrong.returncode == 1
    assert "401" in wrong.stderr
    assert "check the API key" in wrong.stderr
    assert "ssk_wrong" not in wrong.stderr
    assert conversations == []  # nothing was made on anyone's behalf


def test_chat_notes_the_tool_steps_and_waits_for_the_web_uis_decision(
    tmp_path: Path, marks_dir: Path
) -> None:
    """A conversation that offers a tool: the terminal shows the call (and that it waits for
    Approve or Deny in the web UI), its decision and its result on stderr, and the answer that
    uses it on stdout, once the call is approved through the API."""
    import json

    from ssechat.fake_upstream import FakeUpstream

    from .mcp_support import stdio_entry, wait_tools

    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {"test": stdio_entry(marks_dir)}}))
    with FakeUpstream.running_in_thread() as upstream:
        env = {
            "SSECHAT_DATABASE_URL": str(tmp_path / "chat.db"),
            "SSECHAT_ADMIN_EMAIL": ADMIN["email"],
            "SSECHAT_ADMIN_PASSWORD": ADMIN["password"],
            "OPENAI_BASE_URL": upstream.base_url,
            "SSECHAT_MODEL": "fake-agent",
            "SSECHAT_MCP_CONFIG": str(config),
        }
        with ssechat_serve(env, tmp_path) as server:
            key = make_key(server.base_url)
            auth = {"Authorization": f"Bearer {key}"}
            with httpx.Client(base_url=server.base_url, timeout=30, headers=auth) as api:
                wait_tools(api, "test/echo")
                cid = api.post("/api/conversations", json={"tools": ["test/echo"]}).json()["id"]
                proc = subprocess.Popen(
                    [
                        str(BIN),
                        "chat",
                        "hi there",
                        "--url",
                        server.base_url,
                        "--api-key",
                        key,
                        "--conversation",
                        cid,
                    ],
                    env=clean_env(),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                try:
                    assert proc.stderr is not None
                    note = proc.stderr.readline() + proc.stderr.readline()
                    assert "[tool test/echo" in note
                    assert "approve or deny it in the web UI" in note
                    page = api.get(f"/api/conversations/{cid}").json()
                    answer = next(m for m in page["messages"] if m["run_id"])
                    call_id = answer["tool_calls"][0]["id"]
                    approved = api.post(
                        f"/api/runs/{answer['run_id']}/tool_calls/{call_id}/approve"
                    )
                    assert approved.status_code == 200, approved.text
                    out, err = proc.communicate(timeout=60)
                finally:
                    if proc.poll() is None:
                        proc.kill()
                        proc.wait()
    assert proc.returncode == 0, err
    assert out.strip() == "Tool said: hi there"
    assert "[approved]" in err
    assert "[tool done]" in err
