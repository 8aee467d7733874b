"""ssechat.store: full-text search (``Store.search``) on both databases: words, phrases,
prefixes, operators typed as text, titles, answers saved in batches, the owner check, deleted
conversations, pages, and snippets as plain parts."""

from __future__ import annotations

import re

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


async def test_an_answer_is_found_after_each_saved_batch_and_its_final_save(store: Store) -> None:
    conversation = await store.create_conversation(owner=OWNER)
    started = await store.start_exchange(conversation.id, owner=OWNER, user_content="q", model="m")
    answer = started.answer.id
    await store.save_partial_answers({answer: "The first batch mentions zebras"})
    hits, _ = await store.search(OWNER, "zebras")
    assert [(hit.message_id, hit.role) for hit in hits] == [(answer, "assistant")]
    await store.save_partial_answers({answer: "The first batch mentions zebras and giraffes"})
    assert [hit.message_id for hit in (await store.search(OWNER, "giraffes"))[0]] == [answer]
    await store.update_message(answer, content="Rewritten: only okapis", status="complete")
    assert (await store.search(OWNER, "zebras"))[0] == []
    assert [hit.message_id for hit in (await store.search(OWNER, "okapis"))[0]] == [answer]


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
