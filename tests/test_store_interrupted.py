"""ssechat.store: the operations another process uses to end the runs of a dead one — finding the
answers left ``streaming``, marking some ``interrupted``, and saving one whole as interrupted —
each touching only answers still streaming."""

from __future__ import annotations

import pytest

from ssechat.store import Message, Store

from .store_support import OWNER

pytestmark = pytest.mark.anyio


async def live_answer(store: Store, text: str) -> Message:
    conversation = await store.create_conversation(owner=OWNER)
    started = await store.start_exchange(
        conversation.id, owner=OWNER, parent_id=None, user_content=text, model="m"
    )
    return started.answer


async def test_streaming_answers_lists_those_not_updated_since(store: Store) -> None:
    old = await live_answer(store, "old")
    done = await live_answer(store, "done")
    await store.update_message(done.id, content="ok", status="complete")
    newer = await live_answer(store, "newer")
    cutoff = newer.updated_at  # the Ticker gives every write its own second

    assert await store.streaming_answers(updated_before=cutoff) == [old.id]
    assert await store.streaming_answers(updated_before=cutoff + 1) == [old.id, newer.id]
    assert await store.streaming_answers(updated_before=old.updated_at) == []
    # A save of the answer so far counts as an update: its run is alive.
    await store.save_partial_answers({old.id: "par"})
    assert await store.streaming_answers(updated_before=cutoff + 1) == [newer.id]


async def test_mark_interrupted_ends_only_those_still_streaming(store: Store) -> None:
    one, two, done = [await live_answer(store, text) for text in ("1", "2", "3")]
    await store.update_message(done.id, content="ok", status="complete")
    await store.save_partial_answers({one.id: "so far"})

    assert await store.mark_interrupted([one.id, done.id, "f" * 32]) == 1
    marked = await store.get_message(one.id, owner=OWNER)
    assert (marked.status, marked.content) == ("interrupted", "so far")
    assert marked.updated_at > one.updated_at
    assert (await store.get_message(done.id, owner=OWNER)).status == "complete"
    assert (await store.get_message(two.id, owner=OWNER)).status == "streaming"
    assert await store.mark_interrupted([one.id]) == 0  # already ended
    assert await store.mark_interrupted([]) == 0


async def test_save_interrupted_saves_every_token_once(store: Store) -> None:
    answer = await live_answer(store, "q")
    await store.save_partial_answers({answer.id: "the last"}, {answer.id: "thought"})

    assert await store.save_interrupted(
        answer.id, content="the last batch and more", error="its process died"
    )
    saved = await store.get_message(answer.id, owner=OWNER)
    assert (saved.status, saved.content, saved.error) == (
        "interrupted",
        "the last batch and more",
        "its process died",
    )
    assert saved.reasoning == "thought"  # not given: kept
    assert saved.updated_at > answer.updated_at
    # Once ended, neither a second process nor a late save changes it.
    assert not await store.save_interrupted(answer.id, content="other", reasoning="other")
    await store.save_partial_answers({answer.id: "late"})
    assert await store.get_message(answer.id, owner=OWNER) == saved
    assert not await store.save_interrupted("f" * 32, content="x")


async def test_save_interrupted_sets_the_reasoning_given(store: Store) -> None:
    answer = await live_answer(store, "q")
    assert await store.save_interrupted(answer.id, content="a", reasoning="all of it")
    saved = await store.get_message(answer.id, owner=OWNER)
    assert (saved.content, saved.reasoning, saved.error) == ("a", "all of it", None)


async def test_save_interrupted_leaves_an_answer_its_run_ended(store: Store) -> None:
    answer = await live_answer(store, "q")
    await store.update_message(answer.id, content="whole", status="complete")
    assert not await store.save_interrupted(answer.id, content="part")
    saved = await store.get_message(answer.id, owner=OWNER)
    assert (saved.status, saved.content) == ("complete", "whole")


async def test_save_interrupted_keeps_the_tool_calls_the_log_held(store: Store) -> None:
    answer = await live_answer(store, "q")
    calls = [
        {
            "id": "call_1",
            "name": "files__read",
            "arguments": '{"path": "ä"}',
            "server": "files",
            "tool": "read",
            "approval": "ask",
            "decision": "approved",
            "offset": 3,
            "result": {"content": "text", "is_error": False},
        },
        {
            **{"id": "call_2", "name": "files__read", "arguments": "{}", "offset": 3},
            "server": "files",
            "tool": "read",
            "approval": "ask",
            "decision": None,
            "result": None,
        },
    ]
    assert await store.save_interrupted(answer.id, content="abc", tool_calls=calls)
    saved = await store.get_message(answer.id, owner=OWNER)
    assert saved.tool_calls == calls
    assert saved.status == "interrupted"
