"""Property: whatever the text and however the bytes are cut, decode(encode(s)) gives s back."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from ssechat.sse import Event, EventDecoder, encode, json_data


def cut(data: bytes, offsets: list[int]) -> list[bytes]:
    points = sorted({o % (len(data) + 1) for o in offsets})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def decode(chunks: list[bytes]) -> list[Event]:
    decoder = EventDecoder()
    events = [e for chunk in chunks for e in decoder.feed(chunk)]
    return events + decoder.close()


line_heavy_text = st.text(
    alphabet=st.sampled_from(["a", " ", ":", "\r", "\n", "é", "𝄞", "\ufeff", "\x00"])
    | st.characters(exclude_categories=("Cs",)),
)


@settings(max_examples=400)
@given(text=line_heavy_text, offsets=st.lists(st.integers(min_value=0), max_size=12))
def test_decode_of_encode_round_trips(text: str, offsets: list[int]) -> None:
    frame = encode(text)
    expected = text.replace("\r\n", "\n").replace("\r", "\n")
    assert decode(cut(frame, offsets)) == [Event("message", expected, "")]


@settings(max_examples=200)
@given(
    texts=st.lists(line_heavy_text, min_size=1, max_size=5),
    offsets=st.lists(st.integers(min_value=0), max_size=12),
)
def test_a_sequence_of_events_round_trips_with_ids(texts: list[str], offsets: list[int]) -> None:
    stream = b"".join(encode(t, event="delta", id=str(i)) for i, t in enumerate(texts))
    got = decode(cut(stream, offsets))
    assert got == [
        Event("delta", t.replace("\r\n", "\n").replace("\r", "\n"), str(i))
        for i, t in enumerate(texts)
    ]


@given(value=st.recursive(st.text() | st.integers() | st.booleans() | st.none(), st.lists))
def test_json_data_round_trips_through_one_data_line(value: object) -> None:
    import json

    out = json_data(value)
    assert decode([encode(out)]) == [Event("message", out, "")]
    assert json.loads(out) == value
