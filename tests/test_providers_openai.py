"""ssechat.providers.openai against the fake upstream over real loopback sockets.

Expected answers are computed here by a plain reading of each recording (split on blank lines,
``json.loads``, choice 0's content or refusal, the last finish reason, the usage object), never
by the code under test.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import socket
import sys
import traceback
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
import pytest

from ssechat.errors import (
    ProviderAuthError,
    ProviderConnectionError,
    ProviderError,
    ProviderStatusError,
    ProviderStreamError,
    ProviderTimeoutError,
)
from ssechat.fake_upstream import FakeUpstream, Scenario
from ssechat.fake_upstream.wire import generated_tokens
from ssechat.providers import (
    ChatMessage,
    Delta,
    GenerationParams,
    OpenAIProvider,
    Provider,
    Usage,
)
from ssechat.providers.openai import parse_retry_after

from .fixtures import OPENAI_STREAMS
from .http1_support import answering, raw_server

pytestmark = pytest.mark.anyio

FIXTURES = OPENAI_STREAMS
RECORDINGS = sorted(FIXTURES.glob("*.sse"))
MESSAGES = [ChatMessage("system", "be brief"), ChatMessage("user", "hello there")]
KEY = "sk-test-DO-NOT-LEAK-4f1c9a7e2b"


@pytest.fixture
async def upstream(anyio_backend: str) -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream(fixtures_dir=FIXTURES) as fake:
        yield fake


@pytest.fixture
async def provider(upstream: FakeUpstream, anyio_backend: str) -> AsyncIterator[OpenAIProvider]:
    p = make_provider(upstream.base_url)
    yield p
    await p.aclose()


def make_provider(base_url: str, **options: Any) -> OpenAIProvider:
    options.setdefault("api_key", KEY)
    options.setdefault("backoff_initial", 0.001)
    options.setdefault("backoff_max", 0.002)
    options.setdefault("idle_timeout", 5.0)
    return OpenAIProvider(base_url=base_url, **options)


async def collect(
    provider: OpenAIProvider, model: str = "m", params: GenerationParams | None = None
) -> list[Delta]:
    return [d async for d in provider.stream(MESSAGES, model, params or GenerationParams())]


async def drain_into(got: list[Delta], provider: OpenAIProvider, model: str = "m") -> None:
    """Collect into ``got``, so a test still sees what came before an error."""
    async for delta in provider.stream(MESSAGES, model, GenerationParams()):
        got.append(delta)


def text_of(deltas: list[Delta]) -> str:
    return "".join(d.text for d in deltas)


def tokens_text(count: int) -> str:
    """The text of the fake upstream's first ``count`` generated tokens."""
    return "".join(generated_tokens(count))


def finishes(deltas: list[Delta]) -> list[str]:
    return [d.finish_reason for d in deltas if d.finish_reason]


def usages(deltas: list[Delta]) -> list[dict[str, int]]:
    return [d.usage.as_dict() for d in deltas if d.usage]


def read_recording(path: Path) -> tuple[str, str | None, dict[str, int] | None]:
    """The answer a recording holds, read the plain way."""
    text: list[str] = []
    finish: str | None = None
    usage: dict[str, int] | None = None
    for frame in path.read_text("utf-8").split("\n\n"):
        if not frame.strip():
            continue
        assert frame.startswith("data: ")
        data = frame[len("data: ") :]
        if data == "[DONE]":
            break
        chunk = json.loads(data)
        for choice in chunk.get("choices") or []:
            if choice["index"] == 0:
                delta = choice.get("delta") or {}
                text.append(delta.get("content") or delta.get("refusal") or "")
                finish = choice.get("finish_reason") or finish
        if chunk.get("usage"):
            usage = {k: chunk["usage"][k] for k in ("prompt_tokens", "completion_tokens")}
            usage["total_tokens"] = chunk["usage"]["total_tokens"]
    return "".join(text), finish, usage


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --- recordings ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda p: p.stem)
@pytest.mark.parametrize("split", ["", "+split-1", "+split-2", "+split-3", "+chop-1"])
async def test_every_recording_gives_its_text_finish_and_usage(
    provider: OpenAIProvider, upstream: FakeUpstream, path: Path, split: str
) -> None:
    text, finish, usage = read_recording(path)
    deltas = await collect(provider, f"fake-replay-{path.stem}{split}")
    assert text_of(deltas) == text
    assert finishes(deltas) == [finish]
    assert usages(deltas) == [usage]
    # Nothing empty is passed on: each delta carries text, a finish reason or usage.
    assert all(d.text or d.finish_reason or d.usage for d in deltas)
    assert len(upstream.requests) == 1


def test_recordings_cover_what_the_provider_must_handle() -> None:
    # The parametrized test above is only as good as its material; make sure it has it.
    answers = {p.stem: read_recording(p) for p in RECORDINGS}
    assert {"stop", "length", "tool_calls"} <= {finish for _, finish, _ in answers.values()}
    assert answers["tool-call-a"][0] == ""
    assert "°" in answers["long-content"][0]
    contents = [
        choice["delta"].get("content")
        for frame in (FIXTURES / "long-content.sse").read_text().split("\n\n")
        if frame.startswith("data: {")
        for choice in json.loads(frame[6:])["choices"]
    ]
    assert "" in contents  # empty deltas, not to be passed on
    assert any(c and not c.strip() for c in contents)  # whitespace-only deltas, to be kept


# Streams the recordings do not show, written as files for the fake to replay.
AZURE = [
    '{"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":'
    '[{"prompt_index":0,"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}}}]}',
    '{"choices":[{"content_filter_results":{},"delta":{"content":"","role":"assistant"},'
    '"finish_reason":null,"index":0,"logprobs":null}],"created":1,"id":"c","model":"gpt-4o",'
    '"object":"chat.completion.chunk","system_fingerprint":"fp"}',
    '{"choices":[{"delta":{"content":"Héllo"},"finish_reason":null,"index":0}],"id":"c"}',
    '{"choices":[{"content_filter_offsets":{"check_offset":0,"start_offset":0,"end_offset":5},'
    '"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}},'
    '"finish_reason":null,"index":0}],"id":"c","object":"chat.completion.chunk"}',
    '{"choices":[{"delta":{"content":" 😀 世界"},"finish_reason":null,"index":0}],"id":"c"}',
    '{"choices":[{"delta":{},"finish_reason":"content_filter","index":0}],"id":"c","usage":null}',
    '{"choices":[],"id":"c","usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}',
    "[DONE]",
]


def write_stream(directory: Path, name: str, datas: list[str], newline: str = "\n") -> None:
    body = "".join(f"data: {d}{newline}{newline}" for d in datas)
    (directory / f"{name}.sse").write_bytes(body.encode())


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
@pytest.mark.parametrize("split", ["", "+chop-1", "+split-5"])
async def test_azure_style_stream_split_anywhere(
    tmp_path: Path, anyio_backend: str, newline: str, split: str
) -> None:
    # One byte per read cuts inside every UTF-8 character and between every CR and LF.
    write_stream(tmp_path, "azure", AZURE, newline)
    async with FakeUpstream(fixtures_dir=tmp_path) as fake:
        provider = make_provider(fake.base_url)
        deltas = await collect(provider, f"fake-replay-azure{split}")
        await provider.aclose()
    assert text_of(deltas) == "Héllo 😀 世界"
    assert finishes(deltas) == ["content_filter"]
    assert usages(deltas) == [{"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}]


@pytest.mark.parametrize("then_done", [False, True])
async def test_error_frame_after_200_raises_with_its_message(
    tmp_path: Path, anyio_backend: str, then_done: bool
) -> None:
    error = json.dumps({"error": {"message": "The model is overloaded", "type": "server_error"}})
    datas = [AZURE[2], error] + (["[DONE]"] if then_done else [])
    write_stream(tmp_path, "error", datas)
    async with FakeUpstream(fixtures_dir=tmp_path) as fake:
        provider = make_provider(fake.base_url)
        got: list[Delta] = []
        with pytest.raises(ProviderStreamError, match="The model is overloaded") as info:
            await drain_into(got, provider, "fake-replay-error")
        await provider.aclose()
        assert len(fake.requests) == 1
    assert text_of(got) == "Héllo"
    assert info.value.retryable is False


async def test_error_event_type_raises(tmp_path: Path, anyio_backend: str) -> None:
    body = f'data: {AZURE[2]}\n\nevent: error\ndata: {{"message": "quota"}}\n\n'
    (tmp_path / "event.sse").write_text(body)
    async with FakeUpstream(fixtures_dir=tmp_path) as fake:
        provider = make_provider(fake.base_url)
        with pytest.raises(ProviderStreamError, match="quota"):
            await collect(provider, "fake-replay-event")
        await provider.aclose()


async def test_non_json_data_raises(tmp_path: Path, anyio_backend: str) -> None:
    write_stream(tmp_path, "garbage", [AZURE[2], "<html>502 Bad Gateway</html>"])
    async with FakeUpstream(fixtures_dir=tmp_path) as fake:
        provider = make_provider(fake.base_url)
        with pytest.raises(ProviderStreamError, match="not JSON"):
            await collect(provider, "fake-replay-garbage")
        await provider.aclose()


async def test_done_ends_the_stream_and_what_follows_is_not_read(
    tmp_path: Path, anyio_backend: str
) -> None:
    write_stream(tmp_path, "after", [AZURE[2], "[DONE]", AZURE[4], "not json"])
    async with FakeUpstream(fixtures_dir=tmp_path) as fake:
        provider = make_provider(fake.base_url)
        deltas = await collect(provider, "fake-replay-after")
        await provider.aclose()
    assert text_of(deltas) == "Héllo"


async def test_stream_without_done_just_ends(provider: OpenAIProvider) -> None:
    deltas = await collect(provider, "fake-tokens-4+nodone")
    assert text_of(deltas) == tokens_text(4)
    assert finishes(deltas) == ["stop"]
    assert usages(deltas)[0]["completion_tokens"] == 4


# --- the request ---------------------------------------------------------------------------------


async def test_request_body_and_headers(provider: OpenAIProvider, upstream: FakeUpstream) -> None:
    deltas = await collect(provider, "fake-tokens-20", GenerationParams(0.25, 7))
    plain = await collect(provider, "fake-tokens-3")
    first, second = upstream.requests
    assert (first.method, first.path) == ("POST", "/v1/chat/completions")
    assert first.body == {
        "model": "fake-tokens-20",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello there"},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.25,
        "max_tokens": 7,
    }
    assert "temperature" not in second.body
    assert "max_tokens" not in second.body
    assert first.headers["authorization"] == f"Bearer {KEY}"
    assert first.headers["content-type"] == "application/json"
    # The fake honoured max_tokens: the provider passes "length" on.
    assert finishes(deltas) == ["length"]
    assert finishes(plain) == ["stop"]


async def test_no_authorization_header_without_a_key(upstream: FakeUpstream) -> None:
    provider = make_provider(upstream.base_url, api_key=None)
    assert len(await collect(provider, "fake-tokens-1")) == 3
    await provider.aclose()
    assert "authorization" not in upstream.requests[0].headers


async def test_connections_are_reused_after_done(
    provider: OpenAIProvider, upstream: FakeUpstream
) -> None:
    for _ in range(3):
        await collect(provider, "fake-replay-content-short")
    assert len(upstream.requests) == 3
    assert len(upstream.connections) == 1
    assert upstream.connections[0].closed_at is None


async def test_many_concurrent_streams_keep_and_reuse_their_connections(
    provider: OpenAIProvider, upstream: FakeUpstream
) -> None:
    # A burst of streams opens a connection each; the next burst finds them all again.
    upstream.default = Scenario(tokens=3, rate=100)
    rounds: list[list[list[Delta]]] = []
    for _ in range(2):
        results: list[list[Delta]] = []

        async def one(results: list[list[Delta]] = results) -> None:
            results.append(await collect(provider))

        async with anyio.create_task_group() as tg:
            for _ in range(70):
                tg.start_soon(one)
        rounds.append(results)
    assert all(text_of(r) == tokens_text(3) for results in rounds for r in results)
    assert len(upstream.requests) == 140
    assert len(upstream.connections) == 70
    assert all(c.closed_at is None for c in upstream.connections)


# --- retries -------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [408, 409, 429, 500, 503])
async def test_retryable_statuses_are_retried(
    provider: OpenAIProvider, upstream: FakeUpstream, status: int
) -> None:
    upstream.default = Scenario(tokens=3, status=status, status_times=2)
    deltas = await collect(provider)
    assert len(upstream.requests) == 3
    assert text_of(deltas) == tokens_text(3)


class Waits:
    """The provider's ``sleep``: records each wait between retries and returns at once, so a
    test sees the delays the policy chose, not how long a busy machine took."""

    def __init__(self, upstream: FakeUpstream) -> None:
        self.upstream = upstream
        self.delays: list[float] = []
        self.requests_before: list[int] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.requests_before.append(len(self.upstream.requests))


@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        ({"retry_after": "0.3"}, 0.3),
        ({"retry_after_ms": "200"}, 0.2),
        ({"retry_after_ms": "200", "retry_after": "5"}, 0.2),
    ],
)
async def test_retry_after_is_honoured(
    upstream: FakeUpstream, headers: dict[str, str], wait: float
) -> None:
    waits = Waits(upstream)
    provider = make_provider(upstream.base_url, sleep=waits)
    upstream.default = Scenario(tokens=1, status=429, status_times=1, **headers)  # type: ignore[arg-type]
    await collect(provider)
    await provider.aclose()
    # The server's wait, not the (millisecond) backoff; after the first request, before the next.
    assert waits.delays == [wait]
    assert waits.requests_before == [1]
    assert len(upstream.requests) == 2


async def test_retry_after_beyond_60_s_is_ignored(upstream: FakeUpstream) -> None:
    waits = Waits(upstream)
    provider = make_provider(upstream.base_url, sleep=waits, backoff_initial=0.5, backoff_max=8)
    upstream.default = Scenario(tokens=1, status=503, status_times=1, retry_after="120")
    await collect(provider)
    await provider.aclose()
    assert len(waits.delays) == 1
    assert 0.375 <= waits.delays[0] <= 0.5  # the first backoff step instead
    assert len(upstream.requests) == 2


async def test_backoff_grows_exponentially(upstream: FakeUpstream) -> None:
    waits = Waits(upstream)
    provider = make_provider(
        upstream.base_url, backoff_initial=0.1, backoff_max=0.3, max_retries=3, sleep=waits
    )
    upstream.default = Scenario(tokens=1, status=500, status_times=3)
    await collect(provider)
    await provider.aclose()
    # 0.1, 0.2, then capped at 0.3 seconds, each minus up to 25 % jitter.
    (a, b, c) = waits.delays
    assert 0.075 <= a <= 0.1
    assert 0.15 <= b <= 0.2
    assert 0.225 <= c <= 0.3
    assert waits.requests_before == [1, 2, 3]
    assert len(upstream.requests) == 4


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, ProviderStatusError),
        (401, ProviderAuthError),
        (403, ProviderAuthError),
        (404, ProviderStatusError),
    ],
)
async def test_client_errors_are_not_retried(
    provider: OpenAIProvider, upstream: FakeUpstream, status: int, error: type[ProviderError]
) -> None:
    upstream.default = Scenario(status=status, error_message="model 'x' does not exist")
    with pytest.raises(error) as info:
        await collect(provider)
    assert len(upstream.requests) == 1
    assert type(info.value) is error
    assert isinstance(info.value, ProviderStatusError)
    assert info.value.status == status
    assert info.value.retryable is False
    assert "model 'x' does not exist" in info.value.message
    assert str(status) in info.value.message


async def test_x_should_retry_overrides_the_status(
    provider: OpenAIProvider, upstream: FakeUpstream
) -> None:
    upstream.enqueue(Scenario(status=503, headers=(("x-should-retry", "false"),)))
    with pytest.raises(ProviderStatusError) as info:
        await collect(provider)
    assert len(upstream.requests) == 1
    assert info.value.retryable is False

    upstream.enqueue(Scenario(status=400, headers=(("x-should-retry", "true"),)))
    await collect(provider, "fake-tokens-1")
    assert len(upstream.requests) == 3


async def test_retries_run_out(upstream: FakeUpstream) -> None:
    provider = make_provider(upstream.base_url, max_retries=3)
    upstream.default = Scenario(status=503, retry_after="0")
    with pytest.raises(ProviderStatusError) as info:
        await collect(provider)
    await provider.aclose()
    assert len(upstream.requests) == 4
    assert info.value.status == 503
    assert info.value.retryable is True
    assert info.value.retry_after == 0
    assert "after 3 retries" in info.value.message


async def test_a_reset_before_any_text_is_retried_transparently(
    provider: OpenAIProvider, upstream: FakeUpstream
) -> None:
    upstream.enqueue(Scenario(tokens=5, reset_after=0))
    upstream.default = Scenario(tokens=5)
    deltas = await collect(provider)
    assert len(upstream.requests) == 2
    assert text_of(deltas) == tokens_text(5)
    assert upstream.connections[0].closed_by == "reset"


async def test_no_retry_once_text_was_yielded(
    provider: OpenAIProvider, upstream: FakeUpstream
) -> None:
    upstream.default = Scenario(tokens=10, reset_after=3)
    got: list[Delta] = []
    with pytest.raises(ProviderConnectionError, match="after the answer began"):
        await drain_into(got, provider)
    assert text_of(got) == tokens_text(3)
    assert len(upstream.requests) == 1


async def test_connect_refused_after_retries(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ssechat")
    provider = make_provider(f"http://127.0.0.1:{free_port()}/v1", max_retries=2)
    with pytest.raises(ProviderConnectionError, match="cannot connect") as info:
        await collect(provider)
    await provider.aclose()
    assert info.value.retryable is True
    retries = [r for r in caplog.records if r.name == "ssechat.providers.openai"]
    assert [r.getMessage().split("; ")[1].split(" in ")[0] for r in retries] == [
        "retry 1 of 2",
        "retry 2 of 2",
    ]


async def test_idle_timeout_on_a_stall(upstream: FakeUpstream) -> None:
    provider = make_provider(upstream.base_url, idle_timeout=0.2)
    upstream.default = Scenario(tokens=5, stall_after=2)
    got: list[Delta] = []
    with pytest.raises(ProviderTimeoutError, match=r"nothing for 0\.2 s"):
        await drain_into(got, provider)
    await provider.aclose()
    assert text_of(got) == tokens_text(2)
    assert len(upstream.requests) == 1


async def test_a_stall_before_any_text_is_retried(upstream: FakeUpstream) -> None:
    provider = make_provider(upstream.base_url, idle_timeout=0.1, max_retries=1)
    upstream.default = Scenario(tokens=5, stall_after=0)
    with pytest.raises(ProviderTimeoutError):
        await collect(provider)
    await provider.aclose()
    assert len(upstream.requests) == 2


# --- cancellation --------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def no_gc_rescue() -> AsyncIterator[None]:
    """Abandoned async generators are not closed behind the code's back.

    CPython frees a dropped generator at once and asyncio's finalizer hook then closes it, which
    would close the response, and the connection, even if the provider forgot to. Here
    such generators are kept instead, so only an explicit close counts. (Set inside the test:
    the event loop reinstalls its own hooks each time it is started.)
    """
    hooks = sys.get_asyncgen_hooks()
    abandoned: list[Any] = []
    sys.set_asyncgen_hooks(firstiter=hooks.firstiter, finalizer=abandoned.append)
    try:
        yield
    finally:
        sys.set_asyncgen_hooks(*hooks)
        for agen in abandoned:
            await agen.aclose()


async def test_aclose_mid_stream_closes_the_upstream_connection(
    provider: OpenAIProvider, upstream: FakeUpstream
) -> None:
    upstream.default = Scenario(tokens=1000, rate=50)
    async with no_gc_rescue():
        stream = provider.stream(MESSAGES, "m", GenerationParams())
        first = await stream.__anext__()
        assert first.text
        assert upstream.connections[0].closed_at is None
        await stream.aclose()
        with anyio.fail_after(10):
            await upstream.wait_closed(0)
    # 1 000 tokens at 50/s had 20 s to go: the close is the client's, made by aclose().
    assert upstream.connections[0].closed_by == "client"


async def test_cancelling_the_consumer_closes_the_upstream_connection(
    provider: OpenAIProvider, upstream: FakeUpstream
) -> None:
    upstream.default = Scenario(tokens=5, stall_after=2)
    two = anyio.Event()
    got: list[Delta] = []

    async def consume() -> None:
        async for delta in provider.stream(MESSAGES, "m", GenerationParams()):
            got.append(delta)
            if text_of(got) == tokens_text(2):  # then the upstream stalls
                two.set()

    async with no_gc_rescue():
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            await two.wait()
            assert upstream.connections[0].closed_at is None
            tg.cancel_scope.cancel()
        with anyio.fail_after(10):
            await upstream.wait_closed(0)
    # The upstream stalls forever after two tokens: only the cancel can have closed it.
    assert upstream.connections[0].closed_by == "client"


async def test_cancelled_while_holding_a_delta_closes_the_upstream_connection(
    provider: OpenAIProvider, upstream: FakeUpstream
) -> None:
    # The consumer is cancelled outside __anext__; aclosing() then closes the stream inside an
    # already cancelled scope, where only a shielded close gets anything done.
    upstream.default = Scenario(tokens=1000, rate=50)
    two = anyio.Event()

    async def consume() -> None:
        got = 0
        async with contextlib.aclosing(provider.stream(MESSAGES, "m", GenerationParams())) as s:
            async for _ in s:
                got += 1
                if got == 2:
                    two.set()
                    await anyio.sleep_forever()

    async with no_gc_rescue():
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            await two.wait()
            assert upstream.connections[0].closed_at is None
            tg.cancel_scope.cancel()
        with anyio.fail_after(10):
            await upstream.wait_closed(0)
    assert upstream.connections[0].closed_by == "client"


async def test_cancel_during_retry_backoff(upstream: FakeUpstream) -> None:
    waiting = anyio.Event()

    async def backoff(seconds: float) -> None:
        waiting.set()
        await anyio.sleep_forever()

    provider = make_provider(upstream.base_url, sleep=backoff)
    upstream.default = Scenario(status=503)
    async with anyio.create_task_group() as tg:
        tg.start_soon(collect, provider)
        with anyio.fail_after(10):
            await waiting.wait()
        tg.cancel_scope.cancel()
    await provider.aclose()
    assert len(upstream.requests) == 1  # cancelled in the wait: no second request


# --- the key -------------------------------------------------------------------------------------


def exception_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc) + str(getattr(exc, "message", ""))


async def test_the_key_never_appears_in_errors_or_logs(
    upstream: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    provider = make_provider(upstream.base_url, idle_timeout=0.2)
    echoing = f"Incorrect API key provided: {KEY}."
    upstream.enqueue(
        Scenario(status=401, error_message=echoing),
        Scenario(status=500, error_message=echoing, headers=(("x-should-retry", "true"),)),
        Scenario(status=500, error_message=echoing),
        Scenario(status=500, error_message=echoing),
        Scenario(tokens=3, error_after=1, error_message=echoing),
        Scenario(tokens=3, stall_after=1),
        Scenario(tokens=3, reset_after=1),
    )
    errors: list[BaseException] = []
    for _ in range(5):
        with pytest.raises(ProviderError) as info:
            await collect(provider)
        errors.append(info.value)
    await provider.aclose()
    refused = make_provider(f"http://127.0.0.1:{free_port()}/v1")
    with pytest.raises(ProviderConnectionError) as info:
        await collect(refused)
    errors.append(info.value)
    assert await refused.list_models() == []
    await refused.aclose()

    assert [type(e) for e in errors] == [
        ProviderAuthError,
        ProviderStatusError,
        ProviderStreamError,
        ProviderTimeoutError,
        ProviderConnectionError,
        ProviderConnectionError,
    ]
    assert "Incorrect API key provided: ***" in errors[0].args[0]
    for error in errors:
        assert KEY not in exception_text(error)
    assert upstream.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert caplog.records  # there was logging to check
    assert KEY not in caplog.text
    assert KEY not in repr(provider)


def test_a_key_that_cannot_be_a_header_is_refused_without_showing_it() -> None:
    with pytest.raises(ValueError, match="API key") as info:
        OpenAIProvider(api_key=KEY + "\n")
    assert KEY not in str(info.value)


# --- models, lifecycle ---------------------------------------------------------------------------


async def test_list_models(provider: OpenAIProvider, upstream: FakeUpstream) -> None:
    async with httpx.AsyncClient() as client:
        listed = (await client.get(f"{upstream.base_url}/models")).json()["data"]
    assert await provider.list_models() == sorted(m["id"] for m in listed)
    assert upstream.requests[-1].headers["authorization"] == f"Bearer {KEY}"


async def test_list_models_failure_is_an_empty_list(upstream: FakeUpstream) -> None:
    wrong_path = make_provider(f"http://127.0.0.1:{upstream.port}/nope")
    assert await wrong_path.list_models() == []
    await wrong_path.aclose()
    assert upstream.requests[0].path == "/nope/models"


async def test_a_closed_provider_refuses_to_stream(upstream: FakeUpstream) -> None:
    owned = make_provider(upstream.base_url)
    await collect(owned, "fake-tokens-1")
    await owned.aclose()
    with pytest.raises(ProviderConnectionError, match="closed") as info:
        await collect(owned)
    assert info.value.retryable is False


async def test_a_base_url_without_scheme_fails_clearly_and_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="ssechat")
    provider = make_provider("localhost:11434/v1")
    with pytest.raises(ProviderConnectionError, match="not usable") as info:
        await collect(provider)
    await provider.aclose()
    assert info.value.retryable is False
    assert not caplog.records  # no retries


async def test_a_whole_json_completion_is_accepted(anyio_backend: str) -> None:
    # Some servers ignore "stream": they answer one chat.completion object.
    completion = orjson.dumps(
        {
            "object": "chat.completion",
            "choices": [{"index": 0, "message": {"content": "whole"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
        }
    )
    answer = (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
        % len(completion)
        + completion
    )
    async with raw_server(answering(answer)) as server:
        provider = make_provider(f"http://127.0.0.1:{server.port}/v1")
        deltas = await collect(provider)
        await provider.aclose()
    assert deltas == [Delta("whole"), Delta(finish_reason="stop"), Delta(usage=Usage(1, 2, 3))]


def test_is_a_provider() -> None:
    provider = OpenAIProvider(api_key=KEY)
    assert isinstance(provider, Provider)
    assert provider.name == "openai"
    assert repr(provider) == "OpenAIProvider(base_url='https://api.openai.com/v1', api_key=<set>)"


def test_userinfo_in_the_base_url_is_not_shown() -> None:
    provider = OpenAIProvider(base_url="http://user:hunter2@proxy.local:8080/v1/")
    assert "hunter2" not in repr(provider)
    assert provider.base_url == "http://user:hunter2@proxy.local:8080/v1"


# --- retry-after parsing -------------------------------------------------------------------------


@pytest.fixture
def now() -> float:
    return 1_700_000_000.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after-ms": "soon", "retry-after": "9"}, 9.0),
        ({"retry-after": "tomorrow"}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None, now: float) -> None:
    assert parse_retry_after(headers, now) == expected


def test_parse_retry_after_http_date(now: float) -> None:
    date = email.utils.formatdate(now + 42, usegmt=True)
    assert parse_retry_after({"retry-after": date}, now) == pytest.approx(42)
