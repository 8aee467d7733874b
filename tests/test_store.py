"""ssechat.store: the package's surface (the ``Store`` protocol and its SQL implementation),
opening a database from a path or a URL, and what stays in the file, on real files."""

from __future__ import annotations

import contextlib
import inspect
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import platformdirs
import pytest
import sqlalchemy as sa

import ssechat.store
from ssechat.store import (
    Accounts,
    Conversation,
    Message,
    SQLStore,
    Store,
    default_database_url,
    open_store,
)
from ssechat.store.accounts import SQLAccounts

from .store_support import OWNER, Database, Ticker, table_rows

pytestmark = pytest.mark.anyio


@pytest.fixture
async def store(database: Database) -> AsyncIterator[SQLStore]:
    async with await SQLStore.open(database, clock=Ticker()) as opened:
        yield opened


def test_all_names_the_public_api() -> None:
    names = ssechat.store.__all__
    assert len(set(names)) == len(names)
    assert set(names) == {
        "LOCAL_OWNER",
        "MESSAGE_STATUSES",
        "ROLES",
        "TOOL_APPROVALS",
        "UNSET",
        "USER_ROLES",
        "USER_STATUSES",
        "Accounts",
        "ApiKey",
        "Conversation",
        "Exchange",
        "Message",
        "SQLStore",
        "SessionRecord",
        "Store",
        "ToolServerRow",
        "Unset",
        "User",
        "default_database_url",
        "open_store",
    }
    for name in names:
        assert getattr(ssechat.store, name) is not None
    # Those the package re-exports are the very objects of their modules.
    assert ssechat.store.Store is ssechat.store.base.Store
    assert ssechat.store.SQLStore is ssechat.store.sql.SQLStore
    assert ssechat.store.open_store is ssechat.store.sql.open_store
    assert ssechat.store.Message is ssechat.store.models.Message
    assert ssechat.store.Accounts is ssechat.store.base.Accounts
    assert ssechat.store.User is ssechat.store.models.User


def _operations(cls: type) -> dict[str, inspect.Signature]:
    """The public operations of ``cls`` (and ``async with``), by name, with those it inherits
    from the store's own classes (the SQL store mixes in its MCP server settings)."""
    own = [c for c in reversed(cls.__mro__) if c.__module__.startswith("ssechat.store")]
    return {
        name: inspect.signature(member)
        for klass in own
        for name, member in vars(klass).items()
        if callable(member) and (not name.startswith("_") or name in {"__aenter__", "__aexit__"})
    }


def _parameters(signature: inspect.Signature) -> list[tuple[str, Any, Any]]:
    # The SQL store's bodies take the transaction's connection after self: not the caller's.
    return [
        (p.name, p.kind, p.default)
        for p in signature.parameters.values()
        if p.name not in ("self", "conn")
    ]


def test_the_sql_store_is_the_protocol_and_nothing_more() -> None:
    protocol = _operations(Store)
    implementation = _operations(SQLStore)
    # Every operation the API may use, and no public method beyond them (no test-only ones);
    # ``open`` is how the implementation is made.
    assert set(implementation) - {"open"} == set(protocol)
    assert {"start_exchange", "save_partial_answers", "close"} <= set(protocol)
    for name, signature in protocol.items():
        assert _parameters(implementation[name]) == _parameters(signature), name
        assert inspect.iscoroutinefunction(getattr(SQLStore, name)), name


def test_the_sql_accounts_are_the_protocol_and_nothing_more() -> None:
    protocol = _operations(Accounts)
    implementation = _operations(SQLAccounts)
    assert set(implementation) == set(protocol)
    assert {"find_session", "find_api_key", "create_first_admin"} <= set(protocol)
    for name, signature in protocol.items():
        assert _parameters(implementation[name]) == _parameters(signature), name
        assert inspect.iscoroutinefunction(getattr(SQLAccounts, name)), name


async def test_the_store_keeps_its_accounts_on_its_own_threads(store: SQLStore) -> None:
    accounts = store.accounts
    assert isinstance(accounts, SQLAccounts)
    assert accounts is store.accounts  # one, made with the store
    assert accounts.threads is store.threads


async def test_open_store_gives_the_sql_store(database: Database) -> None:
    async with await open_store(database) as store:
        assert isinstance(store, SQLStore)
        conversation = await store.create_conversation(title="via the protocol", owner=OWNER)
    assert [row[1] for row in table_rows(database)["conversations"]] == [conversation.title]


def test_as_dict_times_are_iso_utc() -> None:
    conversation = Conversation("c", None, None, None, None, 0.0, 86_400.25, None)
    assert conversation.as_dict()["created_at"] == "1970-01-01T00:00:00.000Z"
    assert conversation.as_dict()["updated_at"] == "1970-01-02T00:00:00.250Z"
    message = Message(
        "m", "c", None, "assistant", "hi", "complete", "demo", "stop", {"total_tokens": 3}, 0.0, 0.0
    )
    data = message.as_dict()
    assert data["usage"] == {"total_tokens": 3, "reasoning_tokens": None}
    assert data["error"] is None
    assert data["finish_reason"] == "stop"


# --- SQLite files -------------------------------------------------------------------------------


@pytest.mark.sqlite_only("WAL and the pragmas are SQLite's")
async def test_sqlite_runs_in_wal_mode_with_its_pragmas(
    store: SQLStore, database: Database
) -> None:
    with contextlib.closing(sqlite3.connect(database)) as con:
        assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)

    def pragmas(conn: sa.Connection) -> list[Any]:
        names = ["journal_mode", "foreign_keys", "busy_timeout", "synchronous"]
        return [conn.scalar(sa.text(f"PRAGMA {name}")) for name in names]

    # The connections the store's own threads use, reader and writer.
    expected = ["wal", 1, 5000, 1]  # synchronous 1 is NORMAL
    assert await store.threads.read(pragmas) == expected
    assert await store.threads.write(pragmas) == expected


async def test_data_persists_across_close_and_reopen(database: Database) -> None:
    async with await open_store(database) as store:
        conversation = await store.create_conversation(title="kept", system_prompt="S", owner=OWNER)
        started = await store.start_exchange(
            conversation.id, owner=OWNER, parent_id=None, user_content="q", model="demo"
        )
        await store.update_message(
            started.answer.id, content="a", status="complete", usage={"x": 1}
        )
        saved = await store.get_conversation(conversation.id, owner=OWNER)
        tree = await store.list_messages(conversation.id, owner=OWNER)
    url = database if isinstance(database, str) else f"sqlite:///{database}"
    async with await open_store(url) as store:
        assert await store.get_conversation(conversation.id, owner=OWNER) == saved
        assert await store.list_messages(conversation.id, owner=OWNER) == tree
        assert tree[0].id == started.user.id
        assert tree[1].usage == {"x": 1}


# --- opening --------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["path", "str", "sqlite", "pysqlite", "aiosqlite"])
async def test_open_accepts_paths_and_sqlite_urls(tmp_path: Path, form: str) -> None:
    path = tmp_path / "nested" / "dir" / "chat.db"
    target: str | Path = {
        "path": path,
        "str": str(path),
        "sqlite": f"sqlite:///{path}",
        "pysqlite": f"sqlite+pysqlite:///{path}",
        "aiosqlite": f"sqlite+aiosqlite:///{path}",  # what older configurations hold
    }[form]
    async with await open_store(target) as store:
        await store.create_conversation(title="here", owner=OWNER)
    assert path.is_file()
    assert len(table_rows(path)["conversations"]) == 1


async def test_a_path_is_taken_literally(tmp_path: Path) -> None:
    path = tmp_path / "my chats" / "50% #1?.db"  # would mean something else in a URL
    async with await open_store(path) as store:
        await store.create_conversation(owner=OWNER)
    async with await open_store(str(path)) as store:
        page, _ = await store.list_conversations(owner=OWNER)
    assert len(page) == 1
    assert path.is_file()


async def test_open_without_a_url_uses_the_user_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "data" / "ssechat"
    monkeypatch.setattr(platformdirs, "user_data_dir", lambda appname: str(data_dir))
    assert default_database_url() == f"sqlite:///{data_dir / 'ssechat.db'}"
    async with await open_store(None) as store:
        await store.create_conversation(owner=OWNER)
    assert (data_dir / "ssechat.db").is_file()


@pytest.mark.parametrize(
    "url",
    [
        "mysql+aiomysql://user:s3cret@db/chat",
        "sqlite+aiosqlite://",
        "sqlite://",
        "sqlite+aiosqlite:///:memory:",
        ":memory:",
        "",
        "not a url://at all",
    ],
)
async def test_open_refuses_what_is_not_a_sqlite_file(url: str) -> None:
    with pytest.raises(ValueError, match=r"sqlite:///path/to/file\.db") as caught:
        await open_store(url)
    assert "s3cret" not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://user:s3cret@db.example",  # no database
        "postgresql://user:s3cret@db.example:notaport/chat",
        "postgres://user:s3cret@db.example/",
        "mysql://user:s3cret@db.example/chat",  # names both forms
    ],
)
async def test_open_refuses_a_bad_postgresql_url_without_echoing_it(url: str) -> None:
    with pytest.raises(
        ValueError, match=r"postgresql://user:password@host:port/database"
    ) as caught:
        await open_store(url)
    assert "s3cret" not in str(caught.value)
    assert "db.example" not in str(caught.value)


async def test_a_closed_store_refuses_work(database: Database) -> None:
    store = await open_store(database)
    await store.close()
    await store.close()  # twice is fine
    with pytest.raises(RuntimeError, match="closed"):
        await store.list_conversations(owner=OWNER)
    with pytest.raises(RuntimeError, match="closed"):
        await store.create_conversation(owner=OWNER)
