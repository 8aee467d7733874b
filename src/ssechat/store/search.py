"""``SQLSearch``: full-text search of a user's conversations, a part of ``SQLStore`` (mixed into
it, as ``store.tool_settings`` is), with the SQL of each database.

What is indexed, and how it is kept up to date (triggers on SQLite's FTS5 tables, generated
``tsvector`` columns on PostgreSQL), is migration ``m007_search``'s (with ``m009_title_keys``:
how a title's row is found again; ``m010_index_finished_answers``: an answer is indexed when it
ends, not while it streams); this module reads it. A
search is one read on the store's reader threads, in two statements on one snapshot: the page of
hits, ranked (FTS5's ``bm25``, PostgreSQL's ``ts_rank``; newest conversation first among equals),
then the snippets of that page only (FTS5's ``snippet``, ``ts_headline``: each costs a read of
the text, so never for the hits past the page). The owner check is in the first statement's
``WHERE``, as every read's is: another user's conversation is never a hit.

What is ranked: the owner's newest ``CANDIDATES`` (1 000) matching messages, and apart their
newest ``CANDIDATES`` matching titles (SQLite: the most recently written titles; PostgreSQL:
the most recently updated conversations). A query that matches fewer is ranked whole, as
before; one that matches more (a common word) shows the best of its newest hits, and its pages
end there. This is what keeps a search fast whatever it matches (``bench/RESULTS.md``, search:
a word in every one of 200 000 messages took 340 ms on SQLite and 860 ms on PostgreSQL at p95
when every hit was ranked): the databases walk a word's hits newest first and stop.

There is no portable full-text search, so this module holds SQL of both databases; it is the one
module besides ``store.dialects`` (and the migration) that tells them apart, by the connection's
dialect name, because the choice is made per query. It must never build SQL from the user's text
(the query is rendered by ``store.search_query`` and bound as a parameter), never write, and
never return a snippet that is not split into plain parts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from ssechat.errors import InvalidRequestError
from ssechat.store.indexer import SearchIndexer
from ssechat.store.search_query import (
    MARK_END,
    MARK_START,
    SearchHit,
    decode_search_cursor,
    encode_search_cursor,
    fts5_match,
    parse_query,
    split_snippet,
    tsquery_text,
)
from ssechat.store.threads import StoreThreads, reads

__all__ = ["CANDIDATES", "MAX_LIMIT", "SQLSearch"]

MAX_LIMIT = 50
"""The most hits a page holds."""

CANDIDATES = 1_000
"""How many of the owner's newest matching messages (and, apart, titles) a search ranks: a
query that matches more shows the best of its newest ``CANDIDATES``, so that a word found in
every message costs no more than one found in a thousand (``bench/RESULTS.md``, search)."""

_SNIPPET_TOKENS = 24  # FTS5's snippet length, in tokens; ts_headline's MaxWords below matches it

# Each side ranks only its newest CANDIDATES hits of the owner: FTS5 walks a word's hits in
# rowid order (newest first, DESC) and stops there, so a word in every message costs what a rare
# one does, instead of a bm25 and a join for each of its hits. The snippets' statements then
# read the page's rows in one pass over the rowid range of the page (see _snippets).
_SQLITE_PAGE = sa.text(
    "SELECT conversation_id, title, updated_at, message_id, role, key, rank FROM ("
    " SELECT * FROM ("
    "  SELECT c.id AS conversation_id, c.title AS title, c.updated_at AS updated_at,"
    "   m.id AS message_id, m.role AS role, m.seq AS seq, messages_fts.rowid AS key,"
    "   -bm25(messages_fts) AS rank"
    "  FROM messages_fts JOIN messages AS m ON m.seq = messages_fts.rowid"
    "  JOIN conversations AS c ON c.id = m.conversation_id"
    "  WHERE messages_fts MATCH :match AND c.owner = :owner"
    "  ORDER BY messages_fts.rowid DESC LIMIT :candidates)"
    " UNION ALL"
    " SELECT * FROM ("
    "  SELECT c.id, c.title, c.updated_at, NULL, NULL, 0, titles_fts.rowid, -bm25(titles_fts)"
    "  FROM titles_fts JOIN conversations AS c ON c.id = titles_fts.conversation_id"
    "  WHERE titles_fts MATCH :match AND c.owner = :owner"
    "  ORDER BY titles_fts.rowid DESC LIMIT :candidates)"
    ") AS hits ORDER BY rank DESC, updated_at DESC, seq DESC, conversation_id"
    " LIMIT :limit OFFSET :offset"
)
# "+rowid": a filter on the rows the range gives, not a constraint handed to FTS5, which would
# evaluate the query once per listed rowid (for a prefix, each time merging every term's hits).
_SQLITE_MESSAGE_SNIPPETS = sa.text(
    "SELECT rowid, snippet(messages_fts, 0, :start, :end, '…', :tokens) FROM messages_fts"
    " WHERE messages_fts MATCH :match AND rowid BETWEEN :low AND :high AND +rowid IN :ids"
).bindparams(sa.bindparam("ids", expanding=True))
_SQLITE_TITLE_SNIPPETS = sa.text(
    "SELECT rowid, snippet(titles_fts, 0, :start, :end, '…', :tokens) FROM titles_fts"
    " WHERE titles_fts MATCH :match AND rowid BETWEEN :low AND :high AND +rowid IN :ids"
).bindparams(sa.bindparam("ids", expanding=True))

# The same candidates: PostgreSQL's planner walks the primary key backwards while most rows
# match (a common word) and reads a rare word's few rows from the GIN index.
_POSTGRES_PAGE = sa.text(
    "SELECT conversation_id, title, updated_at, message_id, role, key, rank FROM ("
    " SELECT * FROM ("
    "  SELECT c.id AS conversation_id, c.title AS title, c.updated_at AS updated_at,"
    "   m.id AS message_id, m.role AS role, m.seq AS seq, m.id AS key,"
    "   ts_rank(m.search, q) AS rank"
    "  FROM to_tsquery('simple', :match) AS q, messages AS m"
    "  JOIN conversations AS c ON c.id = m.conversation_id"
    "  WHERE m.search @@ q AND c.owner = :owner"
    "  ORDER BY m.seq DESC LIMIT :candidates) AS in_messages"
    " UNION ALL"
    " SELECT * FROM ("
    "  SELECT c.id, c.title, c.updated_at, NULL, NULL, 0, c.id, ts_rank(c.search, q)"
    "  FROM to_tsquery('simple', :match) AS q, conversations AS c"
    "  WHERE c.search @@ q AND c.owner = :owner"
    "  ORDER BY c.updated_at DESC LIMIT :candidates) AS in_titles"
    ") AS hits ORDER BY rank DESC, updated_at DESC, seq DESC, conversation_id"
    " LIMIT :limit OFFSET :offset"
)
# ts_headline parses the text as a document, and drops what looks like an HTML tag from it:
# "<" and ">" go in as stand-ins (private-use characters, stripped from the text first with the
# marks) and come back out once the headline is made.
_LT, _GT = "\ue002", "\ue003"
_HEADLINE = (
    "ts_headline('simple', translate({}, :translate_from, :translate_to), "
    "to_tsquery('simple', :match), :options)"
)
_POSTGRES_MESSAGE_SNIPPETS = sa.text(
    f"SELECT id, {_HEADLINE.format('content')} FROM messages WHERE id IN :ids"
).bindparams(sa.bindparam("ids", expanding=True))
_POSTGRES_TITLE_SNIPPETS = sa.text(
    f"SELECT id, {_HEADLINE.format('title')} FROM conversations WHERE id IN :ids"
).bindparams(sa.bindparam("ids", expanding=True))
_HEADLINE_OPTIONS = (
    f'StartSel="{MARK_START}", StopSel="{MARK_END}", MaxWords={_SNIPPET_TOKENS}, MinWords=8, '
    'ShortWord=0, MaxFragments=1, FragmentDelimiter=" … "'
)


class SQLSearch:
    """``Store.search`` (documented there), for a class that has the store's ``threads``:
    ``SQLStore`` inherits it."""

    threads: StoreThreads
    _search_indexer: SearchIndexer | None = None
    """The deferred index work (SQLite), done before each search: it sees every saved message."""

    async def search(
        self, owner: str, query: str, *, limit: int = 20, cursor: str | None = None
    ) -> tuple[list[SearchHit], str | None]:
        if self._search_indexer is not None:
            await self._search_indexer.flush()
        return await self._search(owner, query, limit=limit, cursor=cursor)

    @reads
    def _search(
        self,
        conn: sa.Connection,
        owner: str,
        query: str,
        *,
        limit: int = 20,
        cursor: str | None = None,
    ) -> tuple[list[SearchHit], str | None]:
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidRequestError(f"limit must be 1 to {MAX_LIMIT}")
        parsed = parse_query(query)
        offset = 0 if cursor is None else decode_search_cursor(parsed, cursor)
        if not parsed.terms:  # nothing but operators and punctuation: nothing can match
            return [], None
        postgres = conn.dialect.name == "postgresql"
        match = tsquery_text(parsed) if postgres else fts5_match(parsed)
        page = conn.execute(
            _POSTGRES_PAGE if postgres else _SQLITE_PAGE,
            {
                "match": match,
                "owner": owner,
                "limit": limit + 1,
                "offset": offset,
                "candidates": CANDIDATES,
            },
        ).all()
        more = len(page) > limit
        page = page[:limit]
        snippets = _snippets(conn, postgres, match, page)
        hits = [
            SearchHit(
                conversation_id=row.conversation_id,
                title=row.title,
                updated_at=row.updated_at,
                message_id=row.message_id,
                role=row.role,
                snippet=split_snippet(
                    snippets.get((row.message_id is None, row.key)) or (row.title or "")
                ),
            )
            for row in page
        ]
        return hits, encode_search_cursor(parsed, offset + limit) if more else None


def _snippets(
    conn: sa.Connection, postgres: bool, match: str, page: Sequence[sa.Row[Any]]
) -> dict[tuple[bool, Any], str]:
    """The marked snippet of each hit of ``page``, by (is a title, the page's ``key``: FTS5's
    rowid on SQLite, the message's or conversation's id on PostgreSQL)."""
    messages = [row.key for row in page if row.message_id is not None]
    titles = [row.key for row in page if row.message_id is None]
    if postgres:
        params: dict[str, Any] = {
            "match": match,
            "translate_from": "<>" + _LT + _GT + MARK_START + MARK_END,  # the rest: dropped
            "translate_to": _LT + _GT,
            "options": _HEADLINE_OPTIONS,
        }
        statements = (_POSTGRES_MESSAGE_SNIPPETS, _POSTGRES_TITLE_SNIPPETS)
    else:
        params = {"match": match, "start": MARK_START, "end": MARK_END, "tokens": _SNIPPET_TOKENS}
        statements = (_SQLITE_MESSAGE_SNIPPETS, _SQLITE_TITLE_SNIPPETS)
    found: dict[tuple[bool, Any], str] = {}
    for is_title, keys, statement in (
        (False, messages, statements[0]),
        (True, titles, statements[1]),
    ):
        if not keys:
            continue
        bounds = {} if postgres else {"low": min(keys), "high": max(keys)}
        for key, text in conn.execute(statement, {**params, **bounds, "ids": keys}):
            if postgres:
                text = text.replace(_LT, "<").replace(_GT, ">")
            found[(is_title, key)] = text
    return found
