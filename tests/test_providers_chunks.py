"""ssechat.providers.chunks: the upstream frame splitter against the WHATWG ``EventDecoder``.

Every recording of ``shared/fixtures/openai-streams`` and variants of it (CRLF, CR, a BOM,
comments, ``event:`` / ``id:`` / ``retry:`` fields, multi-line data, invalid UTF-8, an unended
frame), cut at random offsets, must give exactly the events, and the parsed chunks, that the
decoder gives for the whole stream.
"""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssechat.errors import ProviderStreamError
from ssechat.providers import Delta, Usage
from ssechat.providers.chunks import FrameSplitter, parse_chunk, read_deltas
from ssechat.sse import Event, EventDecoder, EventTooLargeError

from .fixtures import OPENAI_STREAMS


def variants() -> dict[str, bytes]:
    streams = {p.stem: p.read_bytes() for p in sorted(OPENAI_STREAMS.glob("*.sse"))}
    short = streams["content-short"]
    frames = short.split(b"\n\n")
    mixed = b"\n\n".join([
        frames[0], b": keep-alive", b"event: error\ndata: {\"message\": \"quota\"}", frames[1],
        b"id: 7\nretry: 300\n" + frames[2], b"data: a\ndata: b", b"data:" + frames[3][6:],
        b"\n" + frames[4], b"data: {\"x\": \"\xff\xfe bad utf-8\"}", b"data", b"data:", *frames[5:],
    ])  # fmt: skip
    return {
        **streams,
        "crlf": short.replace(b"\n", b"\r\n"),
        "cr": short.replace(b"\n", b"\r"),
        "late-crlf": short + short.replace(b"\n", b"\r\n"),
        "bom": b"\xef\xbb\xbf" + short,
        "late-bom": short + b"\xef\xbb\xbf" + short,
        "mixed": mixed,
        "unterminated": short + b'data: {"never": "dispatched"}',
    }


STREAMS = variants()


def as_events(frames: list[bytes | Event]) -> list[tuple[str, str]]:
    return [
        ("message", f.decode("utf-8", "replace")) if isinstance(f, bytes) else (f.type, f.data)
        for f in frames
    ]


def outcome(data: bytes | str) -> Delta | str | None:
    try:
        return parse_chunk(data)
    except ProviderStreamError as exc:
        return exc.message


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(sorted(STREAMS)), cuts=st.lists(st.integers(0, 1 << 20), max_size=8))
def test_the_splitter_agrees_with_the_decoder_at_any_split(name: str, cuts: list[int]) -> None:
    raw = STREAMS[name]
    points = sorted({0, len(raw), *(c % (len(raw) + 1) for c in cuts)})
    splitter = FrameSplitter()
    frames: list[bytes | Event] = []
    for a, b in itertools.pairwise(points):
        if b > a:
            frames.extend(splitter.feed(raw[a:b]))
    expected = EventDecoder().feed(raw)
    assert as_events(frames) == [(e.type, e.data) for e in expected]
    got = [outcome(f if isinstance(f, bytes) else f.data) for f in frames]
    assert got == [outcome(e.data) for e in expected]


def test_the_common_frames_take_the_fast_path() -> None:
    splitter = FrameSplitter()
    frames = splitter.feed(STREAMS["long-content"])
    assert frames
    assert all(isinstance(f, bytes) for f in frames)
    exact = FrameSplitter().feed(STREAMS["crlf"])
    assert len(exact) == len(frames := EventDecoder().feed(STREAMS["crlf"])) > 0
    assert all(isinstance(f, Event) for f in exact)


@pytest.mark.parametrize("ending", [b"\n\n", b""])
def test_an_oversized_event_is_refused_as_the_decoder_does(ending: bytes) -> None:
    huge = b"data: " + b"x" * (1 << 20) + ending
    with pytest.raises(EventTooLargeError):
        EventDecoder().feed(huge)
    pieces = [huge[i : i + 65536] for i in range(0, len(huge), 65536)]
    splitter = FrameSplitter()
    with pytest.raises(EventTooLargeError):
        [splitter.feed(piece) for piece in pieces]


def _content(text: str) -> bytes:
    return b"data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": text}}]}).encode()


def test_texts_read_together_become_one_delta_in_order() -> None:
    finish = b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}'
    usage = b'data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":3}}'
    read = b"\n\n".join([_content("Hel"), _content("lo"), finish, _content("!"), usage]) + b"\n\n"
    deltas, done, error = read_deltas(FrameSplitter(), read)
    assert deltas == [
        Delta("Hello"),
        Delta("", "stop"),
        Delta("!"),
        Delta("", None, Usage(1, 3, 4)),
    ]
    assert (done, error) == (False, None)


def test_done_ends_the_read_and_an_error_comes_after_the_text_before_it() -> None:
    read = (
        _content("a") + b"\n\n" + _content("b") + b"\n\ndata: [DONE]\n\n" + _content("c") + b"\n\n"
    )
    deltas, done, error = read_deltas(FrameSplitter(), read)
    assert (deltas, done, error) == ([Delta("ab")], True, None)
    broken = _content("a") + b"\n\ndata: {not json\n\n" + _content("b") + b"\n\n"
    deltas, done, error = read_deltas(FrameSplitter(), broken)
    assert deltas == [Delta("a")]
    assert not done
    assert isinstance(error, ProviderStreamError)


def test_a_frame_split_across_reads_joins_the_next_read() -> None:
    splitter = FrameSplitter()
    whole = _content("one") + b"\n\n" + _content("two") + b"\n\n"
    cut = len(_content("one")) + 2 + 10
    first = read_deltas(splitter, whole[:cut])
    second = read_deltas(splitter, whole[cut:])
    assert first.deltas == [Delta("one")]
    assert second.deltas == [Delta("two")]
