"""ssechat.cli: `ssechat serve` as a real process, flags and errors."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from ssechat.cli import main

from .server_process import free_port, ssechat_serve


@pytest.mark.real_server
def test_serve_with_no_key_answers_health_with_the_demo_model(tmp_path: Path) -> None:
    db = tmp_path / "chat.db"
    with ssechat_serve({}, tmp_path, args=("--db", str(db))) as server:
        health = httpx.get(f"{server.base_url}/api/health").json()
        models = httpx.get(f"{server.base_url}/api/models").json()
    assert health["status"] == "ok"
    assert health["demo"] is True
    assert models["default"] == "demo"
    assert db.exists()


def test_bad_env_setting_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SSECHAT_PORT", "eighty")
    assert main(["serve"]) == 2
    assert "SSECHAT_PORT='eighty' is not a valid int" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("ssechat ")


def test_chat_without_a_server_says_how_to_start_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    port = free_port()  # nothing listens there
    assert main(["chat", "hello", "--url", f"http://127.0.0.1:{port}"]) == 1
    assert "start one with `ssechat serve`" in capsys.readouterr().err
