"""ssechat.store: each user sees only their own conversations and messages. Another user's id
answers exactly as an unknown id does (same error, same message) and changes nothing; the checks
cost no extra statement on the hot paths, and the per-owner list reads its own index."""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.sql.compiler import SQLCompiler

from ssechat.errors import SSEChatError
from ssechat.store import LOCAL_OWNER, Message, SQLStore, Store
from ssechat.store import statements as st
from ssechat.store.dialects import pick
from ssechat.store.migrations import apply_migrations
from ssechat.store.threads import StoreThreads

from .store_support import OTHER, OWNER, Database, Ticker, sql, table_rows

pytestmark = pytest.mark.anyio


@dataclass
class Theirs:
    """What OWNER has, which OTHER must not reach."""

    conversation_id: str
    question: Message
    answer: Message


async def their_things(store: Store) -> Theirs:
    conversation = await store.create_conversation(title="private", owner=OWNER)
    started = await store.start_exchange(
        conversation.id, owner=OWNER, user_content="secret", model="m"
    )
    await store.update_message(started.answer.id, content="also secret", status="complete")
    answer = await store.get_message(started.answer.id, owner=OWNER)
    return Theirs(conversation.id, started.user, answer)


async def failure(call: Awaitable[Any]) -> SSEChatError:
    with pytest.raises(SSEChatError) as caught:
        await call
    return caught.value


# Each operation OTHER might try with an id of OWNER's, as a function of (that id, OTHER's own
# conversation id): the conversation ids, the message ids, a parent, a regenerate target.
ATTEMPTS: dict[str, tuple[str, Callable[[Store, str, str], Awaitable[Any]]]] = {
    "get_conversation": ("conversation", lambda s, i, mine: s.get_conversation(i, owner=OTHER)),
    "list_messages": ("conversation", lambda s, i, mine: s.list_messages(i, owner=OTHER)),
    "rename": (
        "conversation",
        lambda s, i, mine: s.update_conversation(i, owner=OTHER, title="mine now"),
    ),
    "delete_conversation": (
        "conversation",
        lambda s, i, mine: s.delete_conversation(i, owner=OTHER),
    ),
    "send": (
        "conversation",
        lambda s, i, mine: s.start_exchange(i, owner=OTHER, user_content="hi", model="m"),
    ),
    "send_as_a_new_root": (
        "conversation",
        lambda s, i, mine: s.start_exchange(
            i, owner=OTHER, parent_id=None, user_content="hi", model="m"
        ),
    ),
    "get_question": ("question", lambda s, i, mine: s.get_message(i, owner=OTHER)),
    "get_answer": ("answer", lambda s, i, mine: s.get_message(i, owner=OTHER)),
    "parent_in_own_conversation_question": (
        "question",
        lambda s, i, mine: s.start_exchange(
            mine, owner=OTHER, parent_id=i, user_content="hi", model="m"
        ),
    ),
    "parent_in_own_conversation_answer": (
        "answer",
        lambda s, i, mine: s.start_exchange(
            mine, owner=OTHER, parent_id=i, user_content="hi", model="m"
        ),
    ),
    "leaf_in_own_conversation": (
        "answer",
        lambda s, i, mine: s.update_conversation(mine, owner=OTHER, current_leaf_id=i),
    ),
    "regenerate_answer": ("answer", lambda s, i, mine: s.start_answer(i, owner=OTHER, model="m")),
    "regenerate_question": (
        "question",
        lambda s, i, mine: s.start_answer(i, owner=OTHER, model="m"),
    ),
}


@pytest.mark.parametrize("attempt", list(ATTEMPTS))
async def test_another_users_id_answers_as_an_unknown_one_and_changes_nothing(
    store: Store, database: Database, attempt: str
) -> None:
    theirs = await their_things(store)
    mine = await store.create_conversation(owner=OTHER)
    own = await store.start_exchange(mine.id, owner=OTHER, user_content="mine", model="m")
    await store.update_message(own.answer.id, status="complete")
    kind, call = ATTEMPTS[attempt]
    their_id = {
        "conversation": theirs.conversation_id,
        "question": theirs.question.id,
        "answer": theirs.answer.id,
    }[kind]
    unknown_id = uuid.uuid4().hex
    before = table_rows(database)

    foreign = await failure(call(store, their_id, mine.id))
    unknown = await failure(call(store, unknown_id, mine.id))

    assert type(foreign) is type(unknown)
    assert foreign.code == unknown.code
    assert str(foreign) == str(unknown).replace(unknown_id, their_id)
    assert table_rows(database) == before


async def test_each_owner_lists_only_their_conversations(store: Store) -> None:
    made: dict[str, list[str]] = {OWNER: [], OTHER: []}
    for i in range(7):  # interleaved in time, so a page of one owner spans the other's rows
        owner = OWNER if i % 2 else OTHER
        made[owner].append((await store.create_conversation(title=str(i), owner=owner)).id)
    for owner, ids in made.items():
        seen: list[str] = []
        cursor: str | None = None
        while True:
            page, cursor = await store.list_conversations(owner=owner, limit=2, cursor=cursor)
            assert all(c.owner == owner for c in page)
            seen += [c.id for c in page]
            if cursor is None:
                break
        assert seen == ids[::-1]
    # A cursor is only a position: another owner following it still sees only their own.
    _, cursor = await store.list_conversations(owner=OWNER, limit=1)
    page, _ = await store.list_conversations(owner=OTHER, cursor=cursor)
    assert {c.id for c in page} <= set(made[OTHER])
    assert (await store.list_conversations(owner="nobody"))[0] == []


async def test_what_the_runs_save_needs_no_owner(store: Store) -> None:
    # The runs save answers they started for a user already checked: no owner there.
    theirs = await their_things(store)
    started = await store.start_answer(theirs.answer.id, owner=OWNER, model="m")
    await store.save_partial_answers({started.answer.id: "par"})
    await store.update_message(started.answer.id, content="partial", status="stopped")
    saved = await store.get_message(started.answer.id, owner=OWNER)
    assert (saved.content, saved.status) == ("partial", "stopped")


async def test_adopt_conversations_takes_those_of_nobody_and_of_accounts_off(
    store: Store, database: Database
) -> None:
    local = await store.create_conversation(owner=LOCAL_OWNER)
    await store.start_exchange(local.id, owner=LOCAL_OWNER, user_content="q", model="m")
    theirs = await store.create_conversation(owner=OTHER)
    sql(
        database,
        "INSERT INTO conversations (id, created_at, updated_at) VALUES ('old', 1.0, 1.0)",
    )
    assert await store.adopt_conversations(OWNER) == 2
    page, _ = await store.list_conversations(owner=OWNER)
    assert {c.id for c in page} == {local.id, "old"}
    # With its messages, and its order in the list unchanged.
    assert len(await store.list_messages(local.id, owner=OWNER)) == 2
    assert (await store.get_conversation(local.id, owner=OWNER)).updated_at == page[0].updated_at
    assert await store.get_conversation(theirs.id, owner=OTHER) == theirs
    assert await store.adopt_conversations(OTHER) == 0


# --- what the checks cost -----------------------------------------------------------------------


@pytest.fixture
async def counted(database: Database) -> AsyncIterator[tuple[SQLStore, list[str]]]:
    """A store whose engines record every statement they run (listened to before the first
    connection, so every connection reports)."""
    statements: list[str] = []
    dialect = pick(database)
    reader, writer = dialect.create_engines(dialect.url)

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    for engine in (reader, writer):
        sa.event.listen(engine, "before_cursor_execute", record)
    threads = StoreThreads(
        reader, writer, lock_invariants=dialect.lock_invariants, unreachable=dialect.unreachable
    )
    store = SQLStore(threads, clock=Ticker())
    try:
        await store.threads.write(apply_migrations)
        yield store, statements
    finally:
        await store.close()


async def test_the_owner_checks_add_no_statement(counted: tuple[SQLStore, list[str]]) -> None:
    store, statements = counted
    conversation = await store.create_conversation(owner=OWNER)
    first = await store.start_exchange(conversation.id, owner=OWNER, user_content="q", model="m")
    await store.update_message(first.answer.id, status="complete")
    user = await store.accounts.create_user(
        email="ann@example.com", name=None, password_hash="h", role="user", status="active"
    )
    await store.accounts.create_session(user.id, "s" * 64)
    await store.accounts.create_api_key(user.id, name="k", prefix="p", key_hash="k" * 64)

    async def count(call: Awaitable[Any]) -> int:
        statements.clear()
        await call
        return len(statements)

    # As many as before owners existed: the owner is in the queries, not in queries of its own.
    assert await count(store.get_message(first.answer.id, owner=OWNER)) == 1
    assert await count(store.get_conversation(conversation.id, owner=OWNER)) == 1
    assert await count(store.list_conversations(owner=OWNER)) == 1
    assert await count(store.list_messages(conversation.id, owner=OWNER)) == 2
    started = store.start_exchange(
        conversation.id, owner=OWNER, parent_id=first.answer.id, user_content="q", model="m"
    )
    assert await count(started) == 4  # conversation, branch, the two messages, the leaf
    assert await count(store.start_answer(first.answer.id, owner=OWNER, model="m")) == 4
    # Checked on every request: one query each.
    assert await count(store.accounts.find_session("s" * 64)) == 1
    assert await count(store.accounts.find_api_key("k" * 64)) == 1


def query_plan(database: Database, statement: sa.ClauseElement, params: dict[str, Any]) -> str:
    compiled = statement.compile(dialect=sqlite.dialect())
    assert isinstance(compiled, SQLCompiler)
    values = {**compiled.params, **params}
    args = [values[name] for name in compiled.positiontup or ()]
    with contextlib.closing(sqlite3.connect(database)) as con:
        rows = con.execute(f"EXPLAIN QUERY PLAN {compiled.string}", args).fetchall()
    return "\n".join(str(row[-1]) for row in rows)


PLANS = {
    "FIRST_PAGE": (st.FIRST_PAGE, "ix_conversations_owner_updated_at_id (owner=?)"),
    "NEXT_PAGE": (st.NEXT_PAGE, "ix_conversations_owner_updated_at_id (owner=?)"),
    "GET_CONVERSATION": (st.GET_CONVERSATION, "conversations USING INDEX"),
    "GET_MESSAGE": (st.GET_MESSAGE, "conversations USING INDEX"),
    "BRANCH": (st.BRANCH, "conversations USING INDEX"),
    "FIND_SESSION": (st.FIND_SESSION, "users USING INDEX"),
    "FIND_API_KEY": (st.FIND_API_KEY, "users USING INDEX"),
    "DELETE_OWNED_MESSAGES": (st.DELETE_OWNED_MESSAGES, "ix_conversations_owner_updated_at_id"),
}


@pytest.mark.sqlite_only("reads SQLite's EXPLAIN QUERY PLAN")
@pytest.mark.parametrize("name", list(PLANS))
async def test_the_owner_queries_search_indexes(
    store: Store, database: Database, name: str
) -> None:
    for owner in (OWNER, OTHER):
        await store.create_conversation(owner=owner)
    statement, expected = PLANS[name]
    params = {
        "b_owner": OWNER,
        "b_id": "f" * 32,
        "b_limit": 51,
        "b_updated_at": 2e9,
        "b_last_id": "f" * 32,
        "b_token_hash": "0" * 64,
        "b_key_hash": "0" * 64,
    }
    plan = query_plan(database, statement, params)
    assert expected in plan
    steps = plan.splitlines()
    # Every table is searched by an index, none scanned (the CTE's own rows are "SCAN up").
    assert [step for step in steps if step.startswith("SCAN") and step != "SCAN up"] == []
    assert "TEMP B-TREE" not in plan  # no sort: the list's index gives the order
