"""bench/exports.py: its synthetic ChatGPT exports import with ssechat's own parser, holding the
conversations, messages, branches and words asked for; zip and JSON agree; a seed decides all."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from bench.exports import (
    ABSENT_WORD,
    COMMON_WORD,
    RARE_WORD,
    TITLE_WORD,
    vocabulary,
    write_chatgpt_export,
)

from ssechat.transfer.detect import parse_any

CONVERSATIONS, MESSAGES, CHARS = 30, 5, 160


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("export") / "conversations.json"
    size = write_chatgpt_export(
        path, conversations=CONVERSATIONS, messages=MESSAGES, chars=CHARS, seed=7
    )
    assert size == path.stat().st_size
    return path


def test_imports_with_the_asked_sizes(export: Path) -> None:
    parsed = parse_any(export.read_bytes())
    assert len(parsed) == CONVERSATIONS
    assert [len(c.messages) for c in parsed] == [MESSAGES] * CONVERSATIONS
    raw = json.loads(export.read_bytes())
    for source, conversation in zip(raw, parsed, strict=True):
        assert conversation.source_id == source["conversation_id"]
        assert conversation.title == source["title"]
        texts = {
            node["message"]["content"]["parts"][0]
            for node in source["mapping"].values()
            if node["message"] and node["message"]["author"]["role"] in ("user", "assistant")
        }
        assert {m.content for m in conversation.messages} == texts
        assert {m.role for m in conversation.messages} == {"user", "assistant"}
        for message in conversation.messages:
            assert len(message.content) >= CHARS


def test_every_tenth_conversation_has_one_regenerated_answer(export: Path) -> None:
    for index, conversation in enumerate(parse_any(export.read_bytes())):
        children: dict[str | None, list[str]] = {}
        for message in conversation.messages:
            children.setdefault(message.parent_id, []).append(message.role)
        branched = {parent: roles for parent, roles in children.items() if len(roles) > 1}
        if index % 10 == 9:
            assert list(branched.values()) == [["assistant", "assistant"]]
        else:
            assert branched == {}
        # The view ends on the main chain's last message, never on the regenerated answer.
        leaf = conversation.current_leaf_id
        assert leaf is not None
        assert leaf not in children


def test_the_words_the_search_benchmark_queries(export: Path) -> None:
    parsed = parse_any(export.read_bytes())
    message_words = [_words(m.content) for c in parsed for m in c.messages]
    titles = [_words(c.title or "") for c in parsed]
    assert sum(COMMON_WORD in words for words in message_words) > len(message_words) // 2
    assert not any(TITLE_WORD in words for words in message_words)
    assert [i for i, words in enumerate(titles) if TITLE_WORD in words] == [0, 20]
    assert not any(ABSENT_WORD in words for words in message_words + titles)
    everything = set().union(*message_words, *titles)
    assert everything <= set(vocabulary()) | {TITLE_WORD}
    words = vocabulary()
    assert (words[0], words[-1]) == (COMMON_WORD, RARE_WORD)
    assert len(set(words)) == len(words)
    assert ABSENT_WORD not in words
    assert TITLE_WORD not in words


def test_zip_holds_the_same_and_seeds_decide(tmp_path: Path, export: Path) -> None:
    archive = tmp_path / "export.zip"
    write_chatgpt_export(
        archive, conversations=CONVERSATIONS, messages=MESSAGES, chars=CHARS, seed=7, as_zip=True
    )
    assert archive.read_bytes()[:2] == b"PK"
    assert parse_any(archive.read_bytes()) == parse_any(export.read_bytes())
    again, other = tmp_path / "again.json", tmp_path / "other.json"
    for path, seed in ((again, 7), (other, 8)):
        write_chatgpt_export(
            path, conversations=CONVERSATIONS, messages=MESSAGES, chars=CHARS, seed=seed
        )
    assert again.read_bytes() == export.read_bytes()
    assert other.read_bytes() != export.read_bytes()


def test_few_messages_have_no_branch(tmp_path: Path) -> None:
    path = tmp_path / "short.json"
    write_chatgpt_export(path, conversations=10, messages=2, chars=20)
    parsed = parse_any(path.read_bytes())
    assert [len(c.messages) for c in parsed] == [2] * 10
    assert all(c.messages[1].parent_id == c.messages[0].id for c in parsed)
