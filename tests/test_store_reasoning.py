"""ssechat.store: a message's reasoning, its duration and its tool calls (migration m005), saved
at a run's end and in the runs' batched save, and read back."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from ssechat.store import Store, open_store
from ssechat.store.migrations import MIGRATIONS, apply_migrations
from ssechat.store.sqlite import create_engines, resolve_url

from .store_support import OWNER

pytestmark = pytest.mark.anyio

CALLS = [
    {"id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'},
    {"id": "call_2", "name": "noop", "arguments": ""},
]


async def live_answer(store: Store) -> str:
    conversation = await store.create_conversation(owner=OWNER)
    started = await store.start_exchange(
        conversation.id, owner=OWNER, user_content="why?", model="m"
    )
    return started.answer.id


async def test_a_new_answer_has_no_reasoning_nor_tool_calls(store: Store) -> None:
    message = await store.get_message(await live_answer(store), owner=OWNER)
    assert (message.reasoning, message.reasoning_seconds, message.tool_calls) == (None, None, None)
    shown = message.as_dict()
    assert (shown["reasoning"], shown["reasoning_seconds"], shown["tool_calls"]) == (
        None,
        None,
        None,
    )


async def test_update_message_saves_reasoning_its_duration_and_tool_calls(store: Store) -> None:
    answer_id = await live_answer(store)
    calls = [dict(call) for call in CALLS]
    await store.update_message(
        answer_id,
        content="",
        status="complete",
        finish_reason="tool_calls",
        usage={
            "prompt_tokens": 1,
            "completion_tokens": 9,
            "total_tokens": 10,
            "reasoning_tokens": 7,
        },
        reasoning="First, the city.\nThen — the weather 🙂",
        reasoning_seconds=12.25,
        tool_calls=calls,
    )
    calls[0]["name"] = "changed after the call"  # the store kept its own copy
    message = await store.get_message(answer_id, owner=OWNER)
    assert message.reasoning == "First, the city.\nThen — the weather 🙂"
    assert message.reasoning_seconds == 12.25
    assert message.tool_calls == CALLS
    assert message.usage is not None
    assert message.usage["reasoning_tokens"] == 7
    shown = message.as_dict()
    assert shown["tool_calls"] == CALLS
    assert shown["usage"]["reasoning_tokens"] == 7
    (listed,) = [
        m
        for m in await store.list_messages(message.conversation_id, owner=OWNER)
        if m.id == answer_id
    ]
    assert listed == message

    # None leaves a field as it is.
    await store.update_message(answer_id, content="later")
    again = await store.get_message(answer_id, owner=OWNER)
    assert (again.content, again.reasoning, again.tool_calls) == ("later", message.reasoning, CALLS)


async def test_usage_without_reasoning_tokens_shows_them_as_null(store: Store) -> None:
    answer_id = await live_answer(store)
    await store.update_message(
        answer_id, usage={"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    )
    shown = (await store.get_message(answer_id, owner=OWNER)).as_dict()
    assert shown["usage"] == {
        "prompt_tokens": 1,
        "completion_tokens": 2,
        "total_tokens": 3,
        "reasoning_tokens": None,
    }


async def test_the_batched_save_sets_the_reasoning_of_those_given(store: Store) -> None:
    thinking, plain = await live_answer(store), await live_answer(store)
    await store.save_partial_answers({thinking: "", plain: "Hel"}, {thinking: "so far"})
    one = await store.get_message(thinking, owner=OWNER)
    two = await store.get_message(plain, owner=OWNER)
    assert (one.content, one.reasoning) == ("", "so far")
    assert (two.content, two.reasoning) == ("Hel", None)
    # A batch without reasoning leaves what was saved.
    await store.save_partial_answers({thinking: "An", plain: "Hello"})
    one = await store.get_message(thinking, owner=OWNER)
    assert (one.content, one.reasoning) == ("An", "so far")
    await store.save_partial_answers({thinking: "Ans"}, {thinking: "so far, and more"})
    assert (await store.get_message(thinking, owner=OWNER)).reasoning == "so far, and more"


async def test_m005_adds_the_columns_and_keeps_older_messages(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    reader, writer = create_engines(resolve_url(path))
    try:
        with writer.begin() as conn:
            names = apply_migrations(conn, MIGRATIONS[:4])
            assert names[-1] == "m004_accounts"
            conn.execute(
                sa.text(
                    "INSERT INTO conversations (id, owner, created_at, updated_at) "
                    "VALUES ('c1', :owner, 1.0, 1.0)"
                ),
                {"owner": OWNER},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO messages (id, conversation_id, role, content, status, "
                    "created_at, updated_at) VALUES ('m1', 'c1', 'assistant', 'old', "
                    "'complete', 1.0, 1.0)"
                )
            )
    finally:
        writer.dispose()
        reader.dispose()

    async with await open_store(path) as store:
        old = await store.get_message("m1", owner=OWNER)
        assert (old.content, old.reasoning, old.reasoning_seconds, old.tool_calls) == (
            "old",
            None,
            None,
            None,
        )
        await store.update_message("m1", reasoning="added", reasoning_seconds=1.5, tool_calls=CALLS)
        new = await store.get_message("m1", owner=OWNER)
        assert (new.reasoning, new.reasoning_seconds, new.tool_calls) == ("added", 1.5, CALLS)
    with contextlib.closing(sqlite3.connect(path)) as con:
        columns = {row[1] for row in con.execute("PRAGMA table_info(messages)")}
        applied = [row[0] for row in con.execute("SELECT name FROM _migrations ORDER BY rowid")]
    assert {"reasoning", "reasoning_seconds", "tool_calls"} <= columns
    assert applied[4] == "m005_reasoning"  # and any later ones after it
