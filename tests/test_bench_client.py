"""The load generator counts tokens in the text, whatever the events they arrive in.

A relay may join the tokens that reached it together into one event; the benchmark must count
the same tokens either way, from the same bytes cut at any point, in its bulk mode (nothing
per token recorded) and its per-token mode (arrival times kept).
"""

from __future__ import annotations

import random

import pytest
from bench.client import Kind, Stream, StreamProtocol, Totals

from ssechat.fake_upstream.wire import generated_tokens
from ssechat.runs.log import delta_frame

pytestmark = pytest.mark.anyio

TOKENS = list(generated_tokens(40))


def groups(seed: int) -> list[str]:
    """The tokens, joined into events of 1 to 6 tokens each."""
    rng = random.Random(seed)
    out, i = [], 0
    while i < len(TOKENS):
        size = rng.randint(1, 6)
        out.append("".join(TOKENS[i : i + size]))
        i += size
    return out


def run_body(texts: list[str], first_id: int = 1) -> bytes:
    frames = [delta_frame(first_id + i, text) for i, text in enumerate(texts)]
    return b"retry: 3000\n\n" + b"".join(frames)


def tutorial_body(texts: list[str]) -> bytes:
    return b"".join(b"data: " + text.encode() + b"\n\n" for text in texts)


def count(kind: Kind, body: bytes, *, per_token: bool, seed: int) -> tuple[int, Stream]:
    result = Stream(times=[] if per_token else None)
    totals = Totals()
    protocol = StreamProtocol(b"", kind, result, totals)
    rng = random.Random(seed)
    at = 0
    while at < len(body):  # the body cut at random points, as the network may
        step = rng.randint(1, 200)
        protocol._frames(body[at : at + step], float(at))
        at += step
    return totals.tokens, result


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("per_token", [False, True])
async def test_joined_tokens_are_each_counted(seed: int, per_token: bool) -> None:
    texts = groups(seed)
    assert "".join(texts) == "".join(TOKENS)
    cases: list[tuple[Kind, bytes]] = [("run", run_body(texts)), ("tutorial", tutorial_body(texts))]
    for kind, body in cases:
        tokens, result = count(kind, body, per_token=per_token, seed=seed)
        assert tokens == len(TOKENS), kind
        assert result.tokens == len(TOKENS)
        if per_token:
            assert result.times is not None
            assert len(result.times) == len(TOKENS)


async def test_a_resumed_stream_counts_only_what_it_got() -> None:
    # After a reconnect the text starts mid-answer: no token is the stream's first.
    texts = groups(99)
    skip = 3
    resumed = run_body(texts[skip:], first_id=skip + 1)
    skipped, length = 0, len("".join(texts[:skip]))
    while length > 0:  # the events are cut on token boundaries
        length -= len(TOKENS[skipped])
        skipped += 1
    expected = len(TOKENS) - skipped
    for per_token in (False, True):
        tokens, _ = count("run", resumed, per_token=per_token, seed=1)
        assert tokens == expected
