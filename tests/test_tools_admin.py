"""The admins' MCP servers through the API: the settings file's and those added on the page,
turned on and off, their approvals, edits and removal; no secret value in any answer or log
line; bad entries refused with nothing changed; a server that cannot start is reported and chat
goes on without its tools.

Real parts: the app with accounts on, a SQLite file, and the real MCP test server over stdio
(``tests/mcp_test_server.py``) where a server has to run.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from .auth_support import (
    Headers,
    admin_account,
    auth_client,
    auth_settings,
    db_path_of,
    db_snapshot,
    make_user,
)
from .mcp_support import stdio_entry

pytestmark = pytest.mark.anyio

SECRET_ENV = "env-secret-value-7f3a"
SECRET_HEADER = "Bearer header-secret-value-91bc"
SECRET_PASSWORD = "url-password-5e2d"


@pytest.fixture
async def client(tmp_path: Path, marks_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    entry = stdio_entry(marks_dir)
    entry["env"] = {**entry["env"], "API_TOKEN": SECRET_ENV}
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {"test": entry}}))
    settings = auth_settings(tmp_path, mcp_config=str(config))
    async with auth_client(settings) as client:
        yield client


async def servers(client: httpx.AsyncClient, admin: Headers) -> dict[str, Any]:
    listed = await client.get("/api/admin/mcp", headers=admin)
    assert listed.status_code == 200, listed.text
    return {server["name"]: server for server in listed.json()["servers"]}


async def until_status(
    client: httpx.AsyncClient, admin: Headers, name: str, *statuses: str
) -> dict[str, Any]:
    with anyio.fail_after(20):
        # The status is read over HTTP: there is nothing to await but the next answer.
        while (server := (await servers(client, admin))[name])["status"] not in statuses:  # noqa: ASYNC110
            await anyio.sleep(0.05)
    return server


async def test_the_file_server_runs_and_is_listed_without_secret_values(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    admin = (await admin_account(client)).cookie
    server = await until_status(client, admin, "test", "ready")
    assert server["source"] == "file"
    assert server["transport"] == "stdio"
    assert server["env"] == sorted(["API_TOKEN", "SSECHAT_TEST_MCP_MARKS", "SSECHAT_TEST_XSS_DIR"])
    assert {t["name"] for t in server["tools"]} == {"echo", "slow", "fail", "xss", "crash"}
    assert all(t["approval"] == "ask" for t in server["tools"])  # the default

    added = await client.post(
        "/api/admin/mcp",
        json={
            "name": "remote",
            "config": {
                "url": f"http://user:{SECRET_PASSWORD}@127.0.0.1:9/mcp",
                "headers": {"Authorization": SECRET_HEADER},
            },
        },
        headers=admin,
    )
    assert added.status_code == 201, added.text
    remote = await until_status(client, admin, "remote", "error")
    assert remote["url"] == "http://127.0.0.1:9/mcp"
    assert remote["headers"] == ["Authorization"]
    assert remote["error"]  # a clear status: it cannot be reached

    everything = [
        (await client.get("/api/admin/mcp", headers=admin)).text,
        (await client.get("/api/tools", headers=admin)).text,
        *(record.getMessage() for record in caplog.records),
        caplog.text,
    ]
    for secret in (SECRET_ENV, SECRET_HEADER, SECRET_PASSWORD, "header-secret-value"):
        assert not any(secret in text for text in everything), secret


async def test_turn_off_approve_always_edit_and_remove(client: httpx.AsyncClient) -> None:
    admin_account_ = await admin_account(client)
    admin = admin_account_.cookie
    await until_status(client, admin, "test", "ready")
    tools = (await client.get("/api/tools", headers=admin)).json()["tools"]
    assert {t["key"] for t in tools} >= {"test/echo", "test/slow"}

    always = await client.patch(
        "/api/admin/mcp/test", json={"approvals": {"echo": "always"}}, headers=admin
    )
    assert always.status_code == 200
    approvals = {t["name"]: t["approval"] for t in always.json()["tools"]}
    assert approvals["echo"] == "always"
    assert approvals["slow"] == "ask"
    listed = (await client.get("/api/tools", headers=admin)).json()["tools"]
    assert next(t for t in listed if t["key"] == "test/echo")["approval"] == "always"

    off = await client.patch("/api/admin/mcp/test", json={"enabled": False}, headers=admin)
    assert off.json()["enabled"] is False
    assert (await client.get("/api/tools", headers=admin)).json()["tools"] == []
    on = await client.patch("/api/admin/mcp/test", json={"enabled": True}, headers=admin)
    assert on.json()["enabled"] is True
    await until_status(client, admin, "test", "ready")

    # The file's server: edited in the file, not here; turned off, not deleted.
    edit = await client.patch(
        "/api/admin/mcp/test", json={"config": {"command": "true"}}, headers=admin
    )
    assert edit.status_code == 409
    delete = await client.delete("/api/admin/mcp/test", headers=admin)
    assert delete.status_code == 409

    # A server added here: edited whole, then removed.
    added = await client.post(
        "/api/admin/mcp",
        json={"name": "extra", "config": {"command": "true", "disabled": True}},
        headers=admin,
    )
    assert added.status_code == 201
    assert added.json()["status"] == "off"
    again = await client.post(
        "/api/admin/mcp", json={"name": "extra", "config": {"command": "x"}}, headers=admin
    )
    assert again.status_code == 409
    edited = await client.patch(
        "/api/admin/mcp/extra",
        json={"config": {"command": "false", "args": ["-x"], "disabled": True}},
        headers=admin,
    )
    assert (edited.json()["command"], edited.json()["args"]) == ("false", ["-x"])
    gone = await client.delete("/api/admin/mcp/extra", headers=admin)
    assert gone.status_code == 204
    assert "extra" not in await servers(client, admin)
    missing = await client.delete("/api/admin/mcp/extra", headers=admin)
    assert missing.status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"name": "bad name!", "config": {"command": "x"}},
        {"name": "sse", "config": {"type": "sse", "url": "http://127.0.0.1:9/sse"}},
        {"name": "nothing", "config": {}},
        {"name": "both", "config": {"command": "x", "url": "http://127.0.0.1:9/mcp"}},
        {"name": "wrong", "config": {"command": "x", "args": "not a list"}},
        {"name": "scheme", "config": {"url": "file:///etc/passwd"}},
        {"name": "x", "config": {"command": "x"}, "extra": 1},
    ],
)
async def test_a_bad_entry_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, tmp_path: Path, body: dict[str, Any]
) -> None:
    admin = (await admin_account(client)).cookie
    before = db_snapshot(db_path_of(client.app.state.service.settings))  # type: ignore[attr-defined]
    refused = await client.post("/api/admin/mcp", json=body, headers=admin)
    assert refused.status_code in (400, 422), refused.text
    assert "error" in refused.json()
    assert db_snapshot(db_path_of(client.app.state.service.settings)) == before  # type: ignore[attr-defined]


async def test_tools_of_a_server_that_cannot_start_are_left_out_and_chat_goes_on(
    client: httpx.AsyncClient,
) -> None:
    admin = (await admin_account(client)).cookie
    added = await client.post(
        "/api/admin/mcp",
        json={"name": "broken", "config": {"command": "/nonexistent/mcp-server"}},
        headers=admin,
    )
    assert added.status_code == 201
    broken = await until_status(client, admin, "broken", "error")
    assert broken["error"]
    user = await make_user(client, await admin_account(client), "u@example.com")
    created = await client.post(
        "/api/conversations", json={"tools": ["broken/anything"]}, headers=user.cookie
    )
    assert created.status_code == 201
    cid = created.json()["id"]
    sent = await client.post(
        f"/api/conversations/{cid}/messages",
        json={"content": "hello"},
        headers={**user.cookie, "Accept": "text/event-stream"},
    )
    assert sent.status_code == 200
    assert "event: done" in sent.text
    assert '"status":"complete"' in sent.text
    assert "tool_call" not in sent.text
