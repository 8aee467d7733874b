"""ssechat.store: what tools need of the store (migration m006): a conversation's tools, the
rich tool calls of an answer, and the admins' MCP server settings, on both databases."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import sqlalchemy as sa

from ssechat.errors import ConflictError, InvalidRequestError, NotFoundError
from ssechat.store import Store, ToolServerRow, open_store
from ssechat.store.dialects import pick
from ssechat.store.migrations import MIGRATIONS, apply_migrations

from .store_support import OTHER, OWNER, Database, Ticker, table_rows

pytestmark = pytest.mark.anyio

TOOLS = ["files/read_file", "web/fetch", "météo/prévision"]

RICH_CALLS: list[dict[str, Any]] = [
    {
        "id": "call_1",
        "name": "files__read_file",
        "arguments": '{"path": "/tmp/ré sumé.txt"}',
        "server": "files",
        "tool": "read_file",
        "approval": "ask",
        "decision": "approved",
        "offset": 12,
        "result": {"content": "Bonjour 🙂\n\n<script>alert(1)</script>", "is_error": False},
    },
    {
        "id": "call_2",
        "name": "nowhere__thing",
        "arguments": "{}",
        "server": None,
        "tool": None,
        "approval": "always",
        "decision": None,
        "offset": 0,
        "result": {"content": "no such tool", "is_error": True},
    },
    {
        "id": "call_3",
        "name": "web__fetch",
        "arguments": '{"url": "https://example.com"}',
        "server": "web",
        "tool": "fetch",
        "approval": "ask",
        "decision": None,
        "offset": 40,
        "result": None,
    },
]

# An admin-added stdio server's entry, nesting lists and dicts (and a value that is JSON text).
STDIO_ENTRY: dict[str, Any] = {
    "command": "npx",
    "args": ["-y", "@modelcontextprotocol/server-filesystem", "/srv/ünïcode"],
    "env": {"API_TOKEN": "s3cret", "OPTIONS": '{"depth": 2, "follow": [true, null]}'},
    "cwd": "/srv",
    "alwaysAllow": ["read_file"],
    "timeout": 12.5,
    "extra": {"nested": [{"a": 1}, {"b": [None, False]}]},
}
HTTP_ENTRY: dict[str, Any] = {
    "type": "streamable-http",
    "url": "https://mcp.example.com/mcp",
    "headers": {"Authorization": "Bearer abc"},
}


# --- a conversation's tools ---------------------------------------------------------------------


async def test_a_conversation_has_no_tools_by_default(store: Store) -> None:
    made = await store.create_conversation(owner=OWNER)
    assert made.tools == ()
    assert made.as_dict()["tools"] == []
    read = await store.get_conversation(made.id, owner=OWNER)
    assert (read.tools, read.as_dict()["tools"]) == ((), [])


async def test_tools_round_trip_on_create_get_and_list(store: Store, database: Database) -> None:
    made = await store.create_conversation(title="t", owner=OWNER, tools=TOOLS)
    assert made.tools == tuple(TOOLS)
    assert made.as_dict()["tools"] == TOOLS
    assert await store.get_conversation(made.id, owner=OWNER) == made
    page, _ = await store.list_conversations(owner=OWNER)
    assert page == [made]
    # An empty list is stored as NULL, like a conversation made before tools.
    empty = await store.create_conversation(owner=OWNER, tools=[])
    rows = {row[0]: row for row in table_rows(database)["conversations"]}
    assert _tools_column(rows[empty.id]) is None
    assert _tools_column(rows[made.id]) == TOOLS


async def test_update_sets_replaces_and_clears_tools(store: Store) -> None:
    made = await store.create_conversation(title="kept", owner=OWNER)
    updated = await store.update_conversation(made.id, owner=OWNER, tools=TOOLS[:2])
    assert updated.tools == tuple(TOOLS[:2])
    assert await store.get_conversation(made.id, owner=OWNER) == updated

    # Another field alone leaves the tools as they are.
    renamed = await store.update_conversation(made.id, owner=OWNER, title="new")
    assert (renamed.title, renamed.tools) == ("new", tuple(TOOLS[:2]))
    assert (await store.get_conversation(made.id, owner=OWNER)).tools == tuple(TOOLS[:2])

    replaced = await store.update_conversation(made.id, owner=OWNER, tools=[TOOLS[2]])
    assert replaced.tools == (TOOLS[2],)
    assert (await store.get_conversation(made.id, owner=OWNER)).tools == (TOOLS[2],)

    nothing: list[list[str] | None] = [[], None]
    for cleared_with in nothing:
        await store.update_conversation(made.id, owner=OWNER, tools=TOOLS)
        cleared = await store.update_conversation(made.id, owner=OWNER, tools=cleared_with)
        assert cleared.tools == ()
        assert (await store.get_conversation(made.id, owner=OWNER)).tools == ()


async def test_another_users_conversation_tools_cannot_be_changed(store: Store) -> None:
    made = await store.create_conversation(owner=OWNER, tools=TOOLS)
    with pytest.raises(NotFoundError):
        await store.update_conversation(made.id, owner=OTHER, tools=[])
    assert (await store.get_conversation(made.id, owner=OWNER)).tools == tuple(TOOLS)


async def test_a_turn_sees_the_conversations_tools(store: Store) -> None:
    made = await store.create_conversation(owner=OWNER, tools=TOOLS[:1])
    started = await store.start_exchange(made.id, owner=OWNER, user_content="hi", model="m")
    assert started.conversation.tools == tuple(TOOLS[:1])


# --- rich tool calls on an answer ---------------------------------------------------------------


async def test_rich_tool_calls_round_trip_exactly(store: Store) -> None:
    made = await store.create_conversation(owner=OWNER)
    started = await store.start_exchange(made.id, owner=OWNER, user_content="go", model="m")
    calls = copy.deepcopy(RICH_CALLS)
    await store.update_message(
        started.answer.id, content="x" * 40, status="complete", tool_calls=calls
    )
    # The store took its own copy: changing the caller's afterwards changes nothing stored.
    calls[0]["result"]["content"] = "changed"
    calls.append({"id": "late"})

    message = await store.get_message(started.answer.id, owner=OWNER)
    assert message.tool_calls == RICH_CALLS
    assert isinstance(message.tool_calls[0]["offset"], int)
    assert message.tool_calls[0]["result"]["is_error"] is False
    assert message.as_dict()["tool_calls"] == RICH_CALLS
    (listed,) = [m for m in await store.list_messages(made.id, owner=OWNER) if m.role != "user"]
    assert listed.tool_calls == RICH_CALLS
    # And on the branch a next turn is built from.
    after = await store.start_exchange(made.id, owner=OWNER, user_content="more", model="m")
    assert after.branch[1].tool_calls == RICH_CALLS


async def test_older_tool_calls_keep_their_shape(store: Store) -> None:
    made = await store.create_conversation(owner=OWNER)
    started = await store.start_exchange(made.id, owner=OWNER, user_content="go", model="m")
    old = [{"id": "c", "name": "f", "arguments": '{"a": 1}'}]
    await store.update_message(started.answer.id, tool_calls=old)
    assert (await store.get_message(started.answer.id, owner=OWNER)).tool_calls == old


# --- the admins' MCP server settings ------------------------------------------------------------


async def test_no_tool_servers_at_first(store: Store) -> None:
    assert await store.list_tool_servers() == []
    assert await store.delete_tool_server("nothing") is False


async def test_add_and_list_tool_servers_in_name_order(store: Store) -> None:
    entry = copy.deepcopy(STDIO_ENTRY)
    files = await store.add_tool_server("files", config=entry)
    # The store took its own copy of the nested entry.
    entry["args"].append("later")
    entry["env"]["API_TOKEN"] = "changed"
    assert files == ToolServerRow("files", STDIO_ENTRY, None, {}, files.updated_at)
    web = await store.add_tool_server("Web-2", config=HTTP_ENTRY)
    assert web.updated_at > files.updated_at
    assert await store.list_tool_servers() == sorted([files, web], key=lambda row: row.name)
    (stored,) = [row for row in await store.list_tool_servers() if row.name == "files"]
    assert stored.config == STDIO_ENTRY
    assert stored.config is not None
    assert stored.config["timeout"] == 12.5


async def test_adding_a_name_that_exists_is_a_conflict(store: Store) -> None:
    first = await store.add_tool_server("files", config=STDIO_ENTRY)
    with pytest.raises(ConflictError, match="files"):
        await store.add_tool_server("files", config=HTTP_ENTRY)
    # An override row of a settings-file server holds the name too.
    await store.update_tool_server("fromfile", enabled=False)
    with pytest.raises(ConflictError):
        await store.add_tool_server("fromfile", config=HTTP_ENTRY)
    rows = {row.name: row for row in await store.list_tool_servers()}
    assert rows["files"] == first
    assert rows["fromfile"].config is None


async def test_update_makes_an_override_row_for_a_file_server(store: Store) -> None:
    row = await store.update_tool_server("fromfile", enabled=False)
    assert (row.name, row.config, row.enabled, row.approvals) == ("fromfile", None, False, {})
    assert await store.list_tool_servers() == [row]

    approved = await store.update_tool_server("other", approvals={"echo": "always"})
    assert (approved.config, approved.enabled) == (None, None)
    assert approved.approvals == {"echo": "always"}
    assert await store.list_tool_servers() == [row, approved]


async def test_update_changes_only_what_it_is_given(store: Store) -> None:
    added = await store.add_tool_server("files", config=STDIO_ENTRY)
    off = await store.update_tool_server("files", enabled=False)
    assert (off.config, off.enabled, off.approvals) == (STDIO_ENTRY, False, {})
    assert off.updated_at > added.updated_at

    approvals = await store.update_tool_server(
        "files", approvals={"read_file": "always", "write_file": "ask"}
    )
    assert (approvals.config, approvals.enabled) == (STDIO_ENTRY, False)
    assert approvals.approvals == {"read_file": "always", "write_file": "ask"}

    # Approvals are replaced whole, not merged.
    replaced = await store.update_tool_server("files", approvals={"write_file": "always"})
    assert replaced.approvals == {"write_file": "always"}

    # So is the config; enabled=None goes back to "as its config says".
    changed = await store.update_tool_server("files", config=HTTP_ENTRY, enabled=None)
    assert (changed.config, changed.enabled, changed.approvals) == (
        HTTP_ENTRY,
        None,
        {"write_file": "always"},
    )
    assert await store.list_tool_servers() == [changed]


async def test_bad_names_and_approvals_are_refused(store: Store, database: Database) -> None:
    before = table_rows(database)
    with pytest.raises(InvalidRequestError):
        await store.add_tool_server("x" * 33, config=HTTP_ENTRY)
    with pytest.raises(InvalidRequestError):
        await store.add_tool_server("", config=HTTP_ENTRY)
    with pytest.raises(InvalidRequestError, match="echo"):
        await store.update_tool_server("files", approvals={"echo": "sometimes"})
    assert table_rows(database) == before
    # The longest name the table holds is fine (PostgreSQL would refuse one longer).
    longest = await store.add_tool_server("y" * 32, config=HTTP_ENTRY)
    assert await store.list_tool_servers() == [longest]


async def test_delete_a_tool_server(store: Store) -> None:
    await store.add_tool_server("files", config=STDIO_ENTRY)
    web = await store.add_tool_server("web", config=HTTP_ENTRY)
    assert await store.delete_tool_server("files") is True
    assert await store.list_tool_servers() == [web]
    assert await store.delete_tool_server("files") is False
    # Deleted, the name is free again.
    again = await store.add_tool_server("files", config=HTTP_ENTRY)
    assert await store.list_tool_servers() == [again, web]


async def test_settings_survive_reopening(database: Database) -> None:
    async with await open_store(database, clock=Ticker()) as store:
        added = await store.add_tool_server("files", config=STDIO_ENTRY)
        added = await store.update_tool_server("files", approvals={"read_file": "always"})
        made = await store.create_conversation(owner=OWNER, tools=TOOLS)
    async with await open_store(database, clock=Ticker()) as store:
        assert await store.list_tool_servers() == [added]
        assert (await store.get_conversation(made.id, owner=OWNER)).tools == tuple(TOOLS)


# --- the migration ------------------------------------------------------------------------------


async def test_a_database_at_m005_gains_tools(database: Database) -> None:
    dialect = pick(database)
    reader, writer = dialect.create_engines(dialect.url)
    try:
        with writer.begin() as conn:
            names = apply_migrations(conn, MIGRATIONS[:5])
            assert names[-1] == "m005_reasoning"
            conn.execute(
                sa.text(
                    "INSERT INTO conversations (id, title, owner, created_at, updated_at) "
                    "VALUES ('c1', 'from before', :owner, 1.0, 2.0)"
                ),
                {"owner": OWNER},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO messages (id, conversation_id, role, content, status, "
                    "created_at, updated_at) VALUES ('m1', 'c1', 'user', 'hi', 'complete', 1.0, "
                    "1.0)"
                )
            )
    finally:
        writer.dispose()
        reader.dispose()

    async with await open_store(database, clock=Ticker()) as store:
        old = await store.get_conversation("c1", owner=OWNER)
        assert (old.title, old.created_at, old.updated_at, old.tools) == (
            "from before",
            1.0,
            2.0,
            (),
        )
        assert [m.content for m in await store.list_messages("c1", owner=OWNER)] == ["hi"]
        assert await store.list_tool_servers() == []
        updated = await store.update_conversation("c1", owner=OWNER, tools=TOOLS[:1])
        assert updated.tools == tuple(TOOLS[:1])
        assert (await store.get_conversation("c1", owner=OWNER)).tools == tuple(TOOLS[:1])
    rows = table_rows(database)
    assert rows["mcp_servers"] == []
    assert _tools_column(rows["conversations"][0]) == TOOLS[:1]
    assert "m006_tools" in [str(row[0]) for row in rows["_migrations"]]


TOOLS_COLUMN = 8  # conversations: id … current_leaf_id, then tools (m006); later ones follow


def _tools_column(row: tuple[Any, ...]) -> Any:
    # The raw tools column, decoded: SQLite gives JSON text, psycopg the value itself. (On
    # PostgreSQL, m007 adds the search vector after it.)
    value = row[TOOLS_COLUMN]
    return json.loads(value) if isinstance(value, str) else value
