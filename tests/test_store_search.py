"""ssechat.store: full-text search (``Store.search``) on both databases: words, phrases,
prefixes, operators typed as text, titles, answers saved in batches, the owner check, deleted
conversations, pages, and snippets as plain parts."""

from __future__ import annotations

import contextlib
import re
import sqlite3
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from ssechat.errors import InvalidRequestError
from ssechat.store import Store, open_store
from ssechat.store import search as search_module
from ssechat.store.dialects import pick
from ssechat.store.migrations import MIGRATIONS, apply_migrations
from ssechat.store.search_query import MARK_END, MARK_START, SearchHit

from .store_support import OWNER, Database, sql

pytestmark = pytest.mark.anyio

OTHER = "bob"
NAMES = [migration.__name__ for migration in MIGRATIONS]


async def say(store: Store, text: str, *, title: str | None = None, owner: str = OWNER) -> str:
    """A conversation holding one question ``text`` (answer left streaming); its id."""
    conversation = await store.create_conversation(title=title, owner=owner)
    await store.start_exchange(conversation.id, owner=owner, user_content=text, model="m")
    return conversation.id


def texts(hits: list[SearchHit]) -> list[str]:
    return ["".join(part.text for part in hit.snippet) for hit in hits]


def marked(hit: SearchHit) -> list[str]:
    return [part.text for part in hit.snippet if part.match]


async def test_every_word_must_match_and_is_marked(store: Store) -> None:
    both = await say(store, "The quick brown fox jumps")
    await say(store, "a quick answer")
    hits, cursor = await store.search(OWNER, "fox quick")
    assert cursor is None
    assert [hit.conversation_id for hit in hits] == [both]
    assert (hits[0].role, texts(hits)) == ("user", ["The quick brown fox jumps"])
    assert marked(hits[0]) == ["quick", "fox"]


async def test_a_phrase_matches_its_words_in_order_only(store: Store) -> None:
    in_order = await say(store, "please open source the tool")
    await say(store, "source code is open")
    hits, _ = await store.search(OWNER, '"open source"')
    assert [hit.conversation_id for hit in hits] == [in_order]
    assert marked(hits[0]) == ["open source"] or marked(hits[0]) == ["open", "source"]
    words, _ = await store.search(OWNER, "open source")
    assert len(words) == 2


async def test_a_trailing_star_is_a_prefix(store: Store) -> None:
    servers = await say(store, "three servers and a load balancer")
    service = await say(store, "a service")
    await say(store, "observe")
    hits, _ = await store.search(OWNER, "serv*")
    assert {hit.conversation_id for hit in hits} == {servers, service}
    assert sorted(text for hit in hits for text in marked(hit)) == ["servers", "service"]
    exact, _ = await store.search(OWNER, "serv")
    assert exact == []
    phrase, _ = await store.search(OWNER, '"load bal"*')
    assert [hit.conversation_id for hit in phrase] == [servers]


@pytest.mark.parametrize(
    "typed",
    [
        "AND",
        "OR",
        "NOT",
        "NEAR",
        "^",
        ":",
        "(",
        ")",
        "-",
        "&",
        "|",
        "!",
        "<->",
        ":*",
        '"',
        "\\",
        "\x00",
        "'",
        "*",
        "🙂",
        MARK_START + MARK_END,
        'NOT ( "a OR -b :* & | ! <-> \\ \x00 🙂 NEAR(x y',
        "'; DROP TABLE messages; --",
    ],
)
async def test_operators_typed_are_text(store: Store, typed: str) -> None:
    text = "alpha beta NOT gamma AND near OR delta"
    plain = await say(store, text)
    alone, _ = await store.search(OWNER, typed)  # never an error
    words = set(re.findall(r"[^\W_]+", typed.lower()))
    if not words:
        assert alone == []
    # Mixed in with real words: its words must match as words, the rest is nothing.
    hits, _ = await store.search(OWNER, f"alpha {typed} beta")
    expected = [plain] if words <= set(text.lower().split()) else []
    assert [hit.conversation_id for hit in hits] == expected
    if not words:  # glued between two words: a separator, as in the text
        glued, _ = await store.search(OWNER, f"alpha{typed}beta")
        assert [hit.conversation_id for hit in glued] == [plain]
    operators, _ = await store.search(OWNER, "NOT AND OR near")
    assert [hit.conversation_id for hit in operators] == [plain]


async def test_a_title_is_a_hit_of_its_own(store: Store) -> None:
    titled = await say(store, "nothing here", title="Kubernetes upgrade plan")
    hits, _ = await store.search(OWNER, "kubernetes")
    assert [(hit.conversation_id, hit.message_id, hit.role) for hit in hits] == [
        (titled, None, None)
    ]
    assert (hits[0].title, marked(hits[0])) == ("Kubernetes upgrade plan", ["Kubernetes"])
    await store.update_conversation(titled, owner=OWNER, title="Renamed")
    assert (await store.search(OWNER, "kubernetes"))[0] == []
    renamed, _ = await store.search(OWNER, "renamed")
    assert [hit.conversation_id for hit in renamed] == [titled]
    await store.set_title_if_empty(await say(store, "x"), "Later kubernetes title")
    assert len((await store.search(OWNER, "kubernetes"))[0]) == 1


async def test_other_users_conversations_never_appear(store: Store) -> None:
    theirs = await say(store, "bob's secret recipe for pancakes", title="pancakes", owner=OTHER)
    mine = await say(store, "my pancakes")
    for query in ("pancakes", '"secret recipe"', "secr*", "recipe pancakes"):
        hits, _ = await store.search(OWNER, query)
        assert theirs not in {hit.conversation_id for hit in hits}, query
    assert [hit.conversation_id for hit in (await store.search(OWNER, "pancakes"))[0]] == [mine]
    their_hits, _ = await store.search(OTHER, '"secret recipe"')
    assert [hit.conversation_id for hit in their_hits] == [theirs]


async def test_an_answer_is_found_once_it_ends_never_while_it_streams(store: Store) -> None:
    # Indexed in the saved batch that ends it (m010), not at each batch the saver writes.
    conversation = await store.create_conversation(owner=OWNER)
    started = await store.start_exchange(
        conversation.id, owner=OWNER, user_content="what about wildebeest", model="m"
    )
    answer = started.answer.id
    # The question is found at once; the streaming answer's batches are not.
    assert [hit.role for hit in (await store.search(OWNER, "wildebeest"))[0]] == ["user"]
    await store.save_partial_answers({answer: "The first batch mentions zebras"})
    assert (await store.search(OWNER, "zebras"))[0] == []
    await store.save_partial_answers({answer: "The first batch mentions zebras and giraffes"})
    assert (await store.search(OWNER, "giraffes"))[0] == []
    await store.update_message(answer, content="Zebras, giraffes and okapis", status="complete")
    hits, _ = await store.search(OWNER, "giraffes")
    assert [(hit.message_id, hit.role) for hit in hits] == [(answer, "assistant")]
    # An ended answer changed later (rewritten) is indexed again, its old words gone.
    await store.update_message(answer, content="Rewritten: only okapis", status="complete")
    assert (await store.search(OWNER, "zebras"))[0] == []
    assert [hit.message_id for hit in (await store.search(OWNER, "okapis"))[0]] == [answer]
    await store.delete_conversation(conversation.id, owner=OWNER)
    assert (await store.search(OWNER, "okapis"))[0] == []


async def test_a_deleted_conversation_is_gone_from_results(store: Store) -> None:
    doomed = await say(store, "ephemeral words", title="ephemeral title")
    assert len((await store.search(OWNER, "ephemeral"))[0]) == 2
    await store.delete_conversation(doomed, owner=OWNER)
    assert (await store.search(OWNER, "ephemeral"))[0] == []


async def test_pages_follow_the_cursor_without_repeats(store: Store) -> None:
    made = {await say(store, f"needle number {i}") for i in range(7)}
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        hits, cursor = await store.search(OWNER, "needle", limit=3, cursor=cursor)
        pages += 1
        seen += [hit.conversation_id for hit in hits]
        if cursor is None:
            break
    assert pages == 3
    assert sorted(seen) == sorted(made)
    # Equal ranks: the newest conversation first.
    newest_first, _ = await store.search(OWNER, "needle", limit=7)
    updated = [hit.updated_at for hit in newest_first]
    assert updated == sorted(updated, reverse=True)


async def test_only_the_newest_candidates_are_ranked(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A word in more of the owner's messages (and titles) than CANDIDATES: the hits are the
    # newest of them; another user's newer ones take no place among them.
    monkeypatch.setattr(search_module, "CANDIDATES", 3)
    made = [await say(store, f"needle {i} hay", title=f"needle title {i}") for i in range(5)]
    await say(store, "needle of bob", title="needle bob", owner=OTHER)
    hits, cursor = await store.search(OWNER, "needle", limit=50)
    assert cursor is None
    assert {hit.conversation_id for hit in hits if hit.message_id is not None} == set(made[2:])
    assert {hit.conversation_id for hit in hits if hit.message_id is None} == set(made[2:])
    assert [marked(hit) for hit in hits] == [["needle"]] * 6
    # Fewer matches than CANDIDATES: all of them, whatever their age.
    (hit,), _ = await store.search(OWNER, "0 hay")
    assert hit.conversation_id == made[0]


async def test_a_bad_limit_or_cursor_is_refused(store: Store) -> None:
    await say(store, "word " * 3)
    for limit in (0, 51):
        with pytest.raises(InvalidRequestError):
            await store.search(OWNER, "word", limit=limit)
    for bad in ("nonsense", "W10"):
        with pytest.raises(InvalidRequestError):
            await store.search(OWNER, "word", cursor=bad)
    await say(store, "word again")
    _, cursor = await store.search(OWNER, "word", limit=1)
    assert cursor is not None
    with pytest.raises(InvalidRequestError):  # another query's cursor
        await store.search(OWNER, "again", cursor=cursor)


async def test_markup_comes_back_as_plain_text(store: Store) -> None:
    await say(store, "look: <script>alert('x')</script> <b>bold</b> &amp; done")
    hits, _ = await store.search(OWNER, "alert")
    assert texts(hits) == ["look: <script>alert('x')</script> <b>bold</b> &amp; done"]
    assert marked(hits[0]) == ["alert"]


async def test_the_marks_in_a_text_are_not_taken_as_marks(store: Store) -> None:
    await say(store, f"odd {MARK_START}private{MARK_END} characters")
    hits, _ = await store.search(OWNER, "characters")
    assert texts(hits) == ["odd private characters"]
    assert marked(hits[0]) == ["characters"]


async def test_the_migration_indexes_the_rows_it_finds(database: Database) -> None:
    dialect = pick(database)
    reader, writer = dialect.create_engines(dialect.url)
    try:
        with writer.begin() as conn:
            apply_migrations(conn, MIGRATIONS[: NAMES.index("m007_search")])
        for statement, parameters in (
            (
                "INSERT INTO conversations (id, title, owner, created_at, updated_at) "
                "VALUES (?, ?, ?, 1.0, 2.0)",
                ("c1", "Old hippopotamus title", OWNER),
            ),
            (
                "INSERT INTO messages (id, conversation_id, role, content, status, created_at, "
                "updated_at) VALUES (?, ?, 'user', ?, 'complete', 1.0, 2.0)",
                ("m1", "c1", "an old hippopotamus message"),
            ),
        ):
            sql(database, statement, parameters)
    finally:
        writer.dispose()
        reader.dispose()
    async with await open_store(database) as store:
        hits, _ = await store.search(OWNER, "hippopotamus")
    assert sorted((hit.conversation_id, str(hit.message_id)) for hit in hits) == [
        ("c1", "None"),
        ("c1", "m1"),
    ]


# --- SQLite: the titles' index is reached by key (m009_title_keys) ----------------------------


def query(path: Database, statement: str, parameters: Sequence[Any] = ()) -> list[Any]:
    """The rows of one statement, read beside the store (SQLite)."""
    with contextlib.closing(sqlite3.connect(path)) as con:
        return con.execute(statement, parameters).fetchall()


def check_titles_index(path: Database) -> None:
    """The database and both FTS5 indexes are whole, and each title is indexed once, under the
    key its conversation's row in ``titles_fts_keys`` gives."""
    assert query(path, "PRAGMA integrity_check") == [("ok",)]
    for table in ("titles_fts", "messages_fts"):  # raises if the index disagrees with its rows
        sql(path, f"INSERT INTO {table} ({table}, rank) VALUES ('integrity-check', 1)")
    indexed = query(path, "SELECT rowid, conversation_id, title FROM titles_fts ORDER BY rowid")
    keys = query(path, "SELECT key, conversation_id FROM titles_fts_keys ORDER BY key")
    assert [(key, id) for key, id, _ in indexed] == keys
    titled = query(path, "SELECT id, title FROM conversations WHERE title IS NOT NULL")
    assert sorted((id, title) for _, id, title in indexed) == sorted(titled)


def title_key(path: Database, conversation_id: str) -> int:
    ((key,),) = query(
        path, "SELECT key FROM titles_fts_keys WHERE conversation_id = ?", (conversation_id,)
    )
    return int(key)


async def test_sqlite_titles_stay_indexed_once_through_renames_and_deletes(
    store: Store, database: Database, backend: str
) -> None:
    made = [await say(store, f"text {i}", title=f"gazelle {i}") for i in range(6)]
    untitled = await say(store, "no title yet")
    await store.update_conversation(made[0], owner=OWNER, title="antelope 0")
    await store.update_conversation(made[1], owner=OWNER, title=None)
    await store.set_title_if_empty(untitled, "gazelle later")
    await store.delete_conversation(made[2], owner=OWNER)
    hits, _ = await store.search(OWNER, "gazelle")
    assert {hit.conversation_id for hit in hits} == {*made[3:], untitled}
    assert [hit.conversation_id for hit in (await store.search(OWNER, "antelope"))[0]] == [made[0]]
    if backend != "sqlite":
        return
    check_titles_index(database)
    # A save that leaves the title as it was re-indexes nothing: the title keeps its key (a
    # re-indexed one would take a new, highest one).
    kept = title_key(database, made[3])
    await store.update_conversation(made[3], owner=OWNER, title="gazelle 3", model="m2")
    assert title_key(database, made[3]) == kept
    await store.update_conversation(made[3], owner=OWNER, title="gazelle three")
    assert title_key(database, made[3]) > kept
    check_titles_index(database)


def trigger_plans(con: sqlite3.Connection) -> dict[str, list[str]]:
    """What SQLite plans for each statement of the titles' triggers, run as the trigger runs
    it (``old.x``/``new.x`` bound as parameters)."""
    plans: dict[str, list[str]] = {}
    rows = con.execute("SELECT name, sql FROM sqlite_master WHERE name LIKE 'titles_fts_%'")
    for name, text in rows.fetchall():
        if not text.startswith("CREATE TRIGGER"):
            continue
        body = text.split(" BEGIN ", 1)[1].rsplit("END", 1)[0]
        for statement in filter(None, (s.strip() for s in body.split(";"))):
            bound = re.sub(r"\b(old|new)\.(\w+)", r":\1_\2", statement)
            values = {"old_id": "x", "new_id": "x", "old_title": "t", "new_title": "t"}
            plan = con.execute(f"EXPLAIN QUERY PLAN {bound}", values).fetchall()
            plans.setdefault(name, []).extend(str(row[3]) for row in plan)
    return plans


def vm_steps(con: sqlite3.Connection, statement: str, parameters: Sequence[Any]) -> int:
    """How many virtual machine instructions SQLite runs for a statement (its triggers and
    FTS5's own statements included): a measure of work, unlike a time."""
    steps = 0

    def step() -> int:
        nonlocal steps
        steps += 1
        return 0

    con.set_progress_handler(step, 1)
    try:
        con.execute(statement, parameters)
    finally:
        con.set_progress_handler(None, 1)
    return steps


async def test_sqlite_deletes_and_renames_reach_a_title_by_key(db_path: Path) -> None:
    # m007's triggers found a title by its UNINDEXED conversation_id: a scan of every title per
    # conversation deleted (20 000 titles, 1 400 conversations deleted: 10 s).
    async with await open_store(db_path):
        pass
    with contextlib.closing(sqlite3.connect(db_path)) as con:
        plans = trigger_plans(con)
        assert set(plans) == {"titles_fts_insert", "titles_fts_update", "titles_fts_delete"}
        for name, details in plans.items():
            for detail in details:  # FTS5 without a constraint ("INDEX 0:") reads every row
                assert not re.fullmatch(r"SCAN titles_fts VIRTUAL TABLE INDEX \d+:", detail)
                assert not detail.startswith("SCAN titles_fts_keys"), (name, detail)
        assert any("INDEX 0:=" in detail for detail in plans["titles_fts_delete"])

        def add(count: int) -> list[str]:
            ids = [uuid.uuid4().hex for _ in range(count)]
            with con:
                con.executemany(
                    "INSERT INTO conversations (id, title, owner, created_at, updated_at) "
                    "VALUES (?, ?, 'ann', 1, 1)",
                    [(id, f"title {id[:6]} of a conversation") for id in ids],
                )
            return ids

        def work(ids: list[str]) -> tuple[int, int]:
            with con:
                renamed = vm_steps(
                    con, "UPDATE conversations SET title = 'renamed' WHERE id = ?", ids[:1]
                )
                deleted = vm_steps(con, "DELETE FROM conversations WHERE id = ?", ids[1:2])
            return renamed, deleted

        few = work(add(20))
        many = work(add(4_000))  # by scan (m007's triggers): 100 times the instructions
        for small, large in zip(few, many, strict=True):  # the rename, the delete
            assert large < 2 * small, (few, many)
    check_titles_index(db_path)
