"""ssechat.store.search_query: the query language, its FTS5 and tsquery renderings, snippet
splitting and the search cursor, without a database."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ssechat.errors import InvalidRequestError
from ssechat.store.search_query import (
    MARK_END,
    MARK_START,
    SnippetPart,
    Term,
    decode_search_cursor,
    encode_search_cursor,
    fts5_match,
    parse_query,
    split_snippet,
    tsquery_text,
)

OPERATORS = "\"*()-:^&|!<>\\\x00' NEAR AND OR NOT 🙂" + MARK_START + MARK_END


def test_words_phrases_and_prefixes() -> None:
    query = parse_query('Hello "open Source"* serv* foo-bar C++ "left open')
    assert query.terms == (
        Term(("hello",)),
        Term(("open", "source"), prefix=True),
        Term(("serv",), prefix=True),
        Term(("foo", "bar")),
        Term(("c",)),
        Term(("left", "open")),
    )
    assert fts5_match(query) == '"hello" "open source"* "serv"* "foo bar" "c" "left open"'
    assert tsquery_text(query) == (
        "'hello' & ('open' <-> 'source':*) & 'serv':* & ('foo' <-> 'bar') & 'c' & "
        "('left' <-> 'open')"
    )


@pytest.mark.parametrize("typed", ["", "   ", "&|!", "<->", ":*", '""', "*", "🙂", "\x00", "-"])
def test_a_query_without_letters_or_digits_has_no_terms(typed: str) -> None:
    assert parse_query(typed).terms == ()


@given(st.text() | st.text(alphabet=OPERATORS + "ab1é", max_size=60))
def test_any_text_renders_to_quoted_tokens_only(text: str) -> None:
    query = parse_query(text)
    for term in query.terms:
        assert term.tokens
        assert all(re.fullmatch(r"[^\W_]+", token) for token in term.tokens)
    # FTS5: nothing but quoted phrases of those tokens, each maybe followed by *.
    phrase = r'"[^\W_]+(?: [^\W_]+)*"\*?'
    match = fts5_match(query)
    assert re.fullmatch(rf"(?:{phrase}(?: {phrase})*)?", match)
    # tsquery: quoted lexemes joined by <-> in parentheses, and & between terms.
    lexeme = r"'[^\W_]+'(?::\*)?"
    term = rf"(?:{lexeme}|\({lexeme}(?: <-> {lexeme})+\))"
    assert re.fullmatch(rf"(?:{term}(?: & {term})*)?", tsquery_text(query))
    # Every word of letters and digits the user typed is searched for.
    assert [t for term_ in query.terms for t in term_.tokens] == [
        word.lower() for word in re.findall(r"[^\W_]+", text)
    ]


def test_snippets_split_at_the_marks() -> None:
    raw = f"a {MARK_START}b{MARK_END} c {MARK_START}d"
    assert split_snippet(raw) == (
        SnippetPart("a ", False),
        SnippetPart("b", True),
        SnippetPart(" c ", False),
        SnippetPart("d", True),
    )
    assert split_snippet(f"{MARK_END}x{MARK_START}{MARK_END}y") == (SnippetPart("xy", False),)
    assert split_snippet("") == ()


@given(st.text())
def test_split_snippet_keeps_every_other_character(raw: str) -> None:
    parts = split_snippet(raw)
    assert "".join(p.text for p in parts) == raw.replace(MARK_START, "").replace(MARK_END, "")
    assert all(p.text for p in parts)
    assert all(a.match != b.match for a, b in itertools.pairwise(parts))


def test_a_cursor_belongs_to_its_query() -> None:
    query = parse_query("needle")
    assert decode_search_cursor(query, encode_search_cursor(query, 40)) == 40
    with pytest.raises(InvalidRequestError):
        decode_search_cursor(parse_query("other"), encode_search_cursor(query, 40))
    with pytest.raises(InvalidRequestError):
        decode_search_cursor(query, encode_search_cursor(query, 10**9))
    with pytest.raises(InvalidRequestError):
        decode_search_cursor(query, "%%%")
