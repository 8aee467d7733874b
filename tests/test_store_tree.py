"""ssechat.store: the message tree (questions, answers, regenerations, edits, new roots) built
through the store's operations, and changing a message (update_message, startup's interrupt)."""

from __future__ import annotations

import pytest

from ssechat.errors import InvalidRequestError, NotFoundError
from ssechat.store import Store

from .store_support import OWNER, Database, path_in, table_rows

pytestmark = pytest.mark.anyio


async def test_exchange_regenerate_and_edit_make_a_tree(store: Store) -> None:
    conversation = await store.create_conversation(owner=OWNER)
    first = await store.start_exchange(
        conversation.id, owner=OWNER, parent_id=None, user_content="Hello", model="demo"
    )
    q1, a1 = first.user, first.answer
    assert (q1.role, q1.status, q1.parent_id, q1.content) == ("user", "complete", None, "Hello")
    assert (a1.role, a1.status, a1.parent_id, a1.content) == ("assistant", "streaming", q1.id, "")
    assert a1.model == "demo"
    assert (await store.get_conversation(conversation.id, owner=OWNER)).current_leaf_id == a1.id

    await store.update_message(a1.id, content="Hi!", status="complete", finish_reason="stop")
    second = await store.start_exchange(
        conversation.id, owner=OWNER, parent_id=a1.id, user_content="Tell a joke", model="demo"
    )
    q2, a2 = second.user, second.answer
    regenerate = await store.start_answer(a2.id, owner=OWNER, model="other")
    regenerated = regenerate.answer
    assert (regenerated.parent_id, regenerated.status, regenerated.model) == (
        q2.id,
        "streaming",
        "other",
    )
    assert (
        await store.get_conversation(conversation.id, owner=OWNER)
    ).current_leaf_id == regenerated.id

    edit = await store.start_exchange(
        conversation.id, owner=OWNER, parent_id=a1.id, user_content="Tell a poem", model="demo"
    )
    edited = edit.user
    assert edited.parent_id == q2.parent_id
    assert (
        await store.get_conversation(conversation.id, owner=OWNER)
    ).current_leaf_id == edit.answer.id

    tree = await store.list_messages(conversation.id, owner=OWNER)
    assert [m.id for m in tree] == [
        q1.id,
        a1.id,
        q2.id,
        a2.id,
        regenerated.id,
        edited.id,
        edit.answer.id,
    ]
    assert tree[1].content == "Hi!"
    children_of_q2 = [m.id for m in tree if m.parent_id == q2.id]
    assert children_of_q2 == [a2.id, regenerated.id]

    assert [m.id for m in path_in(tree, regenerated.id)] == [q1.id, a1.id, q2.id, regenerated.id]
    assert [m.id for m in path_in(tree, a2.id)] == [q1.id, a1.id, q2.id, a2.id]
    assert [m.id for m in path_in(tree, edited.id)] == [q1.id, a1.id, edited.id]
    assert [m.id for m in path_in(tree, q1.id)] == [q1.id]
    # The branches the store read while starting each turn agree with the tree.
    assert first.branch == [q1]
    assert second.branch == regenerate.branch == path_in(tree, q2.id)
    assert edit.branch == path_in(tree, edited.id)


async def test_a_new_root_is_a_sibling_of_the_first_question(store: Store) -> None:
    conversation = await store.create_conversation(owner=OWNER)
    first = await store.start_exchange(
        conversation.id, owner=OWNER, parent_id=None, user_content="v1", model="demo"
    )
    second = await store.start_exchange(
        conversation.id, owner=OWNER, parent_id=None, user_content="v2", model="demo"
    )
    assert second.user.parent_id is None
    assert second.branch == [second.user]
    roots = [
        m.id for m in await store.list_messages(conversation.id, owner=OWNER) if m.parent_id is None
    ]
    assert roots == [first.user.id, second.user.id]


async def test_a_parent_from_another_conversation_changes_nothing(
    store: Store, database: Database
) -> None:
    mine = await store.create_conversation(owner=OWNER)
    theirs = await store.create_conversation(owner=OWNER)
    await store.start_exchange(
        mine.id, owner=OWNER, parent_id=None, user_content="mine", model="demo"
    )
    their = await store.start_exchange(
        theirs.id, owner=OWNER, parent_id=None, user_content="theirs", model="demo"
    )
    await store.update_message(their.answer.id, content="done", status="complete")
    before = table_rows(database)

    for parent in (their.user.id, their.answer.id):
        with pytest.raises(InvalidRequestError, match="is not a message of this conversation"):
            await store.start_exchange(
                mine.id, owner=OWNER, parent_id=parent, user_content="x", model="demo"
            )
        with pytest.raises(InvalidRequestError, match="is not a message of this conversation"):
            await store.update_conversation(mine.id, owner=OWNER, current_leaf_id=parent)
    with pytest.raises(NotFoundError):
        await store.start_exchange(
            mine.id, owner=OWNER, parent_id="not-a-message", user_content="x", model="demo"
        )

    assert table_rows(database) == before


async def test_update_message_changes_only_what_is_given(store: Store) -> None:
    conversation = await store.create_conversation(owner=OWNER)
    started = await store.start_exchange(
        conversation.id, owner=OWNER, parent_id=None, user_content="q", model="demo"
    )
    question, answer = started.user, started.answer

    await store.update_message(answer.id, content="Hel")
    first = await store.get_message(answer.id, owner=OWNER)
    assert (first.content, first.status, first.finish_reason, first.usage, first.error) == (
        "Hel",
        "streaming",
        None,
        None,
        None,
    )
    assert first.updated_at > answer.updated_at
    assert first.created_at == answer.created_at

    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    await store.update_message(answer.id, status="length", finish_reason="length", usage=usage)
    second = await store.get_message(answer.id, owner=OWNER)
    assert (second.content, second.status, second.finish_reason, second.usage) == (
        "Hel",
        "length",
        "length",
        usage,
    )
    assert second.updated_at > first.updated_at

    await store.update_message(answer.id, status="error", error="upstream said no")
    third = await store.get_message(answer.id, owner=OWNER)
    assert (third.content, third.status, third.error, third.usage) == (
        "Hel",
        "error",
        "upstream said no",
        usage,
    )
    assert third.as_dict()["error"] == "upstream said no"
    assert await store.get_message(question.id, owner=OWNER) == question

    with pytest.raises(InvalidRequestError):
        await store.update_message(answer.id, status="finished")
    assert await store.get_message(answer.id, owner=OWNER) == third
    with pytest.raises(NotFoundError):
        await store.update_message("nope", content="x")


async def test_mark_streaming_interrupted(store: Store) -> None:
    one = await store.create_conversation(owner=OWNER)
    two = await store.create_conversation(owner=OWNER)
    live1 = (
        await store.start_exchange(one.id, owner=OWNER, parent_id=None, user_content="a", model="m")
    ).answer
    started = await store.start_exchange(
        two.id, owner=OWNER, parent_id=None, user_content="b", model="m"
    )
    question, done = started.user, started.answer
    await store.update_message(done.id, content="ok", status="complete")
    live2 = (await store.start_answer(question.id, owner=OWNER, model="m")).answer
    await store.update_message(live2.id, content="partial")

    assert await store.mark_streaming_interrupted() == 2
    statuses = {
        m.id: m.status for c in (one, two) for m in await store.list_messages(c.id, owner=OWNER)
    }
    assert statuses[live1.id] == statuses[live2.id] == "interrupted"
    assert statuses[done.id] == "complete"
    assert (await store.get_message(live2.id, owner=OWNER)).content == "partial"
    assert list(statuses.values()).count("complete") == 3  # two questions and one answer
    assert await store.mark_streaming_interrupted() == 0
