"""ssechat.providers.demo: the offline demo model.

Its pacing is watched on a virtual clock (``anyio.current_time`` and ``anyio.sleep`` replaced):
which waits it makes, and between which words, never how long a run took.
"""

from __future__ import annotations

import re

import anyio
import anyio.lowlevel
import pytest

from ssechat.providers import ChatMessage, Delta, DemoProvider, GenerationParams, Provider

pytestmark = pytest.mark.anyio

QUESTION = "How do I   render a table\nand some math?"
MESSAGES = [ChatMessage("system", "you are terse"), ChatMessage("user", QUESTION)]


async def collect(
    provider: DemoProvider,
    messages: list[ChatMessage] = MESSAGES,
    params: GenerationParams | None = None,
) -> list[Delta]:
    return [d async for d in provider.stream(messages, "demo", params or GenerationParams())]


def text_of(deltas: list[Delta]) -> str:
    return "".join(d.text for d in deltas)


async def test_deterministic() -> None:
    first = await collect(DemoProvider(tokens_per_second=0))
    second = await collect(DemoProvider(tokens_per_second=0))
    assert first == second
    other = await collect(DemoProvider(tokens_per_second=0), [ChatMessage("user", "hi")])
    assert text_of(other) != text_of(first)


async def test_markdown_features_and_the_configuration_hint() -> None:
    text = text_of(await collect(DemoProvider(tokens_per_second=0)))
    assert re.search(r"^#{1,3} \S", text, re.M), "a heading"
    assert len(re.findall(r"^- \S", text, re.M)) >= 2, "a bulleted list"
    assert re.search(r"^\|.*\|\n\|( ?-+ ?\|)+\n(\|.*\|\n)+", text, re.M), "a GFM table"
    assert re.search(r"^```python\n.+?\n```$", text, re.M | re.S), "a fenced code block"
    assert text.count("```") % 2 == 0
    assert re.search(r"\$[^$\n]+\$", text), "inline math"
    assert r"$e^{i\pi}+1=0$" in text
    assert "demo model" in text
    for hint in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "http://localhost:11434/v1", "--model"):
        assert hint in text


async def test_quotes_the_last_user_message_on_one_line() -> None:
    text = text_of(await collect(DemoProvider(tokens_per_second=0)))
    assert "> How do I render a table and some math?\n" in text
    long = "word " * 200
    text = text_of(await collect(DemoProvider(tokens_per_second=0), [ChatMessage("user", long)]))
    quote = next(line for line in text.splitlines() if line.startswith("> "))
    assert quote.endswith("…")
    assert len(quote) < 200
    no_user = text_of(await collect(DemoProvider(tokens_per_second=0), []))
    assert "> " not in no_user


async def test_one_word_per_delta_then_finish_then_usage() -> None:
    provider = DemoProvider(tokens_per_second=0)
    deltas = await collect(provider)
    *words, finish, usage = deltas
    assert words
    assert all(re.fullmatch(r"\S+\s*", d.text) for d in words)
    assert all(d.finish_reason is None and d.usage is None for d in words)
    assert text_of(words) == provider.answer(MESSAGES)
    assert finish == Delta(finish_reason="stop")
    assert usage.usage is not None
    prompt = sum(len(m.content.split()) for m in MESSAGES)
    assert usage.usage.as_dict() == {
        "prompt_tokens": prompt,
        "completion_tokens": len(words),
        "total_tokens": prompt + len(words),
    }


@pytest.mark.parametrize("limit", [0, 1, 12])
async def test_max_tokens_stops_with_length(limit: int) -> None:
    provider = DemoProvider(tokens_per_second=0)
    deltas = await collect(provider, params=GenerationParams(max_tokens=limit))
    *words, finish, usage = deltas
    assert len(words) == limit
    assert finish.finish_reason == "length"
    assert usage.usage is not None
    assert usage.usage.completion_tokens == limit
    assert provider.answer(MESSAGES).startswith(text_of(words))


async def test_a_large_max_tokens_changes_nothing() -> None:
    provider = DemoProvider(tokens_per_second=0)
    full = await collect(provider)
    assert await collect(provider, params=GenerationParams(max_tokens=100_000)) == full


@pytest.mark.parametrize("pace", [0, float("inf")])
async def test_unpaced_never_sleeps(pace: float, monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_sleep(delay: float) -> None:
        raise AssertionError(f"slept {delay}")

    monkeypatch.setattr(anyio, "sleep", no_sleep)
    deltas = await collect(DemoProvider(tokens_per_second=pace))
    assert deltas[-2].finish_reason == "stop"


class VirtualClock:
    """Time that moves only when the demo sleeps or the test says so; every sleep is logged."""

    def __init__(self, log: list[tuple[str, object]]) -> None:
        self.now = 1000.0
        self.log = log

    def current_time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.log.append(("sleep", seconds))
        self.now += seconds
        await anyio.lowlevel.checkpoint()


@pytest.mark.parametrize("reading", [0.0, 0.004, 0.025])
async def test_paced_streaming_sleeps_between_words_on_deadlines_from_the_start(
    reading: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    log: list[tuple[str, object]] = []
    clock = VirtualClock(log)
    monkeypatch.setattr(anyio, "current_time", clock.current_time)
    monkeypatch.setattr(anyio, "sleep", clock.sleep)
    provider = DemoProvider(tokens_per_second=100)
    params = GenerationParams(max_tokens=11)
    async for delta in provider.stream(MESSAGES, "demo", params):
        log.append(("delta", delta.text))
        clock.now += reading  # the consumer takes this long with each delta
    kinds = [kind for kind, _ in log]
    sleeps = [seconds for kind, seconds in log if kind == "sleep"]
    if reading < 0.01:
        # 11 words at 100/s: the first at once, then each one due 10 ms after the one before,
        # counted from the start, so the consumer's own time shortens the next sleep.
        assert kinds == ["delta"] + ["sleep", "delta"] * 10 + ["delta", "delta"]
        assert sleeps == pytest.approx([0.01 - reading] * 10)
    else:
        # A consumer slower than the pace: every word is already due, none waits.
        assert kinds == ["delta"] * 13
    assert "about 100 words per second" in provider.answer(MESSAGES)


async def test_cancellable_while_unpaced() -> None:
    provider = DemoProvider(tokens_per_second=0)
    seen = 0
    with anyio.move_on_after(0) as scope:
        async for _ in provider.stream(MESSAGES, "demo", GenerationParams()):
            seen += 1
    assert scope.cancelled_caught
    assert seen == 0


async def test_provider_interface() -> None:
    provider = DemoProvider()
    assert isinstance(provider, Provider)
    assert provider.name == "demo"
    assert await provider.list_models() == ["demo"]
    await provider.aclose()


@pytest.mark.parametrize("pace", [-1, float("nan")])
def test_bad_pace_is_refused(pace: float) -> None:
    with pytest.raises(ValueError, match="tokens_per_second"):
        DemoProvider(tokens_per_second=pace)
