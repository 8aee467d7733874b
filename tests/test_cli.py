"""ssechat.cli: `ssechat serve` as a real process, flags and errors."""

from __future__ import annotations

import io
import re
from pathlib import Path

import httpx
import pytest

from ssechat.cli import main
from ssechat.config import Settings

from .server_process import free_port, poll_until, ssechat_serve


@pytest.mark.real_server
def test_serve_with_no_key_answers_health_with_the_demo_model(tmp_path: Path) -> None:
    db = tmp_path / "chat.db"
    with ssechat_serve({}, tmp_path, args=("--db", str(db))) as server:
        health = httpx.get(f"{server.base_url}/api/health").json()
        refused = httpx.get(f"{server.base_url}/api/models")
        link = poll_for_setup_link(tmp_path / "server.log")
        setup = httpx.post(
            f"{server.base_url}/api/auth/setup",
            json={
                "token": link.split("#token=", 1)[1],
                "email": "a@b.example",
                "password": "x" * 12,
            },
        )
        models = httpx.get(f"{server.base_url}/api/models", cookies=setup.cookies).json()
    assert health["status"] == "ok"
    assert health["demo"] is True
    assert refused.status_code == 401  # accounts are on by default, and nobody has signed in
    assert link.startswith(f"http://127.0.0.1:{server.port}/setup#token=")
    assert setup.status_code == 201, setup.text
    assert models["default"] == "demo"
    assert db.exists()


def poll_for_setup_link(log: Path) -> str:
    """The setup link ``ssechat serve`` prints while no account exists (its own output)."""
    found: list[str] = []

    def printed() -> bool:
        found[:] = re.findall(r"http://\S+/setup#token=\S+", log.read_text())
        return bool(found)

    poll_until(printed, "the setup link in the server's output")
    return found[-1]


def test_users_create_makes_the_first_admin_from_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "chat.db"
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert main(["users", "create", "Root@Example.com", "--admin", "--db", str(db)]) == 0
    assert "created admin account Root@Example.com" in capsys.readouterr().out
    # The same email in another case is the same account.
    monkeypatch.setattr("sys.stdin", io.StringIO("another long password\n"))
    assert main(["users", "create", "root@example.com", "--db", str(db)]) == 1
    assert "email" in capsys.readouterr().err
    # A short password is refused, and says why; nothing is printed of the password itself.
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["users", "create", "b@example.com", "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert "password" in err
    assert "short\n" not in err


def test_users_create_refuses_a_first_account_that_is_not_an_admin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert main(["users", "create", "a@example.com", "--db", str(tmp_path / "c.db")]) == 1
    assert "--admin" in capsys.readouterr().err


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


def test_several_workers_on_the_embedded_defaults_are_refused_with_what_to_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SSECHAT_DATABASE_URL", raising=False)
    monkeypatch.delenv("SSECHAT_REDIS_URL", raising=False)
    assert main(["serve", "--workers", "2", "--db", str(tmp_path / "chat.db")]) == 2
    err = capsys.readouterr().err
    assert "SSECHAT_DATABASE_URL=postgresql://" in err
    assert "SSECHAT_REDIS_URL=redis://" in err
    monkeypatch.setenv("SSECHAT_WORKERS", "3")  # the environment, as the flag
    assert main(["serve", "--db", str(tmp_path / "chat.db")]) == 2
    assert "3 workers need" in capsys.readouterr().err
    assert not (tmp_path / "chat.db").exists()  # refused before anything was opened


def test_serve_flags_reach_the_worker_processes_through_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What each worker builds (``create_worker_app`` from the environment it inherits) has
    the parent's flags, over the environment's values; the setup link is printed by the
    parent once. No server starts: uvicorn.run and the database step are stood in for."""
    import uvicorn
    from uvicorn.importer import import_from_string

    from ssechat import cli

    database = "postgresql://u:p@127.0.0.1:1/ssechat"
    for name, value in [("HOST", "0.0.0.0"), ("PORT", "1"), ("MODEL", "env-model")]:
        monkeypatch.setenv(f"SSECHAT_{name}", value)  # restored after the test
    monkeypatch.setenv("SSECHAT_DATABASE_URL", "postgresql://env@127.0.0.1:2/other")
    monkeypatch.setenv("SSECHAT_REDIS_URL", "redis://127.0.0.1:3/0")
    monkeypatch.setattr(cli, "_first_run", lambda settings: _token("the-token"))
    seen: dict[str, object] = {}

    def fake_run(app: object, **options: object) -> None:
        assert isinstance(app, str)
        assert options["factory"] is True
        worker_app = import_from_string(app)()
        seen.update(settings=worker_app.state.settings, workers=options["workers"])

    monkeypatch.setattr(uvicorn, "run", fake_run)
    argv = ["serve", "--workers", "2", "--host", "127.0.0.1", "--port", "8123"]
    assert main([*argv, "--db", database, "--model", "demo"]) == 0
    settings = seen["settings"]
    assert isinstance(settings, Settings)
    assert (settings.host, settings.port, settings.model) == ("127.0.0.1", 8123, "demo")
    assert settings.database_url == database
    assert seen["workers"] == 2
    out = capsys.readouterr().out
    assert out.count("/setup#token=the-token") == 1
    assert "http://127.0.0.1:8123/setup#token=the-token" in out


async def _token(token: str) -> str:
    return token


def test_serve_with_the_database_unreachable_says_so_without_a_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nothing listens on that port: the connection is refused at once. The URL's password must
    # not be shown.
    url = f"postgresql://ssechat:hunter2-secret@127.0.0.1:{free_port()}/ssechat"
    monkeypatch.setenv("SSECHAT_DATABASE_URL", url)
    assert main(["serve", "--port", str(free_port())]) == 1
    err = capsys.readouterr().err
    assert "the database is unreachable" in err
    assert "Traceback" not in err
    assert "hunter2" not in err
