"""The ``search`` scenario: ``GET /api/search`` over 10 000 conversations of one user holding
200 000 messages, against the goal of 50 ms at p95, on SQLite and on PostgreSQL.

The database is filled by direct inserts into ``ssechat.store.schema``'s tables, in large
transactions, while the freshly started server is idle (the search index is kept by the
database itself: SQLite's triggers, PostgreSQL's generated columns; nothing goes through the
import API): the bench's signed-in user owns ``conversations`` conversations of ``messages``
messages each (a linear chain, user and assistant in turn, titles and texts drawn from
``bench.exports.vocabulary``), and a second user owns ``other_conversations`` more of the same
words, spread evenly among the first user's (both wrote all along), so that the owner filter
has something to filter. On PostgreSQL the fill ends with a
``VACUUM ANALYZE`` (what autovacuum would do after such a load); on SQLite with a WAL
checkpoint.

Then a query mix, each query ``requests`` times one after another after ``warmup`` untimed
ones, at the page size the UI asks for (20): a rare word, a common word (in most messages), two
words, a "phrase", a prefix*, a word only in titles, a word in nothing. Latency is from sending
the request to having read the whole answer (a new connection each time, as ``bench.client``
makes them). Each kind stops early after ``seconds`` seconds, so that a slow kind cannot
stretch the scenario: its figures then stand on fewer requests (the result says how many).

Every answer is checked: HTTP 200, at most a page of hits, none in the other user's
conversations (checked on the first answer of each kind), the title word's hits are titles, the
rare word, the title word and the absent word give exactly the first page the fill counted for
them (``rare_word_hits``, ``title_word_titles``, none), the others at least one hit; anything
else is an error. The load average at the start and end is recorded: the
machine may be shared. Like every scenario it starts its own server and only talks to
127.0.0.1; it never changes the server's code or settings.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import quote

import orjson
import sqlalchemy as sa

from bench.client import clock, fetch
from bench.exports import ABSENT_WORD, COMMON_WORD, RARE_WORD, TITLE_WORD, TextMaker, vocabulary
from bench.peers import Peer
from bench.procs import loadavg
from bench.scenarios import Bench
from bench.stats import percentile, rnd
from ssechat.store import schema

__all__ = ["GOAL_MS", "PAGE", "SearchSizes", "fill", "queries", "search"]

GOAL_MS = 50.0
PAGE = 20  # what the UI asks for
BATCH = 250  # conversations per transaction of the fill
OTHER_OWNER = "bench-other-user"


@dataclass(frozen=True, slots=True)
class SearchSizes:
    conversations: int  # the bench user's
    messages: int  # per conversation
    other_conversations: int  # the second user's
    question_chars: int
    answer_chars: int
    requests: int  # per query kind
    warmup: int
    seconds: float  # at most, per query kind


def queries() -> dict[str, str]:
    """The query mix, by kind (the words are ``bench.exports``'s: their frequencies are known)."""
    words = vocabulary()
    return {
        "rare word": RARE_WORD,
        "common word": COMMON_WORD,
        "two words": f"{words[4]} {words[40]}",
        "phrase": f'"{words[1]} {words[2]}"',
        "prefix": f"{words[3][:3]}*",
        "title word": TITLE_WORD,
        "no match": ABSENT_WORD,
    }


def _engine(url: str) -> sa.Engine:
    if url.startswith("postgresql"):
        from ssechat.store import postgres  # the psycopg URL, as the server makes it

        return sa.create_engine(postgres.resolve_url(url))
    return sa.create_engine(url)


def fill(
    url: str, owner: str, sizes: SearchSizes, *, seed: int = 14
) -> tuple[dict[str, Any], set[str]]:
    """Insert the scenario's conversations and messages into the migrated database at ``url``
    (blocking: run it in a thread); return what was written and how long it took, and the ids
    of ``owner``'s conversations."""
    maker = TextMaker(seed)
    engine = _engine(url)
    started = time.perf_counter()
    # The second user's conversations spread evenly among the first one's: both write all along.
    total = sizes.conversations + sizes.other_conversations
    other = sizes.other_conversations
    owners = [
        OTHER_OWNER if (i + 1) * other // total > i * other // total else owner
        for i in range(total)
    ]
    chars = (sizes.question_chars, sizes.answer_chars)
    base = 1_700_000_000.0
    text_bytes = 0
    owned: set[str] = set()
    # The owner's messages and titles holding RARE_WORD (each one hit), titles holding TITLE_WORD
    rare = titled = 0
    try:
        for first in range(0, len(owners), BATCH):
            conversations: list[dict[str, Any]] = []
            messages: list[dict[str, Any]] = []
            for index in range(first, min(first + BATCH, len(owners))):
                created = base + index * 60.0
                conversation = uuid.UUID(int=maker.rng.getrandbits(128)).hex
                if owners[index] == owner:
                    owned.add(conversation)
                parent: str | None = None
                for position in range(sizes.messages):
                    message = uuid.UUID(int=maker.rng.getrandbits(128)).hex
                    text = maker.text(chars[position % 2])
                    text_bytes += len(text)
                    # No other word holds these letters in a row: the vocabulary's words are
                    # made of other syllables.
                    rare += owners[index] == owner and RARE_WORD in text.lower()
                    messages.append({
                        "id": message, "conversation_id": conversation, "parent_id": parent,
                        "role": ("user", "assistant")[position % 2], "content": text,
                        "status": "complete", "model": None if position % 2 == 0 else "gpt-4o",
                        "created_at": created + position, "updated_at": created + position,
                    })  # fmt: skip
                    parent = message
                title = maker.title(index)
                titled += owners[index] == owner and TITLE_WORD in title.lower()
                rare += owners[index] == owner and RARE_WORD in title.lower()
                conversations.append({
                    "id": conversation, "title": title, "model": "gpt-4o",
                    "owner": owners[index], "created_at": created,
                    "updated_at": created + sizes.messages, "current_leaf_id": parent,
                })  # fmt: skip
            with engine.begin() as conn:
                conn.execute(sa.insert(schema.conversations), conversations)
                conn.execute(sa.insert(schema.messages), messages)
        filled = time.perf_counter() - started
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                    "VACUUM ANALYZE"
                )
        else:
            with engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        engine.dispose()
    return {
        "conversations": len(owned),
        "messages": sizes.conversations * sizes.messages,
        "other_conversations": sizes.other_conversations,
        "other_messages": sizes.other_conversations * sizes.messages,
        "text_mb": rnd(text_bytes / 1e6, 1),
        "rare_word_hits": rare,
        "title_word_titles": titled,
        "fill_s": rnd(filled, 1),
        "fill_and_maintenance_s": rnd(time.perf_counter() - started, 1),
    }, owned


async def _user_id(peer: Peer) -> str:
    status, body = await fetch(peer.port, "GET", "/api/auth/me", headers=peer.auth)
    if status != 200:
        raise RuntimeError(f"GET /api/auth/me: HTTP {status}")
    user = orjson.loads(body)
    return str(user.get("id") or user["user"]["id"])


def _problem(
    kind: str, status: int, body: bytes, owned: set[str] | None, expected: int | None
) -> str:
    """What is wrong with one answer ("" if nothing); ``expected``: the hits the first page
    must hold, when the fill knows them."""
    if status != 200:
        return f"{kind}: HTTP {status} {body[:120]!r}"
    results = orjson.loads(body)["results"]
    if len(results) > PAGE:
        return f"{kind}: {len(results)} hits on a page of {PAGE}"
    if owned is not None and any(hit["conversation_id"] not in owned for hit in results):
        return f"{kind}: a hit in a conversation the user does not own"
    if expected is not None and len(results) != expected:
        return f"{kind}: {len(results)} hits on the first page, not {expected}"
    if expected is None and not results:
        return f"{kind}: no hit"
    if kind == "title word" and any(hit["message_id"] is not None for hit in results):
        return f"{kind}: a hit that is not a title"
    return ""


async def _measure(
    peer: Peer, kind: str, query: str, sizes: SearchSizes, owned: set[str], expected: int | None
) -> Any:
    path = f"/api/search?q={quote(query)}&limit={PAGE}"
    problems: list[str] = []
    first_page = 0
    for i in range(sizes.warmup):
        status, body = await fetch(peer.port, "GET", path, headers=peer.auth)
        problems.append(_problem(kind, status, body, owned if i == 0 else None, expected))
        if status == 200 and i == 0:
            first_page = len(orjson.loads(body)["results"])
    latencies: list[float] = []
    deadline = clock() + sizes.seconds
    while len(latencies) < sizes.requests and clock() < deadline:
        sent = clock()
        status, body = await fetch(peer.port, "GET", path, headers=peer.auth)
        latencies.append((clock() - sent) * 1e3)
        problems.append(_problem(kind, status, body, None, expected))
    errors = [p for p in problems if p]
    return {
        "query": query,
        "hits_on_first_page": first_page,
        **_latency(latencies),
        "errors": len(errors),
        "error_examples": sorted(set(errors))[:3],
    }, latencies


def _latency(values: list[float]) -> dict[str, Any]:
    return {
        "requests": len(values),
        "p50_ms": rnd(percentile(values, 50)),
        "p95_ms": rnd(percentile(values, 95)),
        "max_ms": rnd(max(values)) if values else None,
    }


async def search(bench: Bench, name: str, sizes: SearchSizes) -> dict[str, Any]:
    """The scenario on peer ``name`` (``ssechat`` or ``ssechat-pg``); see the module."""
    load_start = loadavg()
    with bench.peer(name) as peer:
        owner = await _user_id(peer)
        filled, owned = await asyncio.to_thread(fill, peer.database_url, owner, sizes)
        kinds: dict[str, Any] = {}
        every: list[float] = []
        expected = {
            "rare word": min(PAGE, filled["rare_word_hits"]),
            "title word": min(PAGE, filled["title_word_titles"]),
            "no match": 0,
        }
        for kind, query in queries().items():
            found = expected.get(kind)
            kinds[kind], latencies = await _measure(peer, kind, query, sizes, owned, found)
            every += latencies
    overall = _latency(every)
    errors = sum(k["errors"] for k in kinds.values())
    worst = max((k["p95_ms"] for k in kinds.values() if k["p95_ms"] is not None), default=None)
    out = {
        "database": "PostgreSQL" if name != "ssechat" else "SQLite",
        "peer": name,
        "page": PAGE,
        "sizes": asdict(sizes),
        "fill": filled,
        "kinds": kinds,
        "overall": overall,
        "worst_p95_ms": worst,
        "goal_ms": GOAL_MS,
        "errors": errors,
        "error_examples": sorted({e for k in kinds.values() for e in k["error_examples"]})[:3],
        "loadavg": {"start": load_start, "end": loadavg()},
    }
    bench.say(
        f"search on {out['database']}: p95 overall {overall['p95_ms']} ms, worst kind "
        f"{worst} ms (goal {GOAL_MS:g}); fill {filled['fill_s']} s; errors={errors}"
    )
    return out
