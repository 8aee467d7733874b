"""Reasoning: ``providers.reasoning.ThinkSplitter``, and the reasoning fields through
``providers.chunks`` and the OpenAI provider.

The expected reasoning and answer of each recording in ``shared/fixtures/reasoning-streams`` are
computed here by a plain reading (split on blank lines, ``json.loads``, choice 0's
``reasoning_content`` / ``reasoning``, its content joined and then cut with a regular expression
at a leading ``<think>…</think>``), never by the code under test; the recordings are then fed
to it cut at random offsets, and through a real loopback server.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from ssechat.errors import ProviderStreamError
from ssechat.fake_upstream import FakeUpstream
from ssechat.providers import ChatMessage, Delta, GenerationParams, OpenAIProvider
from ssechat.providers.chunks import FrameSplitter, StreamState, completion_deltas, read_deltas
from ssechat.providers.reasoning import ThinkSplitter, parse_tags

from .fixtures import SHARED

REASONING_STREAMS = SHARED / "reasoning-streams"
RECORDINGS = sorted(REASONING_STREAMS.glob("*.sse"))
TAGS = "think,thinking"
# A leading tag, its block, and the answer after it; the tags of the default setting.
_THINK = re.compile(r"\s*<(think|thinking)>(.*?)(?:</\1>(.*))?\Z", re.S | re.I)


# --- reading a recording the plain way --------------------------------------------------------


def recording_chunks(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """The chunks of a recording up to its first error, and whether an error ended it."""
    chunks: list[dict[str, Any]] = []
    for frame in path.read_text("utf-8").split("\n\n"):
        lines = [line for line in frame.split("\n") if line and not line.startswith(":")]
        if not lines:
            continue
        kind = "message"
        data: list[str] = []
        for line in lines:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                kind = value
            elif field == "data":
                data.append(value)
        text = "\n".join(data)
        if text == "[DONE]":
            break
        chunk = json.loads(text)
        if kind == "error" or chunk.get("error"):
            return chunks, True
        chunks.append(chunk)
    return chunks, False


def choice0_deltas(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        choice.get("delta") or {}
        for chunk in chunks
        for choice in chunk.get("choices") or []
        if choice.get("index", 0) == 0
    ]


def expected_texts(path: Path) -> tuple[str, str]:
    """(reasoning, answer) of a recording."""
    chunks, _ = recording_chunks(path)
    reasoning: list[str] = []
    content: list[str] = []
    for delta in choice0_deltas(chunks):
        thought = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(thought, str):
            reasoning.append(thought)
        content.append(delta.get("content") or "")
    answer = "".join(content)
    match = _THINK.match(answer)
    if match:
        reasoning.append(match.group(2).lstrip())
        answer = (match.group(3) or "").lstrip()
    return "".join(reasoning), answer


def random_cuts(data: bytes, rng: random.Random) -> list[bytes]:
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 60))))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def replay(pieces: list[bytes], tags: str = TAGS) -> tuple[list[Delta], ProviderStreamError | None]:
    """The pieces through ``read_deltas`` with one ``StreamState``, as the provider does."""
    splitter, state = FrameSplitter(), StreamState(tags)
    deltas: list[Delta] = []
    for piece in pieces:
        got, done, error = read_deltas(splitter, piece, state)
        deltas.extend(got)
        if error is not None:
            deltas.extend(state.end(calls=False))
            return deltas, error
        if done:
            break
    deltas.extend(state.end())
    return deltas, None


def texts_of(deltas: list[Delta]) -> tuple[str, str]:
    return "".join(d.reasoning for d in deltas), "".join(d.text for d in deltas)


# --- the recordings -----------------------------------------------------------------------------


def test_the_recordings_hold_every_shape() -> None:
    # The tests below are only as good as their material: all three shapes, and both tags.
    kinds: set[str] = set()
    for path in RECORDINGS:
        for delta in choice0_deltas(recording_chunks(path)[0]):
            kinds.update(k for k in ("reasoning_content", "reasoning") if delta.get(k))
            if "<think>" in (delta.get("content") or ""):
                kinds.add("tag")
    assert kinds == {"reasoning_content", "reasoning", "tag"}
    assert all(expected_texts(path)[0] for path in RECORDINGS)


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda p: p.stem)
def test_every_recording_cut_at_random_gives_its_reasoning_and_answer(path: Path) -> None:
    data = path.read_bytes()
    reasoning, answer = expected_texts(path)
    whole, whole_error = replay([data])
    assert texts_of(whole) == (reasoning, answer)
    rng = random.Random(path.stem)
    for _ in range(40):
        deltas, error = replay(random_cuts(data, rng))
        assert texts_of(deltas) == (reasoning, answer)
        assert (error is None) == (whole_error is None)
        # Reasoning never comes after the answer began.
        first_text = next((i for i, d in enumerate(deltas) if d.text), len(deltas))
        assert not any(d.reasoning for d in deltas[first_text + 1 :])


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda p: p.stem)
def test_an_error_in_a_recording_is_raised_after_its_reasoning(path: Path) -> None:
    _, errored = recording_chunks(path)
    _, error = replay([path.read_bytes()])
    assert (error is not None) == errored


def test_the_reasoning_token_count_is_read() -> None:
    path = REASONING_STREAMS / "deepseek-reasoner-reasoning-content.sse"
    chunks, _ = recording_chunks(path)
    usage = [c["usage"] for c in chunks if c.get("usage")][-1]
    deltas, _ = replay([path.read_bytes()])
    (got,) = [d.usage for d in deltas if d.usage]
    assert got.reasoning_tokens == usage["completion_tokens_details"]["reasoning_tokens"]
    assert got.as_dict()["reasoning_tokens"] == got.reasoning_tokens


@pytest.fixture
async def upstream(anyio_backend: str) -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream(fixtures_dir=REASONING_STREAMS) as fake:
        yield fake


@pytest.mark.anyio
@pytest.mark.parametrize("path", RECORDINGS, ids=lambda p: p.stem)
@pytest.mark.parametrize("split", ["", "+split-1", "+chop-7"])
async def test_every_recording_through_the_provider(
    upstream: FakeUpstream, path: Path, split: str
) -> None:
    reasoning, answer = expected_texts(path)
    _, errored = recording_chunks(path)
    provider = OpenAIProvider(base_url=upstream.base_url, max_retries=0, idle_timeout=5.0)
    got: list[Delta] = []
    failure: ProviderStreamError | None = None
    try:
        messages = [ChatMessage("user", "hi")]
        model = f"fake-replay-{path.stem}{split}"
        async for delta in provider.stream(messages, model, GenerationParams()):
            got.append(delta)
    except ProviderStreamError as exc:
        failure = exc
    finally:
        await provider.aclose()
    assert (failure is not None) == errored
    assert texts_of(got) == (reasoning, answer)


# --- the <think> splitter -----------------------------------------------------------------------


def split_all(pieces: list[str], tags: str = TAGS) -> tuple[str, str]:
    splitter = ThinkSplitter(parse_tags(tags))
    reasoning: list[str] = []
    answer: list[str] = []
    for piece in pieces:
        r, a = splitter.feed(piece)
        reasoning.append(r)
        answer.append(a)
    r, a = splitter.end()
    return "".join(reasoning) + r, "".join(answer) + a


CASES = [
    "<think>reason</think>answer",
    "  \n<THINKING>\n step <b>1</b> </thinking>\n\nThe answer.",
    "<think>a < b and </thin k> is not the end</think>ok <think>later</think>",
    "<think>never closed",
    "<thinker>is not a tag</thinker>",
    "<b>bold</b> start",
    "```python\nx = '<think>'\n```\n</think>",
    "Answer first <think>no</think>",
    "<thi",
    "   ",
    "<think>naïve 20 °C 🙂</think>🙂 end",
]


def expected_split(text: str) -> tuple[str, str]:
    match = _THINK.match(text)
    if match is None:
        return "", text
    return match.group(2).lstrip(), (match.group(3) or "").lstrip()


@pytest.mark.parametrize("text", CASES)
def test_split_at_every_pair_of_offsets_gives_the_unsplit_result(text: str) -> None:
    whole = split_all([text])
    assert whole == expected_split(text)
    for i in range(len(text) + 1):
        for j in range(i, len(text) + 1):
            assert split_all([text[:i], text[i:j], text[j:]]) == whole, (i, j)
    assert split_all(list(text)) == whole


def test_tags_split_at_every_byte_offset_of_the_wire() -> None:
    # Each content character its own chunk, and the bytes cut once at every offset: the tags are
    # split across frames and across reads (mid-UTF-8 too).
    text = "<think>é</think>answer"
    body = b"".join(
        b"data: " + orjson.dumps({"choices": [{"index": 0, "delta": {"content": c}}]}) + b"\n\n"
        for c in ["<", "thi", "nk>", "é", "</", "think", ">", "ans", "wer"]
    )
    assert "".join(["<", "thi", "nk>", "é", "</", "think", ">", "ans", "wer"]) == text
    whole = texts_of(replay([body])[0])
    assert whole == ("é", "answer")
    for cut in range(1, len(body)):
        assert texts_of(replay([body[:cut], body[cut:]])[0]) == whole, cut


def test_a_plain_answer_is_not_held_back() -> None:
    splitter = ThinkSplitter()
    assert splitter.feed("H") == ("", "H")
    assert splitter.passthrough
    assert splitter.feed("<think>x</think>") == ("", "<think>x</think>")
    held = ThinkSplitter()
    assert held.feed("  <thi") == ("", "")
    assert held.feed("s is") == ("", "  <this is")
    assert held.passthrough


def test_only_a_partial_closing_tag_is_held_inside_reasoning() -> None:
    splitter = ThinkSplitter()
    assert splitter.feed("<think>long thought ") == ("long thought ", "")
    assert splitter.feed("a</th") == ("a", "")
    assert splitter.feed("ere") == ("</there", "")


def test_a_think_tag_in_the_answers_code_stays_answer() -> None:
    text = "Use it like this:\n\n```html\n<think>x</think>\n```\n"
    assert split_all([text]) == ("", text)
    deltas, _ = replay(
        [content_stream(["Use it ", "like this:\n\n```html\n<th", "ink>x</think>\n```\n"])]
    )
    assert texts_of(deltas) == ("", text)


def test_tag_names_come_from_the_setting() -> None:
    assert split_all(["<reason>r</reason>a"], "reason") == ("r", "a")
    assert split_all(["<think>r</think>a"], "reason") == ("", "<think>r</think>a")
    assert split_all(["<think>r</think>a"], "") == ("", "<think>r</think>a")
    assert parse_tags(" Think , thinking,think,") == ("think", "thinking")
    with pytest.raises(ValueError, match="bare name"):
        parse_tags("<think>")
    with pytest.raises(ValueError, match="bare name"):
        OpenAIProvider(base_url="http://127.0.0.1:9", reasoning_tags="a b")


# --- chunks: fields, order, non-streamed -------------------------------------------------------


def content_stream(pieces: list[str], key: str = "content") -> bytes:
    return b"".join(
        b"data: " + orjson.dumps({"choices": [{"index": 0, "delta": {key: p}}]}) + b"\n\n"
        for p in pieces
    )


def test_reasoning_after_answer_text_in_one_read_keeps_its_order() -> None:
    body = (
        content_stream(["r1", "r2"], "reasoning")
        + content_stream(["a1"])
        + content_stream(["r3"], "reasoning_content")
        + content_stream(["a2"])
    )
    deltas, _ = replay([body])
    order = [(d.reasoning, d.text) for d in deltas]
    assert order == [("r1r2", "a1"), ("r3", "a2")]


def test_a_plain_answer_read_is_one_delta() -> None:
    deltas, _ = replay([content_stream(["Hel", "lo", " there"])])
    assert deltas == [Delta("Hello there")]


def test_a_whole_completion_with_reasoning_and_tags() -> None:
    def body(message: dict[str, Any]) -> bytes:
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        usage = {"prompt_tokens": 1, "completion_tokens": 5, "total_tokens": 6}
        usage["completion_tokens_details"] = {"reasoning_tokens": 3}  # type: ignore[assignment]
        return orjson.dumps({"choices": [choice], "usage": usage})

    for message in (
        {"content": "answer", "reasoning_content": "why"},
        {"content": "answer", "reasoning": "why"},
        {"content": "\n<think>\nwhy</think>\n\nanswer"},
    ):
        deltas = completion_deltas(body(message), TAGS)
        assert texts_of(deltas) == ("why", "answer")
        assert [d.finish_reason for d in deltas if d.finish_reason] == ["stop"]
        assert [d.usage.reasoning_tokens for d in deltas if d.usage] == [3]
