"""ssechat.store: a turn started in one transaction (start_exchange, start_answer), the runs'
batched save (save_partial_answers), and the branch query behind both, on real files."""

from __future__ import annotations

import tempfile
from pathlib import Path

import anyio
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from ssechat.errors import ConflictError, InvalidRequestError, NotFoundError
from ssechat.store import UNSET, Exchange, Message, Store, open_store

from .store_support import OWNER, Database, Ticker, insert_message, path_in, sql, table_rows

pytestmark = pytest.mark.anyio


async def answered(
    store: Store, conversation_id: str, parent_id: str | None, question: str
) -> tuple[Message, Message]:
    """A question and its answer, complete (the conversation takes the model "demo" if it had
    none)."""
    started = await store.start_exchange(
        conversation_id, owner=OWNER, parent_id=parent_id, user_content=question, model="demo"
    )
    await store.update_message(started.answer.id, content=f"re: {question}", status="complete")
    return started.user, await store.get_message(started.answer.id, owner=OWNER)


# --- start_exchange -----------------------------------------------------------------------------


async def test_start_exchange_adds_a_turn_under_the_current_leaf(store: Store) -> None:
    conversation = await store.create_conversation(
        title="T", system_prompt="Be brief.", owner=OWNER
    )
    q1, a1 = await answered(store, conversation.id, None, "hello")
    await store.update_conversation(
        conversation.id, owner=OWNER, model=None
    )  # no model yet: m1 will be it
    before = await store.get_conversation(conversation.id, owner=OWNER)
    assert (before.model, before.current_leaf_id) == (None, a1.id)

    started = await store.start_exchange(
        conversation.id, owner=OWNER, user_content="and then?", model="m1"
    )

    assert isinstance(started, Exchange)
    assert started.conversation == before  # as it was, read in the same transaction
    user, answer = started.user, started.answer
    assert (user.role, user.status, user.parent_id, user.content, user.model) == (
        "user",
        "complete",
        a1.id,
        "and then?",
        None,
    )
    assert (answer.role, answer.status, answer.parent_id, answer.content, answer.model) == (
        "assistant",
        "streaming",
        user.id,
        "",
        "m1",
    )
    assert user.created_at == answer.created_at > before.updated_at
    assert started.branch == [q1, a1, user]
    assert await store.get_message(user.id, owner=OWNER) == user
    assert await store.get_message(answer.id, owner=OWNER) == answer
    assert await store.list_messages(conversation.id, owner=OWNER) == [q1, a1, user, answer]

    after = await store.get_conversation(conversation.id, owner=OWNER)
    assert (after.current_leaf_id, after.model, after.updated_at) == (
        answer.id,
        "m1",
        answer.created_at,
    )
    assert (after.title, after.system_prompt, after.created_at) == (
        "T",
        "Be brief.",
        before.created_at,
    )


async def test_start_exchange_sets_the_model_only_when_there_is_none(store: Store) -> None:
    conversation = await store.create_conversation(owner=OWNER)
    first = await store.start_exchange(conversation.id, owner=OWNER, user_content="one", model="m1")
    await store.update_message(first.answer.id, content="1", status="complete")
    second = await store.start_exchange(
        conversation.id, owner=OWNER, user_content="two", model="m2"
    )
    assert first.conversation.model is None
    assert second.conversation.model == "m1"
    assert second.answer.model == "m2"
    assert (await store.get_conversation(conversation.id, owner=OWNER)).model == "m1"

    chosen = await store.create_conversation(model="mine", owner=OWNER)
    started = await store.start_exchange(chosen.id, owner=OWNER, user_content="q", model="other")
    assert started.answer.model == "other"
    assert (await store.get_conversation(chosen.id, owner=OWNER)).model == "mine"


async def test_start_exchange_with_a_parent_given(store: Store) -> None:
    conversation = await store.create_conversation(owner=OWNER)
    q1, a1 = await answered(store, conversation.id, None, "one")
    q2, a2 = await answered(store, conversation.id, a1.id, "two")

    # An edit of the second question: a sibling of it, under a1, though the leaf is a2.
    edited = await store.start_exchange(
        conversation.id, owner=OWNER, parent_id=a1.id, user_content="two, again", model="demo"
    )
    assert edited.user.parent_id == q2.parent_id == a1.id
    assert edited.branch == [q1, a1, edited.user]
    assert edited.conversation.current_leaf_id == a2.id

    # None: a new root, an edit of the first question.
    await store.update_message(edited.answer.id, status="stopped")
    root = await store.start_exchange(
        conversation.id, owner=OWNER, parent_id=None, user_content="one, again", model="demo"
    )
    assert root.user.parent_id is None
    assert root.branch == [root.user]
    assert (
        await store.get_conversation(conversation.id, owner=OWNER)
    ).current_leaf_id == root.answer.id

    # A new conversation has no leaf: UNSET starts its first root.
    empty = await store.create_conversation(owner=OWNER)
    first = await store.start_exchange(
        empty.id, owner=OWNER, parent_id=UNSET, user_content="hi", model="m"
    )
    assert first.user.parent_id is None
    assert first.branch == [first.user]


async def test_start_exchange_refusals_change_nothing(store: Store, database: Database) -> None:
    mine = await store.create_conversation(owner=OWNER)
    theirs = await store.create_conversation(owner=OWNER)
    _, done = await answered(store, mine.id, None, "done")
    their_question, _ = await answered(store, theirs.id, None, "theirs")
    live = (
        await store.start_exchange(
            mine.id, owner=OWNER, parent_id=done.id, user_content="q", model="m"
        )
    ).answer
    before = table_rows(database)

    with pytest.raises(NotFoundError):
        await store.start_exchange("nope", owner=OWNER, user_content="x", model="m")
    with pytest.raises(InvalidRequestError) as caught:
        await store.start_exchange(
            mine.id, owner=OWNER, parent_id=their_question.id, user_content="x", model="m"
        )
    assert str(caught.value) == (
        f"parent_id {their_question.id!r} is not a message of this conversation"
    )
    # An unknown parent is a missing message (404 at the API), not another conversation's.
    with pytest.raises(NotFoundError, match="not-a-message"):
        await store.start_exchange(
            mine.id, owner=OWNER, parent_id="not-a-message", user_content="x", model="m"
        )
    # The answer still being generated, named or as the current leaf.
    for parent_id in (live.id, UNSET):
        with pytest.raises(ConflictError, match="still being generated; stop it first"):
            await store.start_exchange(
                mine.id, owner=OWNER, parent_id=parent_id, user_content="x", model="m"
            )

    assert table_rows(database) == before


async def test_a_failure_after_the_inserts_undoes_the_whole_turn(
    store: Store, database: Database
) -> None:
    conversation = await store.create_conversation(owner=OWNER)
    question, answer = await answered(store, conversation.id, None, "q")
    # Make the last statement of a start (moving the leaf) fail, after the messages went in.
    if isinstance(database, str):  # PostgreSQL: a trigger runs a function
        sql(
            database,
            "CREATE FUNCTION no_leaf() RETURNS trigger LANGUAGE plpgsql "
            "AS $$ BEGIN RAISE EXCEPTION 'no leaf for you'; END $$",
        )
        sql(
            database,
            "CREATE TRIGGER no_leaf BEFORE UPDATE OF current_leaf_id ON conversations "
            "FOR EACH ROW EXECUTE FUNCTION no_leaf()",
        )
    else:
        sql(
            database,
            "CREATE TRIGGER no_leaf BEFORE UPDATE OF current_leaf_id ON conversations "
            "BEGIN SELECT RAISE(ABORT, 'no leaf for you'); END",
        )
    before = table_rows(database)
    with pytest.raises(sa.exc.DBAPIError, match="no leaf for you"):
        await store.start_exchange(conversation.id, owner=OWNER, user_content="x", model="m")
    with pytest.raises(sa.exc.DBAPIError, match="no leaf for you"):
        await store.start_answer(answer.id, owner=OWNER, model="m")
    assert table_rows(database) == before

    on = " ON conversations" if isinstance(database, str) else ""
    sql(database, f"DROP TRIGGER no_leaf{on}")  # and the writer is fine afterwards
    started = await store.start_exchange(conversation.id, owner=OWNER, user_content="x", model="m")
    assert started.branch == [question, answer, started.user]


async def test_concurrent_starts_each_get_their_own_answer(
    store: Store, database: Database
) -> None:
    conversation = await store.create_conversation(owner=OWNER)
    question, answer = await answered(store, conversation.id, None, "first")
    await store.update_conversation(
        conversation.id, owner=OWNER, model=None
    )  # the first start will set it
    results: list[Exchange] = []

    async def start(i: int) -> None:
        results.append(
            await store.start_exchange(
                conversation.id,
                owner=OWNER,
                parent_id=answer.id,
                user_content=f"q{i}",
                model=f"m{i}",
            )
        )

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(start, i)

    assert len(results) == 20
    assert len({r.answer.id for r in results}) == len({r.user.id for r in results}) == 20
    for r in results:
        assert r.user.parent_id == answer.id
        assert r.answer.parent_id == r.user.id
        assert r.branch == [question, answer, r.user]
    messages = await store.list_messages(conversation.id, owner=OWNER)
    assert len(messages) == 2 + 40
    assert {m.id for m in messages} == {question.id, answer.id} | {
        m.id for r in results for m in (r.user, r.answer)
    }
    # The writes were one after another: the last one's answer is the leaf, and only the first
    # one found the conversation without a model.
    by_time = sorted(results, key=lambda r: r.answer.created_at)
    assert len({r.answer.created_at for r in results}) == 20
    final = await store.get_conversation(conversation.id, owner=OWNER)
    assert final.current_leaf_id == by_time[-1].answer.id
    assert final.model == by_time[0].answer.model
    assert [r.conversation.model for r in by_time] == [None] + [final.model] * 19
    rows = table_rows(database)
    assert len(rows["messages"]) == 42


async def test_concurrent_starts_on_the_current_leaf_let_one_through(store: Store) -> None:
    conversation = await store.create_conversation(owner=OWNER)
    await answered(store, conversation.id, None, "first")
    started: list[Exchange] = []
    refused: list[ConflictError] = []

    async def start(i: int) -> None:
        try:
            started.append(
                await store.start_exchange(
                    conversation.id, owner=OWNER, user_content=f"q{i}", model="m"
                )
            )
        except ConflictError as error:
            refused.append(error)

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(start, i)

    # The first makes its streaming answer the leaf; every later one finds it there.
    assert (len(started), len(refused)) == (1, 19)
    assert len(await store.list_messages(conversation.id, owner=OWNER)) == 4


# --- start_answer -------------------------------------------------------------------------------


async def test_start_answer_answers_the_question_again(store: Store) -> None:
    conversation = await store.create_conversation(owner=OWNER)
    q1, a1 = await answered(store, conversation.id, None, "one")
    q2, a2 = await answered(store, conversation.id, a1.id, "two")
    before = await store.get_conversation(conversation.id, owner=OWNER)

    again = await store.start_answer(a2.id, owner=OWNER, model="m2")
    assert again.conversation == before
    assert again.user == q2
    assert (
        again.branch
        == [q1, a1, q2]
        == path_in(await store.list_messages(conversation.id, owner=OWNER), q2.id)
    )
    answer = again.answer
    assert (answer.role, answer.status, answer.parent_id, answer.content, answer.model) == (
        "assistant",
        "streaming",
        q2.id,
        "",
        "m2",
    )
    assert await store.get_message(answer.id, owner=OWNER) == answer
    after = await store.get_conversation(conversation.id, owner=OWNER)
    assert (after.current_leaf_id, after.updated_at) == (answer.id, answer.created_at)
    assert after.model == before.model

    # From the question itself, even while another answer to it is being written.
    third = await store.start_answer(q1.id, owner=OWNER, model="m3")
    assert (third.user, third.branch, third.answer.parent_id) == (q1, [q1], q1.id)
    children = [
        m.id
        for m in await store.list_messages(conversation.id, owner=OWNER)
        if m.parent_id == q2.id
    ]
    assert children == [a2.id, answer.id]
    assert [
        m.id
        for m in await store.list_messages(conversation.id, owner=OWNER)
        if m.parent_id == q1.id
    ] == [
        a1.id,
        third.answer.id,
    ]


async def test_start_answer_refusals_change_nothing(store: Store, database: Database) -> None:
    conversation = await store.create_conversation(owner=OWNER)
    # What the store never makes, but a database may hold: built beside it with plain SQL.
    system = insert_message(database, conversation.id, role="system", content="rules")
    orphan = insert_message(database, conversation.id, role="assistant", content="out of nowhere")
    unfinished = insert_message(
        database, conversation.id, role="user", content="typing…", status="streaming"
    )
    before = table_rows(database)

    with pytest.raises(NotFoundError):
        await store.start_answer("nope", owner=OWNER, model="m")
    with pytest.raises(ConflictError, match="only a question or an answer can be regenerated"):
        await store.start_answer(system, owner=OWNER, model="m")
    with pytest.raises(ConflictError, match="this answer has no question to answer again"):
        await store.start_answer(orphan, owner=OWNER, model="m")
    with pytest.raises(ConflictError, match="still being generated"):
        await store.start_answer(unfinished, owner=OWNER, model="m")

    assert table_rows(database) == before


# --- save_partial_answers -------------------------------------------------------------------


async def test_save_partial_answers_writes_the_streaming_ones(
    store: Store, database: Database
) -> None:
    one = await store.create_conversation(owner=OWNER)
    two = await store.create_conversation(owner=OWNER)
    live1 = (
        await store.start_exchange(one.id, owner=OWNER, parent_id=None, user_content="a", model="m")
    ).answer
    started = await store.start_exchange(
        two.id, owner=OWNER, parent_id=None, user_content="b", model="m"
    )
    question, live2 = started.user, started.answer
    _, finished = await answered(store, two.id, question.id, "c")
    counts = {name: len(rows) for name, rows in table_rows(database).items()}

    await store.save_partial_answers(
        {live1.id: "Hel", live2.id: "Wor", finished.id: "overwritten?", "gone": "skipped"}
    )

    saved1, saved2 = (
        await store.get_message(live1.id, owner=OWNER),
        await store.get_message(live2.id, owner=OWNER),
    )
    assert (saved1.content, saved1.status) == ("Hel", "streaming")
    assert (saved2.content, saved2.status) == ("Wor", "streaming")
    assert saved1.updated_at == saved2.updated_at > live1.updated_at  # one transaction, one time
    assert saved1.created_at == live1.created_at
    assert (
        await store.get_message(finished.id, owner=OWNER) == finished
    )  # no longer streaming: untouched
    assert {name: len(rows) for name, rows in table_rows(database).items()} == counts

    await store.save_partial_answers({live1.id: "Hello"})
    assert (await store.get_message(live1.id, owner=OWNER)).content == "Hello"
    before = table_rows(database)
    await store.save_partial_answers({})
    await store.save_partial_answers({"gone": "x"})
    assert table_rows(database) == before


# --- the branch query -------------------------------------------------------------------------


@settings(max_examples=20, deadline=None)
@given(parents=st.lists(st.integers(min_value=-1, max_value=40), min_size=1, max_size=12))
async def test_the_branch_follows_parents_up_to_the_root(parents: list[int]) -> None:
    # Turn i goes under message parents[i] (mod the messages so far), or starts a root when that
    # is -1; every message is then probed as a parent: the branch a start reads must be the path
    # the parent links give.
    with tempfile.TemporaryDirectory() as folder:
        async with await open_store(Path(folder) / "t.db", clock=Ticker()) as store:
            conversation = await store.create_conversation(owner=OWNER)
            other = await store.create_conversation(owner=OWNER)
            await store.start_exchange(
                other.id, owner=OWNER, parent_id=None, user_content="x", model="m"
            )
            added: list[Message] = []
            for i, pick in enumerate(parents):
                parent = added[pick % len(added)].id if pick >= 0 and added else None
                started = await store.start_exchange(
                    conversation.id, owner=OWNER, parent_id=parent, user_content=str(i), model="m"
                )
                await store.update_message(started.answer.id, status="complete")
                added += [started.user, started.answer]
            tree = await store.list_messages(conversation.id, owner=OWNER)
            for message in added:
                probe = await store.start_exchange(
                    conversation.id,
                    owner=OWNER,
                    parent_id=message.id,
                    user_content="probe",
                    model="m",
                )
                assert probe.branch == [*path_in(tree, message.id), probe.user]
                if message.role == "assistant":
                    again = await store.start_answer(message.id, owner=OWNER, model="m")
                    assert again.branch == path_in(tree, message.id)[:-1]
