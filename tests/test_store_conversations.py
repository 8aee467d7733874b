"""ssechat.store: conversations (create, change, name, delete) and paging through them."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssechat.errors import ConflictError, InvalidRequestError, NotFoundError
from ssechat.store import UNSET, Conversation, Store, open_store

from .store_support import OWNER, Database, table_rows

pytestmark = pytest.mark.anyio


async def test_create_and_get_conversation(store: Store) -> None:
    created = await store.create_conversation(
        title="Plans", model="demo", system_prompt="Be brief.", owner="ann"
    )
    assert len(created.id) == 32
    assert created.created_at == created.updated_at
    assert created.current_leaf_id is None
    fetched = await store.get_conversation(created.id, owner=OWNER)
    assert fetched == created
    data = fetched.as_dict()
    assert data["title"] == "Plans"
    assert data["system_prompt"] == "Be brief."
    assert data["owner"] == "ann"
    assert data["created_at"].endswith("Z")
    assert data["current_leaf_id"] is None


async def test_unknown_conversation_is_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError):
        await store.get_conversation("nope", owner=OWNER)
    with pytest.raises(NotFoundError):
        await store.list_messages("nope", owner=OWNER)
    with pytest.raises(NotFoundError):
        await store.update_conversation("nope", owner=OWNER, title="x")
    with pytest.raises(NotFoundError):
        await store.delete_conversation("nope", owner=OWNER)
    with pytest.raises(NotFoundError):
        await store.start_exchange(
            "nope", owner=OWNER, parent_id=None, user_content="hi", model="demo"
        )
    with pytest.raises(NotFoundError):
        await store.start_exchange("nope", owner=OWNER, user_content="hi", model="demo")


async def test_update_conversation_changes_only_what_is_given(store: Store) -> None:
    created = await store.create_conversation(title="A", model="m1", system_prompt="S", owner=OWNER)
    updated = await store.update_conversation(created.id, owner=OWNER, title="B")
    assert (updated.title, updated.model, updated.system_prompt) == ("B", "m1", "S")
    assert updated.updated_at > created.updated_at
    assert updated.created_at == created.created_at

    cleared = await store.update_conversation(
        created.id, owner=OWNER, system_prompt=None, model=UNSET
    )
    assert (cleared.title, cleared.model, cleared.system_prompt) == ("B", "m1", None)
    assert await store.get_conversation(created.id, owner=OWNER) == cleared


async def test_current_leaf_must_be_a_message_of_the_conversation(
    store: Store, database: Database
) -> None:
    first = await store.create_conversation(owner=OWNER)
    other = await store.create_conversation(owner=OWNER)
    started = await store.start_exchange(
        first.id, owner=OWNER, parent_id=None, user_content="q", model="demo"
    )
    question, answer = started.user, started.answer
    foreign = await store.start_exchange(
        other.id, owner=OWNER, parent_id=None, user_content="elsewhere", model="demo"
    )
    before = table_rows(database)
    for bad in (foreign.user.id, "unknown"):
        with pytest.raises(InvalidRequestError):
            await store.update_conversation(
                first.id, owner=OWNER, title="changed", current_leaf_id=bad
            )
    assert table_rows(database) == before

    moved = await store.update_conversation(first.id, owner=OWNER, current_leaf_id=question.id)
    assert moved.current_leaf_id == question.id
    assert (
        await store.update_conversation(first.id, owner=OWNER, current_leaf_id=None)
    ).current_leaf_id is None
    assert answer.id != question.id


async def test_delete_conversation_takes_its_messages(store: Store, database: Database) -> None:
    doomed = await store.create_conversation(title="doomed", owner=OWNER)
    kept = await store.create_conversation(title="kept", owner=OWNER)
    started = await store.start_exchange(
        doomed.id, owner=OWNER, parent_id=None, user_content="q", model="d"
    )
    question, answer = started.user, started.answer
    await store.update_message(answer.id, content="a", status="complete")
    kept_question = (
        await store.start_exchange(
            kept.id, owner=OWNER, parent_id=None, user_content="k", model="demo"
        )
    ).user

    await store.delete_conversation(doomed.id, owner=OWNER)

    with pytest.raises(NotFoundError):
        await store.get_conversation(doomed.id, owner=OWNER)
    for message_id in (question.id, answer.id):
        with pytest.raises(NotFoundError):
            await store.get_message(message_id, owner=OWNER)
        with pytest.raises(NotFoundError):  # its branch is gone too
            await store.start_answer(message_id, owner=OWNER, model="demo")
        with pytest.raises(NotFoundError):
            await store.start_exchange(
                kept.id, owner=OWNER, parent_id=message_id, user_content="x", model="demo"
            )
    with pytest.raises(NotFoundError):
        await store.update_message(answer.id, content="late")
    with pytest.raises(NotFoundError):
        await store.list_messages(doomed.id, owner=OWNER)
    with pytest.raises(NotFoundError):
        await store.delete_conversation(doomed.id, owner=OWNER)
    assert await store.set_title_if_empty(doomed.id, "late title") is False

    rows = table_rows(database)
    assert [row[0] for row in rows["conversations"]] == [kept.id]
    assert {row[2] for row in rows["messages"]} == {kept.id}
    assert [m.id for m in await store.list_messages(kept.id, owner=OWNER)][:1] == [kept_question.id]
    page, _ = await store.list_conversations(owner=OWNER)
    assert [c.id for c in page] == [kept.id]


async def test_set_title_if_empty(store: Store) -> None:
    untitled = await store.create_conversation(owner=OWNER)
    assert await store.set_title_if_empty(untitled.id, "First") is True
    assert await store.set_title_if_empty(untitled.id, "Second") is False
    assert (await store.get_conversation(untitled.id, owner=OWNER)).title == "First"

    blank = await store.create_conversation(title="", owner=OWNER)
    assert await store.set_title_if_empty(blank.id, "Named") is True
    assert (await store.get_conversation(blank.id, owner=OWNER)).title == "Named"

    titled = await store.create_conversation(title="Mine", owner=OWNER)
    assert await store.set_title_if_empty(titled.id, "Theirs") is False
    assert (await store.get_conversation(titled.id, owner=OWNER)).title == "Mine"


async def test_starting_a_turn_bumps_the_conversation(store: Store) -> None:
    older = await store.create_conversation(title="older", owner=OWNER)
    newer = await store.create_conversation(title="newer", owner=OWNER)
    page, _ = await store.list_conversations(owner=OWNER)
    assert [c.id for c in page] == [newer.id, older.id]

    started = await store.start_exchange(
        older.id, owner=OWNER, parent_id=None, user_content="hi", model="m"
    )
    bumped = await store.get_conversation(older.id, owner=OWNER)
    assert bumped.updated_at == started.user.created_at > newer.updated_at
    page, _ = await store.list_conversations(owner=OWNER)
    assert [c.id for c in page] == [older.id, newer.id]

    # Answering again bumps it too.
    with pytest.raises(ConflictError):  # not while its answer is being written
        await store.start_exchange(older.id, owner=OWNER, user_content="more", model="m")
    await store.update_conversation(newer.id, owner=OWNER, title="newest")
    again = await store.start_answer(started.user.id, owner=OWNER, model="m")
    assert (
        await store.get_conversation(older.id, owner=OWNER)
    ).updated_at == again.answer.created_at
    page, _ = await store.list_conversations(owner=OWNER)
    assert [c.id for c in page] == [older.id, newer.id]


# --- paging -------------------------------------------------------------------------------------


async def all_pages(store: Store, limit: int) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        page, cursor = await store.list_conversations(limit=limit, cursor=cursor, owner=OWNER)
        assert len(page) <= limit
        pages.append([c.id for c in page])
        if cursor is None:
            return pages
        assert page, "a cursor is only given when a page is full"


async def test_pages_follow_one_another(store: Store) -> None:
    created = [await store.create_conversation(title=str(i), owner=OWNER) for i in range(5)]
    newest_first = [c.id for c in reversed(created)]
    assert await all_pages(store, 2) == [newest_first[0:2], newest_first[2:4], newest_first[4:]]
    assert await all_pages(store, 5) == [newest_first]
    assert await all_pages(store, 50) == [newest_first]


async def test_a_conversation_bumped_while_paging_is_not_seen_twice(store: Store) -> None:
    created = [await store.create_conversation(title=str(i), owner=OWNER) for i in range(4)]
    page1, cursor = await store.list_conversations(limit=2, owner=OWNER)
    assert [c.id for c in page1] == [created[3].id, created[2].id]
    await store.start_exchange(
        created[3].id, owner=OWNER, parent_id=None, user_content="bump", model="m"
    )
    fresh = await store.create_conversation(title="fresh", owner=OWNER)
    page2, cursor = await store.list_conversations(limit=2, cursor=cursor, owner=OWNER)
    assert [c.id for c in page2] == [created[1].id, created[0].id]
    assert cursor is None
    page, _ = await store.list_conversations(limit=2, owner=OWNER)
    assert [c.id for c in page] == [fresh.id, created[3].id]


@settings(max_examples=25, deadline=None)
@given(
    times=st.lists(st.integers(min_value=0, max_value=4), max_size=12),
    limit=st.integers(min_value=1, max_value=5),
)
async def test_paging_returns_every_conversation_once_in_order(
    times: list[int], limit: int
) -> None:
    now = [0.0]
    with tempfile.TemporaryDirectory() as folder:
        async with await open_store(Path(folder) / "p.db", clock=lambda: now[0]) as store:
            created: list[Conversation] = []
            for t in times:  # equal times exercise the tie-break on id
                now[0] = 1_700_000_000.0 + t
                created.append(await store.create_conversation(owner=OWNER))
            pages = await all_pages(store, limit)
    expected = [c.id for c in sorted(created, key=lambda c: (c.updated_at, c.id), reverse=True)]
    assert [i for page in pages for i in page] == expected
    assert len(pages) == max(1, math.ceil(len(created) / limit))


@pytest.mark.parametrize(
    "cursor",
    ["", "!!!", "bm90IGpzb24", "WzFd", "WyJhIiwiYiJd", "WzEsMl0", "WzEsImEiLDNd", "WyJhIl0", "é"],
)
async def test_a_malformed_cursor_is_an_invalid_request(store: Store, cursor: str) -> None:
    await store.create_conversation(owner=OWNER)
    with pytest.raises(InvalidRequestError):
        await store.list_conversations(cursor=cursor, owner=OWNER)


async def test_limit_must_be_positive(store: Store) -> None:
    with pytest.raises(InvalidRequestError):
        await store.list_conversations(limit=0, owner=OWNER)
