"""Synthetic ChatGPT data exports for the import benchmark and the memory tests, and the
vocabulary their texts (and the search benchmark's) are drawn from.

``write_chatgpt_export`` writes a ``conversations.json`` shaped like ChatGPT's own (the null
root node, a hidden system node, the top-level keys and message fields the real files carry,
compact JSON), optionally inside a zip, streaming: one conversation is built and written at a
time, so a file of any size costs the memory of one conversation. Texts are words of a fixed
vocabulary drawn with a Zipf-like frequency, so that a very common word (``COMMON_WORD``, in
almost every message), a rare one (``RARE_WORD``, in about one message of 200 characters in
1 600), a word only in titles (``TITLE_WORD``) and a word in nothing (``ABSENT_WORD``)
exist for the search benchmark's queries. Everything is deterministic for a seed.

Shapes (for ``messages`` = m per conversation): every conversation holds exactly m user or
assistant messages (alternating, user first, a linear chain), plus the skipped root and hidden
system node; every 10th conversation (index 9, 19, ...) with m >= 3 spends one of its m on a
regenerated answer: a second answer to its first question, a branch off the current path. So a
file holds ``conversations * messages`` messages that ssechat imports.

Never imported by ``src/`` (the server must not depend on the benchmark); never holds the whole
document in memory.
"""

from __future__ import annotations

import itertools
import json
import random
import uuid
import zipfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import IO, Any, Final

__all__ = [
    "ABSENT_WORD",
    "COMMON_WORD",
    "RARE_WORD",
    "TITLE_WORD",
    "TextMaker",
    "chatgpt_conversation",
    "vocabulary",
    "write_chatgpt_export",
]

VOCABULARY_SIZE: Final = 5_000
COMMON_WORD: Final = "kettle"
"""Rank 1 of the vocabulary: about one word in nine, so in nearly every message."""
RARE_WORD: Final = "quasar"
"""The last rank: about one word in 45 000, so in about one message of 200 characters in 1 500."""
TITLE_WORD: Final = "almanac"
"""In the title of every 20th conversation (index 0, 20, ...), in no message text."""
ABSENT_WORD: Final = "zyzzyvax"
"""In no text and no title: a query that matches nothing."""

_SYLLABLES: Final = tuple(
    c + v for c in "bdfglmnprstvz" for v in ("a", "e", "i", "o", "u", "ai", "ou")
)
_BASE_TIME: Final = 1_700_000_000.0
_MODEL: Final = "gpt-4o"


@cache
def vocabulary() -> tuple[str, ...]:
    """The words, most frequent first: ``COMMON_WORD`` first, ``RARE_WORD`` last, made-up
    syllable words between (2 to 4 syllables, lower-case ASCII, unique), fixed for all seeds.
    ``TITLE_WORD`` and ``ABSENT_WORD`` are not in it."""
    rng = random.Random(14)  # fixed: the vocabulary is the same for every export
    reserved = {COMMON_WORD, RARE_WORD, TITLE_WORD, ABSENT_WORD}
    words: list[str] = [COMMON_WORD]
    seen = set(reserved)
    while len(words) < VOCABULARY_SIZE - 1:
        word = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    words.append(RARE_WORD)
    return tuple(words)


@cache
def _cumulative_weights() -> tuple[float, ...]:
    # Zipf with exponent 1: rank r has weight 1/r.
    return tuple(itertools.accumulate(1.0 / rank for rank in range(1, VOCABULARY_SIZE + 1)))


class TextMaker:
    """Titles and message texts drawn from ``vocabulary()``, deterministic for a seed."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self._words = vocabulary()
        self._weights = _cumulative_weights()

    def words(self, n: int) -> list[str]:
        return self.rng.choices(self._words, cum_weights=self._weights, k=n)

    def text(self, chars: int) -> str:
        """About ``chars`` characters (at least one word) of sentences of 6 to 14 words."""
        sentences: list[str] = []
        size = -1  # the spaces between sentences: one fewer than sentences
        while size < chars or not sentences:
            words = self.words(self.rng.randint(6, 14))
            sentence = " ".join(words).capitalize() + "."
            sentences.append(sentence)
            size += len(sentence) + 1
        return " ".join(sentences)

    def title(self, index: int) -> str:
        """Three to five words; ``TITLE_WORD`` among them for every 20th ``index``."""
        words = self.words(self.rng.randint(3, 5))
        if index % 20 == 0:
            words[self.rng.randrange(len(words))] = TITLE_WORD
        return " ".join(words).capitalize()


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _node(
    node_id: str, message: dict[str, Any] | None, parent: str | None, children: list[str]
) -> dict[str, Any]:
    return {"id": node_id, "message": message, "parent": parent, "children": children}


def _message(
    node_id: str, role: str, text: str, created: float | None, *, hidden: bool = False
) -> dict[str, Any]:
    metadata: dict[str, Any]
    if hidden:
        metadata = {"is_visually_hidden_from_conversation": True}
    elif role == "assistant":
        metadata = {
            "finish_details": {"type": "stop", "stop_tokens": [200002]},
            "citations": [],
            "message_type": None,
            "model_slug": _MODEL,
            "default_model_slug": _MODEL,
            "is_complete": True,
            "timestamp_": "absolute",
        }
    else:
        metadata = {"message_type": None, "timestamp_": "absolute"}
    return {
        "id": node_id,
        "author": {"role": role, "name": None, "metadata": {}},
        "create_time": created,
        "update_time": None,
        "content": {"content_type": "text", "parts": [text]},
        "status": "finished_successfully",
        "end_turn": True if role != "user" else None,
        "weight": 0.0 if hidden else 1.0,
        "metadata": metadata,
        "recipient": "all",
    }


def chatgpt_conversation(
    maker: TextMaker, index: int, *, messages: int, chars: int
) -> dict[str, Any]:
    """Conversation number ``index`` of an export, as ChatGPT writes it (see the module)."""
    rng = maker.rng
    created = _BASE_TIME + index * 3_600.0 + rng.random()
    root, system = _uuid(rng), _uuid(rng)
    mapping: dict[str, dict[str, Any]] = {
        root: _node(root, None, None, [system]),
        system: _node(system, _message(system, "system", "", None, hidden=True), root, []),
    }
    branch = index % 10 == 9 and messages >= 3
    chain = messages - 1 if branch else messages
    parent, when = system, created
    for position in range(chain):
        node_id = _uuid(rng)
        role = "user" if position % 2 == 0 else "assistant"
        when += 1.0 + rng.random() * 30.0
        message = _message(node_id, role, maker.text(chars), when)
        mapping[node_id] = _node(node_id, message, parent, [])
        mapping[parent]["children"].append(node_id)
        parent = node_id
    if branch:
        # A regenerated answer to the first question: a sibling of the first answer, listed
        # first among the question's children as ChatGPT keeps the older one first.
        question = mapping[system]["children"][0]
        node_id = _uuid(rng)
        message = _message(node_id, "assistant", maker.text(chars), created + 0.5)
        mapping[node_id] = _node(node_id, message, question, [])
        mapping[question]["children"].insert(0, node_id)
    conversation_id = _uuid(rng)
    return {
        "title": maker.title(index),
        "create_time": created,
        "update_time": when,
        "mapping": mapping,
        "moderation_results": [],
        "current_node": parent,
        "plugin_ids": None,
        "conversation_id": conversation_id,
        "conversation_template_id": None,
        "gizmo_id": None,
        "gizmo_type": None,
        "is_archived": False,
        "is_starred": None,
        "safe_urls": [],
        "blocked_urls": [],
        "default_model_slug": _MODEL,
        "conversation_origin": None,
        "voice": None,
        "async_status": None,
        "disabled_tool_ids": [],
        "id": conversation_id,
    }


def _chunks(conversations: int, messages: int, chars: int, seed: int) -> Iterator[bytes]:
    maker = TextMaker(seed)
    yield b"["
    for index in range(conversations):
        item = chatgpt_conversation(maker, index, messages=messages, chars=chars)
        text = json.dumps(item, ensure_ascii=False, separators=(",", ":"))
        yield (b"," if index else b"") + text.encode()
    yield b"]"


def _write(out: IO[bytes], chunks: Iterator[bytes]) -> None:
    for chunk in chunks:
        out.write(chunk)


def write_chatgpt_export(
    path: Path,
    *,
    conversations: int,
    messages: int,
    chars: int,
    seed: int = 0,
    as_zip: bool = False,
) -> int:
    """Write a ChatGPT ``conversations.json`` (or, ``as_zip``, a zip holding it) at ``path``,
    one conversation at a time; return the bytes written (the file's size)."""
    chunks = _chunks(conversations, messages, chars, seed)
    if as_zip:
        with (
            zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive,
            archive.open("conversations.json", "w", force_zip64=True) as member,
        ):
            _write(member, chunks)
    else:
        with path.open("wb") as out:
            _write(out, chunks)
    return path.stat().st_size
