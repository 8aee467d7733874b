"""ssechat.transfer.stream: the push reader gives, for any way a file is cut into chunks, what the
plain parsers give for the file loaded whole (the fixtures, and documents of every format made
by hypothesis, with texts that put multi-byte characters and escaped surrogate pairs across
chunk boundaries); it bounds a conversation's size, refuses a zip bomb and lone surrogates, and
reads a hand-made file that names its format last."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ssechat.transfer import chatgpt, librechat, ours, stream
from ssechat.transfer.detect import parse_any
from ssechat.transfer.limits import check_limits
from ssechat.transfer.model import ImportedConversation, ImportFormatError
from ssechat.transfer.stream import ImportReader, zip_conversations

from .test_transfer_detect import ours_document

FIXTURES = Path("/work/shared/fixtures/chat-exports")
FILES = sorted(FIXTURES.glob("*.json"))


def fed(data: bytes, cuts: list[int], **options: Any) -> list[ImportedConversation]:
    """``data`` fed to a reader in pieces cut at ``cuts`` (offsets, any order, repeats)."""
    reader = ImportReader(**options)
    found: list[ImportedConversation] = []
    start = 0
    for cut in [*sorted({min(max(c, 0), len(data)) for c in cuts}), len(data)]:
        found += reader.feed(data[start:cut])
        start = cut
    return found + reader.close()


def plain(data: bytes) -> list[ImportedConversation]:
    """The same file through the plain parsers of parsed JSON (``json.loads``): independent of
    the streaming reader's builder."""
    value = json.loads(data.removeprefix(b"\xef\xbb\xbf"))
    if ours.is_ours(value):
        found = ours.parse_ours(value)
    elif chatgpt.is_chatgpt(value):
        found = chatgpt.parse_chatgpt(value)
    else:
        assert librechat.is_librechat(value)
        found = librechat.parse_librechat(value)
    check_limits(found)
    return found


cut_points = st.lists(st.integers(min_value=0, max_value=1 << 20), max_size=40)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_each_fixture_in_pieces_of_one_byte_is_the_file_read_whole(path: Path) -> None:
    data = path.read_bytes()
    expected = plain(data)
    assert expected
    assert fed(data, list(range(len(data)))) == expected
    assert parse_any(data) == expected


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(index=st.integers(0, len(FILES)), cuts=st.data())
def test_each_fixture_cut_anywhere_is_the_file_read_whole(index: int, cuts: st.DataObject) -> None:
    data = FILES[index].read_bytes() if index < len(FILES) else json.dumps(ours_document()).encode()
    points = cuts.draw(st.lists(st.integers(0, len(data)), max_size=30))
    assert fed(data, points) == plain(data)


# --- documents of every format, made by hypothesis --------------------------------------------

# Texts with what breaks a naive chunked reader: multi-byte UTF-8, characters outside the BMP
# (escaped as a surrogate pair by json.dumps' ensure_ascii), quotes, backslashes, newlines.
texts = st.lists(
    st.sampled_from(["a", "é", "€", "😀", "\\", '"', "\n", " ", "\\ud800", "𝄞", "\t"]),
    max_size=30,
).map("".join)


@st.composite
def trees(draw: st.DrawFn) -> list[tuple[int | None, str]]:
    """Messages as (parent index or None, text), parents first."""
    count = draw(st.integers(1, 6))
    return [(None if i == 0 else draw(st.integers(0, i - 1)), draw(texts)) for i in range(count)]


def as_ours(conversations: list[list[tuple[int | None, str]]]) -> Any:
    return {
        "format": "ssechat-export",
        "version": 1,
        "exported_at": 1.5,
        "conversations": [
            {
                "id": f"c{n}",
                "title": f"t{n}",
                "created_at": 1700000000.25,
                "messages": [
                    {
                        "id": f"m{i}",
                        "parent_id": None if parent is None else f"m{parent}",
                        "role": "user" if i % 2 == 0 else "assistant",
                        "content": text,
                        "created_at": 1700000000.125 + i,
                    }
                    for i, (parent, text) in enumerate(tree)
                ],
            }
            for n, tree in enumerate(conversations)
        ],
    }


def as_chatgpt(conversations: list[list[tuple[int | None, str]]]) -> Any:
    made = []
    for n, tree in enumerate(conversations):
        mapping: dict[str, Any] = {"root": {"id": "root", "message": None, "parent": None}}
        for i, (parent, text) in enumerate(tree):
            mapping[f"m{i}"] = {
                "id": f"m{i}",
                "parent": "root" if parent is None else f"m{parent}",
                "children": [],
                "message": {
                    "id": f"m{i}",
                    "author": {"role": "user" if i % 2 == 0 else "assistant"},
                    "create_time": 1700000000.5 + i,
                    "content": {"content_type": "text", "parts": [text]},
                    "metadata": {},
                    "recipient": "all",
                },
            }
        made.append({"id": f"c{n}", "title": f"t{n}", "mapping": mapping, "current_node": "m0"})
    return made


def as_librechat(conversations: list[list[tuple[int | None, str]]]) -> Any:
    made = [
        {
            "conversationId": f"c{n}",
            "title": f"t{n}",
            "messages": [
                {
                    "messageId": f"m{i}",
                    "parentMessageId": librechat.NO_PARENT if parent is None else f"m{parent}",
                    "isCreatedByUser": i % 2 == 0,
                    "text": text,
                    "createdAt": "2024-01-02T03:04:05.678Z",
                }
                for i, (parent, text) in enumerate(tree)
            ],
        }
        for n, tree in enumerate(conversations)
    ]
    return made if len(made) > 1 else made[0]


FORMATS: dict[str, Callable[[list[list[tuple[int | None, str]]]], Any]] = {
    "ours": as_ours,
    "chatgpt": as_chatgpt,
    "librechat": as_librechat,
}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(sorted(FORMATS)),
    conversations=st.lists(trees(), min_size=1, max_size=4),
    ascii_only=st.booleans(),
    bom=st.booleans(),
    data=st.data(),
)
def test_valid_documents_of_every_format_cut_anywhere_read_as_whole(
    kind: str,
    conversations: list[list[tuple[int | None, str]]],
    ascii_only: bool,
    bom: bool,
    data: st.DataObject,
) -> None:
    document = FORMATS[kind](conversations)
    raw = (b"\xef\xbb\xbf" if bom else b"") + json.dumps(
        document, ensure_ascii=ascii_only, indent=data.draw(st.sampled_from([None, 1]))
    ).encode()
    expected = plain(raw)
    assert [len(c.messages) for c in expected] == [len(t) for t in conversations]
    for conversation, tree in zip(expected, conversations, strict=True):
        # Parents first (not necessarily in the file's order): the same texts by id.
        texts_by_id = {message.id: message.content for message in conversation.messages}
        assert texts_by_id == {f"m{i}": text for i, (_, text) in enumerate(tree)}
    points = data.draw(st.lists(st.integers(0, len(raw)), max_size=50))
    assert fed(raw, points) == expected
    assert parse_any(raw) == expected


# --- the reader's own refusals ----------------------------------------------------------------


def test_a_conversation_over_the_byte_limit_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stream, "MAX_CONVERSATION_BYTES", 4096)
    small = as_chatgpt([[(None, "hi")], [(None, "hello")]])
    big = as_chatgpt([[(None, "x" * 10_000)]])[0]
    data = json.dumps([*small, big]).encode()
    # In pieces of 256 bytes: the small ones pass (a conversation is counted in the pieces it
    # arrives in, not by the file), the big one is refused, as it arrives.
    reader = ImportReader()
    passed: list[ImportedConversation] = []
    offsets: list[int] = []

    def feed_all() -> None:
        for start in range(0, len(data), 256):
            offsets.append(start)
            passed.extend(reader.feed(data[start : start + 256]))

    with pytest.raises(ImportFormatError, match="more than 4096 bytes of JSON") as caught:
        feed_all()
    assert [c.source_id for c in passed] == ["c0", "c1"]
    assert caught.value.where == "$[2]"
    # Refused before its bytes all arrived: the memory held is bounded by the limit.
    assert offsets[-1] < len(data) - 4096


def test_the_top_level_keys_of_an_object_are_bounded_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream, "MAX_CONVERSATION_BYTES", 4096)
    # One big value beside the conversations, then many small ones: each is bounded, and so
    # is their sum (an object's other keys are kept until its end).
    big = json.dumps({**ours_document(), "padding": ["x" * 100] * 100}).encode()
    with pytest.raises(ImportFormatError, match="more than 4096 bytes of JSON") as caught:
        fed(big, list(range(0, len(big), 256)))
    assert caught.value.where == "$.padding"
    keys = {f"k{i}": "x" * 200 for i in range(60)}
    many = json.dumps({**ours_document(), **keys}).encode()
    with pytest.raises(ImportFormatError, match="more than 4096 bytes of JSON") as summed:
        fed(many, list(range(0, len(many), 256)))
    assert summed.value.where == "$"


def test_a_zip_bomb_member_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream, "MAX_MEMBER_BYTES", 50_000)
    honest = io.BytesIO()
    with zipfile.ZipFile(honest, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("conversations.json", b"[" + b" " * 100_000 + b"]")
    with pytest.raises(ImportFormatError, match="unpacks to more than") as caught:
        list(zip_conversations(io.BytesIO(honest.getvalue())))
    assert caught.value.where == "zip:conversations.json"
    # A zip that lies about its size (a small declared size): counted as it unpacks.
    lying = bytearray(honest.getvalue())
    size = (100_002).to_bytes(4, "little")
    small = (10).to_bytes(4, "little")
    assert lying.count(size) == 2  # the local header and the central directory
    lying = bytearray(bytes(lying).replace(size, small))
    with pytest.raises(ImportFormatError) as lied:
        list(zip_conversations(io.BytesIO(bytes(lying))))
    assert lied.value.where == "zip:conversations.json"


def test_the_zip_member_is_read_in_pieces_as_the_file_is() -> None:
    data = (FIXTURES / "chatgpt-librechat-export.json").read_bytes()
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("conversations.json", data)
    got = list(zip_conversations(io.BytesIO(packed.getvalue()), chunk_bytes=7))
    assert got == plain(data)
    reader = ImportReader()
    assert reader.feed(packed.getvalue()[:3]) == []
    assert not reader.is_zip  # three bytes cannot tell
    reader.feed(packed.getvalue()[3:10])
    assert reader.is_zip
    assert reader.close() == []


def test_format_and_version_after_the_conversations_are_read() -> None:
    document = ours_document()
    late = {"conversations": document["conversations"], "version": 1, "format": "ssechat-export"}
    data = json.dumps(late).encode()
    assert fed(data, [5, 40, 300]) == plain(json.dumps(document).encode())
    newer = json.dumps({**late, "version": 2}).encode()
    with pytest.raises(ImportFormatError, match="newer ssechat") as caught:
        fed(newer, [])
    assert caught.value.where == "$.version"
    # Without a format, the same keys are no export of ours: named as unsupported, even when
    # its conversations would not have parsed as ours.
    foreign = json.dumps({"conversations": [1, 2]}).encode()
    with pytest.raises(ImportFormatError, match="not an export ssechat can read") as other:
        fed(foreign, [3])
    assert other.value.where == "$"
    broken = json.dumps({"conversations": [1], "format": "ssechat-export", "version": 1})
    with pytest.raises(ImportFormatError, match="expected an object") as named:
        fed(broken.encode(), [])
    assert named.value.where == "$.conversations[0]"


@pytest.mark.parametrize("cut", range(1, 14))
def test_a_lone_surrogate_escape_is_refused_wherever_the_chunks_cut_it(cut: int) -> None:
    # yajl would read "\ud800" as "?": the reader refuses it, cut anywhere, and lets a pair
    # (an emoji, as json.dumps writes it) and an escaped backslash before "u" through.
    fine = json.dumps(as_chatgpt([[(None, "😀 \\ud800 x")]])).encode()
    assert b"\\ud83d\\ude00" in fine
    assert b"\\\\ud800" in fine
    at = fine.index(b"\\ud83d")
    assert fed(fine, [at + cut]) == plain(fine)
    lone = fine.replace(b"\\ud83d\\ude00", b"\\ud83d \\ude00")
    for bad in (lone, fine.replace(b"\\ud83d\\ude00", b"\\ude00")):
        with pytest.raises(ImportFormatError, match="lone surrogate") as caught:
            fed(bad, [at + cut])
        assert caught.value.where == f"$[0], byte {at}"


def test_a_syntax_error_names_the_conversation_and_the_byte() -> None:
    good = json.dumps(as_chatgpt([[(None, "a")], [(None, "b")]])).encode()
    second = good.index(b'{"id": "c1"')
    broken = good[: second + 20] + b"?" + good[second + 20 :]
    for cuts in ([], list(range(0, len(broken), 9))):
        with pytest.raises(ImportFormatError, match="not valid JSON") as caught:
            fed(broken, cuts)
        assert caught.value.where == f"$[1], byte {second + 20}"
    with pytest.raises(ImportFormatError, match="truncated") as cut:
        fed(good[:-1], [])
    assert cut.value.where == f"byte {len(good) - 1}"


def test_a_used_reader_cannot_be_fed_again() -> None:
    reader = ImportReader()
    reader.feed(b"[]")
    assert reader.close() == []
    with pytest.raises(RuntimeError):
        reader.feed(b"[]")
