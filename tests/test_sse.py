"""ssechat.sse: the encoder and the decoder, one test per rule of the HTML standard.

Every decoder vector is fed whole, one byte at a time, and split in two at every offset.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from ssechat.sse import (
    Event,
    EventDecoder,
    EventTooLargeError,
    encode,
    encode_comment,
    json_data,
)


def splittings(data: bytes) -> Iterator[tuple[str, list[bytes]]]:
    """Every way the tests cut a stream: whole, byte by byte, and in two at each offset."""
    yield "whole", [data]
    yield "bytewise", [data[i : i + 1] for i in range(len(data))]
    for i in range(1, len(data)):
        yield f"split@{i}", [data[:i], data[i:]]


def decode_chunks(chunks: list[bytes], decoder: EventDecoder | None = None) -> list[Event]:
    decoder = decoder or EventDecoder()
    events: list[Event] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    events.extend(decoder.close())
    return events


def assert_decodes(data: bytes, expected: list[Event]) -> None:
    for how, chunks in splittings(data):
        assert decode_chunks(chunks) == expected, how


def ev(data: str, type: str = "message", last_event_id: str = "") -> Event:
    return Event(type=type, data=data, last_event_id=last_event_id)


# --- UTF-8 ---------------------------------------------------------------------------------


def test_utf8_decoding_survives_characters_split_across_chunks() -> None:
    # 2-, 3- and 4-byte characters: every split offset lands inside one of them somewhere.
    assert_decodes("data: héllo € 𝄞 日本\n\n".encode(), [ev("héllo € 𝄞 日本")])


def test_invalid_utf8_becomes_replacement_character() -> None:
    assert_decodes(b"data: a\xffb\xc3(\n\n", [ev("a\ufffdb\ufffd(")])


def test_truncated_utf8_at_end_of_event_becomes_replacement_character() -> None:
    assert_decodes(b"data: \xe2\x82\n\n", [ev("\ufffd")])


# --- BOM -----------------------------------------------------------------------------------


def test_one_leading_bom_is_stripped() -> None:
    assert_decodes(b"\xef\xbb\xbfdata: x\n\n", [ev("x")])


def test_a_second_bom_is_not_stripped() -> None:
    # The second BOM becomes part of the field name "\ufeffdata", an unknown field.
    assert_decodes(b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\ndata: y\n\n", [ev("y")])


def test_bom_is_only_stripped_at_the_start_of_the_stream() -> None:
    assert_decodes(b"data: x\n\n\xef\xbb\xbfdata: y\n\n", [ev("x")])


# --- line ends -----------------------------------------------------------------------------


def test_crlf_lf_and_cr_each_end_a_line() -> None:
    assert_decodes(b"data: a\r\ndata: b\rdata: c\ndata: d\r\n\r\n", [ev("a\nb\nc\nd")])


def test_lone_cr_lines() -> None:
    assert_decodes(b"data: a\rdata: b\r\rdata: c\r\r", [ev("a\nb"), ev("c")])


def test_crlf_split_between_chunks_counts_as_one_line_end() -> None:
    # Counted twice, "\r" + "\n" would make an empty line and dispatch "a" on its own.
    data = b"data: a\r\ndata: b\r\n\r\n"
    assert_decodes(data, [ev("a\nb")])
    assert decode_chunks([b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]) == [ev("a\nb")]


# --- dispatch and comments -----------------------------------------------------------------


def test_empty_line_dispatches_the_event() -> None:
    assert_decodes(b"data: one\n\ndata: two\n\n", [ev("one"), ev("two")])


def test_lines_starting_with_colon_are_comments() -> None:
    assert_decodes(b": hello\ndata: x\n:\n:data: y\n\n: ping\n\n", [ev("x")])


# --- fields --------------------------------------------------------------------------------


def test_field_name_is_what_stands_before_the_first_colon() -> None:
    assert_decodes(b"data: a:b: c\n\n", [ev("a:b: c")])


def test_exactly_one_leading_space_is_removed() -> None:
    assert_decodes(b"data:  two\ndata:none\ndata: one\n\n", [ev(" two\nnone\none")])


def test_a_leading_tab_is_kept() -> None:
    assert_decodes(b"data:\ttab\n\n", [ev("\ttab")])


def test_a_line_without_colon_is_a_field_with_empty_value() -> None:
    assert_decodes(b"data\n\n", [ev("")])
    assert_decodes(b"event\ndata: x\n\n", [ev("x")])


def test_field_names_are_case_sensitive() -> None:
    assert_decodes(b"Data: x\nDATA: y\nEvent: e\ndata: z\n\n", [ev("z")])


def test_unknown_field_names_are_ignored() -> None:
    assert_decodes(b"foo: bar\ndata: x\nbaz\n\n", [ev("x")])


def test_data_appends_the_value_and_a_line_feed() -> None:
    assert_decodes(b"data: a\ndata:\ndata: b\n\n", [ev("a\n\nb")])


def test_event_sets_the_type_for_one_event() -> None:
    assert_decodes(b"event: add\ndata: 1\n\ndata: 2\n\n", [ev("1", type="add"), ev("2")])


def test_id_sets_the_last_event_id_and_persists() -> None:
    assert_decodes(
        b"id: 7\ndata: a\n\ndata: b\n\nid: 8\ndata: c\n\n",
        [ev("a", last_event_id="7"), ev("b", last_event_id="7"), ev("c", last_event_id="8")],
    )


def test_empty_id_resets_the_last_event_id() -> None:
    assert_decodes(
        b"id: 7\ndata: a\n\nid\ndata: b\n\nid: 9\ndata: c\n\nid:\ndata: d\n\n",
        [
            ev("a", last_event_id="7"),
            ev("b"),
            ev("c", last_event_id="9"),
            ev("d"),
        ],
    )


def test_id_with_nul_is_ignored() -> None:
    assert_decodes(
        b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n",
        [ev("a", last_event_id="1"), ev("b", last_event_id="1")],
    )


def test_id_without_data_still_sets_the_last_event_id() -> None:
    for how, chunks in splittings(b"id: 42\n\n"):
        decoder = EventDecoder()
        assert decode_chunks(chunks, decoder) == [], how
        assert decoder.last_event_id == "42", how


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"retry: 1500", 1500),
        (b"retry:0", 0),
        (b"retry: 15a", None),
        (b"retry: -1", None),
        (b"retry:  10", None),  # the second space is part of the value
        (b"retry: 1.5", None),
        (b"retry:", None),
        ("retry: ١٢".encode(), None),  # digits, but not ASCII digits
    ],
)
def test_retry_counts_only_when_all_ascii_digits(line: bytes, expected: int | None) -> None:
    for how, chunks in splittings(line + b"\ndata: x\n\n"):
        decoder = EventDecoder()
        assert decode_chunks(chunks, decoder) == [ev("x")], how
        assert decoder.retry == expected, how


def test_invalid_retry_keeps_the_previous_value() -> None:
    decoder = EventDecoder()
    decode_chunks([b"retry: 100\n\nretry: x\n\n"], decoder)
    assert decoder.retry == 100


# --- dispatch rules ------------------------------------------------------------------------


def test_empty_data_buffer_fires_nothing_and_resets_the_type() -> None:
    assert_decodes(b"event: x\n\ndata: y\n\n", [ev("y")])


def test_one_trailing_line_feed_is_stripped() -> None:
    assert_decodes(b"data\ndata\n\n", [ev("\n")])


def test_type_defaults_to_message() -> None:
    assert_decodes(b"event:\ndata: x\n\n", [ev("x", type="message")])


def test_event_without_closing_blank_line_is_discarded_at_end_of_stream() -> None:
    assert_decodes(b"data: x\n\ndata: y\n", [ev("x")])
    assert_decodes(b"data: x\n\ndata: y", [ev("x")])


# --- bounded memory ------------------------------------------------------------------------


def test_an_endless_line_raises_instead_of_growing() -> None:
    decoder = EventDecoder(max_event_size=1000)
    for _ in range(9):  # 9 x 100 characters still fit
        assert decoder.feed(b"data: " + b"x" * 100) == []
    with pytest.raises(EventTooLargeError, match="max_event_size=1000"):
        decoder.feed(b"data: " + b"x" * 100)


def test_an_event_with_too_many_data_lines_raises() -> None:
    decoder = EventDecoder(max_event_size=1000)
    with pytest.raises(EventTooLargeError):
        decoder.feed(b"data: 0123456789\n" * 100)


def test_events_below_the_limit_pass_and_the_limit_is_per_event() -> None:
    decoder = EventDecoder(max_event_size=1000)
    frame = b"data: " + b"x" * 900 + b"\n\n"
    assert decode_chunks([frame] * 50, decoder) == [ev("x" * 900)] * 50


def test_close_resets_the_stream_but_keeps_last_event_id_and_retry() -> None:
    decoder = EventDecoder()
    assert decoder.feed(b"\xef\xbb\xbfretry: 5\nid: 3\ndata: a\n\ndata: half") == [
        ev("a", last_event_id="3")
    ]
    assert decoder.close() == []
    # A reconnection may start with a BOM again; the half event is gone.
    assert decoder.feed(b"\xef\xbb\xbfdata: b\n\n") == [ev("b", last_event_id="3")]
    assert decoder.retry == 5


# --- encoding ------------------------------------------------------------------------------


def test_encode_fields() -> None:
    assert encode("hi") == b"data: hi\n\n"
    assert encode("hi", event="delta", id="3", retry=3000) == (
        b"retry: 3000\nid: 3\nevent: delta\ndata: hi\n\n"
    )
    assert encode("") == b"data: \n\n"
    assert encode(id="5") == b"id: 5\n\n"


@pytest.mark.parametrize("text", ["a\nb", "a\rb", "a\r\nb", "\n", "a\n\nb\r\r\n"])
def test_encode_splits_every_line_end_into_data_lines(text: str) -> None:
    frame = encode(text, event="x")
    # Nothing of the payload can end the event early: exactly one blank line, at the end.
    assert frame.endswith(b"\n\n")
    assert b"\n\n" not in frame[:-2]
    assert b"\r" not in frame
    expected = text.replace("\r\n", "\n").replace("\r", "\n")
    assert decode_chunks([frame]) == [ev(expected, type="x")]


def test_encode_cannot_forge_fields() -> None:
    frame = encode("hello\nevent: evil\nid: 666\n\ndata: forged")
    events = decode_chunks([frame])
    assert events == [ev("hello\nevent: evil\nid: 666\n\ndata: forged")]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"event": "a\nb"},
        {"event": "a\rb"},
        {"id": "1\n2"},
        {"id": "1\r"},
        {"id": "1\x002"},
        {"retry": -1},
        {"retry": True},
        {"retry": 1.5},
        {},
    ],
)
def test_encode_rejects_what_would_break_the_frame(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies by field
        encode("x" if kwargs else None, **kwargs)  # type: ignore[arg-type]


def test_encode_comment() -> None:
    assert encode_comment() == b":\n\n"
    assert encode_comment("ping") == b": ping\n\n"
    assert encode_comment("a\nb") == b": a\n: b\n\n"
    assert decode_chunks([encode_comment("x\ndata: forged\n") + encode("y")]) == [ev("y")]


def test_json_data_is_compact_ascii_and_single_line() -> None:
    value = {"text": "a\u2028b\u2029c\nd\r€"}
    out = json_data(value)
    assert out.isascii()
    assert "\n" not in out
    assert "\r" not in out
    assert " " not in out
    assert json.loads(out) == value
    assert decode_chunks([encode(out)]) == [ev(out)]
