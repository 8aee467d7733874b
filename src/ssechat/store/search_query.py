"""Full-text search, the pure part: the query language, its rendering for FTS5 and for
``tsquery``, the snippet marks and the records a search hands out.

The language: words (all must match), ``"quoted phrases"``, and a trailing ``*`` for a prefix
(``serv*``, ``"open sour"*``). Everything else the user types is text: FTS5's operators
(``AND OR NOT NEAR ^ : ( ) -``), ``tsquery``'s (``& | ! <-> :*``), a quote left open, a
backslash, NUL, an emoji. A word is cut into its runs of letters and digits (what both SQLite's
``unicode61`` tokenizer and the PostgreSQL index, see ``store.search_sql``, see as tokens), so
``foo-bar`` is the phrase ``foo bar`` and ``C++`` is ``c``; a word with no letter or digit is
dropped, and a query left with no term matches nothing. The rendered queries are made only of
those tokens, each quoted by this module: no user character reaches FTS5's or PostgreSQL's
query parser as syntax, so a query is never a database error.

Snippets come back from the database with the matched words between two private-use
characters (``MARK_START``, ``MARK_END``) that the indexed text is stripped of first, and are
split here into plain ``SnippetPart``s: never HTML. This module must never touch a database.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Final

from ssechat.errors import InvalidRequestError
from ssechat.store.cursor import decode_cursor, encode_cursor

__all__ = [
    "MARK_END",
    "MARK_START",
    "MAX_OFFSET",
    "SearchHit",
    "SearchQuery",
    "SnippetPart",
    "Term",
    "decode_search_cursor",
    "encode_search_cursor",
    "fts5_match",
    "parse_query",
    "split_snippet",
    "tsquery_text",
]

MARK_START: Final = "\ue000"
"""Where a match starts in a snippet the database made (a private-use character)."""
MARK_END: Final = "\ue001"
"""Where it ends."""

MAX_OFFSET: Final = 10_000
"""How deep the pages go: a cursor past this many hits is refused (the query is refined)."""

_TOKEN = re.compile(r"[^\W_]+")  # runs of letters and digits: \w without the underscore
_UNQUOTED = re.compile(r'[^\s"]+')


@dataclass(frozen=True, slots=True)
class Term:
    """One thing that must match: its tokens in a row (one token: a word), the last one a
    prefix if ``prefix``."""

    tokens: tuple[str, ...]
    prefix: bool = False


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A parsed query: every term must match. No terms: nothing matches."""

    terms: tuple[Term, ...]


@dataclass(frozen=True, slots=True)
class SnippetPart:
    """A piece of a snippet: plain text, and whether it is a matched word."""

    text: str
    match: bool


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One result: a conversation whose title (``message_id`` None) or one of whose messages
    matched, with the snippet around the match."""

    conversation_id: str
    title: str | None
    updated_at: float
    """The conversation's."""
    message_id: str | None
    role: str | None
    snippet: tuple[SnippetPart, ...]


def parse_query(text: str) -> SearchQuery:
    """The terms of what the user typed; never raises (see the module's docstring)."""
    terms: list[Term] = []
    position = 0
    length = len(text)
    while position < length:
        char = text[position]
        if char.isspace():
            position += 1
            continue
        if char == '"':
            end = text.find('"', position + 1)
            if end < 0:  # a quote left open: the rest is the phrase
                body, position = text[position + 1 :], length
            else:
                body, position = text[position + 1 : end], end + 1
            prefix = position < length and text[position] == "*"
            _add(terms, body, prefix)
            continue
        match = _UNQUOTED.match(text, position)
        assert match is not None  # not a space nor a quote: at least this character
        word = match.group()
        position = match.end()
        _add(terms, word, word.endswith("*"))
    return SearchQuery(tuple(terms))


def _add(terms: list[Term], text: str, prefix: bool) -> None:
    tokens = tuple(token.lower() for token in _TOKEN.findall(text))
    if tokens:
        terms.append(Term(tokens, prefix))


def fts5_match(query: SearchQuery) -> str:
    """The FTS5 ``MATCH`` expression: each term a quoted phrase (``*`` after it for a prefix),
    all of them ANDed by juxtaposition. Tokens hold no quote, so quoting cannot be escaped."""
    return " ".join(
        '"' + " ".join(term.tokens) + '"' + ("*" if term.prefix else "") for term in query.terms
    )


def tsquery_text(query: SearchQuery) -> str:
    """The ``to_tsquery`` text: a term's tokens joined by ``<->`` (followed by), each quoted,
    the last one ``:*`` for a prefix; the terms joined by ``&``."""
    parts = []
    for term in query.terms:
        lexemes = [_quote_lexeme(token) for token in term.tokens]
        if term.prefix:
            lexemes[-1] += ":*"
        parts.append(lexemes[0] if len(lexemes) == 1 else "(" + " <-> ".join(lexemes) + ")")
    return " & ".join(parts)


def _quote_lexeme(token: str) -> str:
    # Tokens are letters and digits only; the escapes are a second wall, not the first.
    return "'" + token.replace("\\", "\\\\").replace("'", "''") + "'"


def split_snippet(raw: str) -> tuple[SnippetPart, ...]:
    """The parts of a snippet the database marked with ``MARK_START``/``MARK_END`` (a mark left
    open runs to the end; a stray end mark is dropped); adjacent parts of one kind are merged."""
    parts: list[SnippetPart] = []
    match = False
    start = 0
    for index, char in enumerate(raw):
        if char in (MARK_START, MARK_END):
            _append(parts, raw[start:index], match)
            match = char == MARK_START
            start = index + 1
    _append(parts, raw[start:], match)
    return tuple(parts)


def _append(parts: list[SnippetPart], text: str, match: bool) -> None:
    if not text:
        return
    if parts and parts[-1].match == match:
        parts[-1] = SnippetPart(parts[-1].text + text, match)
    else:
        parts.append(SnippetPart(text, match))


def _fingerprint(query: SearchQuery) -> str:
    # Binds a cursor to its query: a cursor of another search is refused, not misread.
    return hashlib.sha256(fts5_match(query).encode()).hexdigest()[:16]


def encode_search_cursor(query: SearchQuery, offset: int) -> str:
    """The opaque cursor of the page that starts at ``offset`` hits of ``query``."""
    return encode_cursor(float(offset), _fingerprint(query))


def decode_search_cursor(query: SearchQuery, cursor: str) -> int:
    """The offset in ``cursor``; ``InvalidRequestError`` if it is not one of this query's."""
    offset, fingerprint = decode_cursor(cursor)
    if fingerprint != _fingerprint(query) or not offset.is_integer():
        raise InvalidRequestError("cursor is not one of this search's; start from the first page")
    if not 0 <= offset <= MAX_OFFSET:
        raise InvalidRequestError(f"search pages go {MAX_OFFSET} results deep; refine the query")
    return int(offset)
