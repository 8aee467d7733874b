"""ssechat.fake_upstream: its wire format against the recordings, its scenarios and its records.

Every check reads the fake's output with a plain httpx client or a raw socket, never with the
provider under test elsewhere, so a bug in one cannot hide a bug in the other. Pacing and stalls
are watched through a clock the test holds (``HeldClock``), never timed.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import pytest

from ssechat.fake_upstream import FakeUpstream, Scenario, parse_model

from .fake_upstream_support import (
    FrameReader,
    HeldClock,
    chat,
    frames_of,
    payloads,
    raw_chat_request,
)
from .fixtures import OPENAI_STREAMS

pytestmark = pytest.mark.anyio

FIXTURES = OPENAI_STREAMS
RECORDINGS = sorted(FIXTURES.glob("*.sse"))
RECORDED = {p.stem: p.read_bytes() for p in RECORDINGS}


@pytest.fixture
async def upstream(anyio_backend: str) -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream(fixtures_dir=FIXTURES) as fake:
        yield fake


@pytest.fixture
async def client(anyio_backend: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as c:
        yield c


# --- the wire format ----------------------------------------------------------------------------


async def test_generated_stream_has_the_shape_of_the_recordings(
    upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    recorded = payloads((FIXTURES / "content-short.sse").read_bytes())
    rec_content = next(
        p for p in recorded if p["choices"] and "content" in p["choices"][0]["delta"]
    )
    rec_usage = next(p for p in recorded if p != "[DONE]" and p.get("usage"))

    response = await client.post(
        f"{upstream.base_url}/chat/completions",
        json=chat("fake-tokens-7", stream_options={"include_usage": True}),
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.content.endswith(b"\n\n")
    got = payloads(response.content)
    assert got[-1] == "[DONE]"
    chunks = got[:-1]
    role, *contents, finish, usage = chunks
    assert len(contents) == 7
    for chunk in chunks:
        assert list(chunk) == list(rec_content) + (["usage"] if chunk is usage else [])
        assert chunk["object"] == "chat.completion.chunk"
        assert (chunk["id"], chunk["created"], chunk["model"]) == (
            role["id"],
            role["created"],
            "fake-tokens-7",
        )
    assert role["choices"][0]["delta"] == recorded[0]["choices"][0]["delta"]
    for chunk in (role, *contents, finish):
        assert list(chunk["choices"][0]) == list(rec_content["choices"][0])
    assert all(c["choices"][0]["finish_reason"] is None for c in contents)
    assert finish["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }
    assert usage["choices"] == []
    assert list(usage["usage"]) == list(rec_usage["usage"])
    assert usage["usage"]["completion_tokens"] == 7
    prompt = sum(len(m["content"].split()) for m in chat("m")["messages"])
    assert usage["usage"]["prompt_tokens"] == prompt
    total = usage["usage"]["prompt_tokens"] + usage["usage"]["completion_tokens"]
    assert usage["usage"]["total_tokens"] == total


async def test_usage_chunk_only_when_asked(
    upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    response = await client.post(
        f"{upstream.base_url}/chat/completions", json=chat("fake-tokens-3")
    )
    got = payloads(response.content)
    assert all(p == "[DONE]" or "usage" not in p for p in got)
    assert got[-2]["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda p: p.stem)
@pytest.mark.parametrize("fault", ["", "+split-7", "+chop-5"])
async def test_replay_is_byte_for_byte(
    upstream: FakeUpstream, client: httpx.AsyncClient, path: Path, fault: str
) -> None:
    response = await client.post(
        f"{upstream.base_url}/chat/completions", json=chat(f"fake-replay-{path.stem}{fault}")
    )
    assert response.status_code == 200
    assert response.content == RECORDED[path.stem]


async def test_split_writes_reach_the_client_as_separate_reads(
    upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    upstream.enqueue(Scenario(tokens=4, chop=7))
    pieces: list[bytes] = []
    async with client.stream(
        "POST", f"{upstream.base_url}/chat/completions", json=chat("m")
    ) as response:
        async for piece in response.aiter_raw():
            pieces.append(piece)
    assert max(map(len, pieces)) <= 7
    body = b"".join(pieces)
    assert len(pieces) >= len(body) // 7
    assert payloads(body)[-1] == "[DONE]"


async def test_seeded_splits_are_reproducible_and_cut_frames(
    upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    async def reads(seed: int) -> list[bytes]:
        upstream.enqueue(Scenario(tokens=10, split_seed=seed))
        async with client.stream(
            "POST", f"{upstream.base_url}/chat/completions", json=chat("m")
        ) as response:
            return [piece async for piece in response.aiter_raw()]

    first, again, other = await reads(3), await reads(3), await reads(4)
    assert [len(p) for p in first] == [len(p) for p in again]
    assert [len(p) for p in first] != [len(p) for p in other]
    # More reads than frames: frames were cut.
    assert len(first) > len(frames_of(b"".join(first)))


# --- answers -----------------------------------------------------------------------------------


async def test_echo_answers_the_last_user_message(
    upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    body = chat("fake-echo")
    body["messages"].append({"role": "assistant", "content": "sunny"})
    body["messages"].append({"role": "user", "content": "and  tomorrow in Zürich?"})
    response = await client.post(f"{upstream.base_url}/chat/completions", json=body)
    contents = [p["choices"][0]["delta"].get("content") for p in payloads(response.content)[1:-2]]
    assert "".join(contents) == "and  tomorrow in Zürich?"


async def test_max_tokens_truncates_with_finish_length(
    upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    response = await client.post(
        f"{upstream.base_url}/chat/completions", json=chat("fake-tokens-50", max_tokens=4)
    )
    got = payloads(response.content)
    assert len(got) == 1 + 4 + 1 + 1
    assert got[-2]["choices"][0]["finish_reason"] == "length"


async def test_pacing_waits_before_each_token_on_deadlines_from_the_start(
    upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    upstream.clock = clock = HeldClock()
    async with client.stream(
        "POST", f"{upstream.base_url}/chat/completions", json=chat("fake-tokens-5@25")
    ) as response:
        reader = FrameReader(response)
        for sent in range(5):
            _, done = await clock.next_sleep()
            # The fake waits before token sent+1: the role chunk and the tokens before it have
            # arrived, and not a byte more.
            assert len(await reader.until(1 + sent)) == 1 + sent
            assert reader.pending == b""
            clock.now += 0.01  # it wakes 10 ms late...
            done.set()
        body = await reader.rest()
    # ...so the next waits are shorter: 25 tokens/s is one every 40 ms from the start.
    assert clock.asked == pytest.approx([0.04, 0.03, 0.03, 0.03, 0.03])
    got = payloads(body)
    assert len(got) == 1 + 5 + 2
    assert got[-1] == "[DONE]"


async def test_unpaced_streams_never_wait(
    upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    upstream.clock = clock = HeldClock()
    response = await client.post(
        f"{upstream.base_url}/chat/completions", json=chat("fake-tokens-5")
    )
    assert len(payloads(response.content)) == 1 + 5 + 2
    assert clock.asked == []


async def test_non_streamed_completion(upstream: FakeUpstream, client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{upstream.base_url}/chat/completions", json=chat("fake-replay-refusal", stream=False)
    )
    completion = response.json()
    assert completion["object"] == "chat.completion"
    expected = "".join(
        p["choices"][0]["delta"].get("refusal") or ""
        for p in payloads(RECORDED["refusal"])[:-1]
        if p["choices"]
    )
    assert completion["choices"][0]["message"]["content"] == expected
    assert completion["choices"][0]["finish_reason"] == "stop"
    assert completion["usage"]["total_tokens"] == 90


async def test_models_lists_fake_names_and_recordings(
    upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    response = await client.get(f"{upstream.base_url}/models")
    ids = [m["id"] for m in response.json()["data"]]
    assert ids == sorted(ids)
    assert {f"fake-replay-{p.stem}" for p in RECORDINGS} <= set(ids)
    assert "fake-echo" in ids


# --- scenario choice and faults ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("fake-tokens-200@20", Scenario(tokens=200, rate=20)),
        ("fake-tokens", Scenario()),
        ("fake-echo@40", Scenario(mode="echo", rate=40)),
        ("fake-replay-content-short", Scenario(mode="replay", replay="content-short")),
        (
            "fake-tokens-5+status-429x2+retry-1.5+retryms-200",
            Scenario(tokens=5, status=429, status_times=2, retry_after="1.5", retry_after_ms="200"),
        ),
        ("fake-tokens-9+error-3", Scenario(tokens=9, error_after=3)),
        ("fake-tokens-9+errordone-3", Scenario(tokens=9, error_after=3, done_after_error=True)),
        ("fake-tokens+reset-2+nodone", Scenario(reset_after=2, omit_done=True)),
        ("fake-tokens+stall-2-0.5", Scenario(stall_after=2, stall_for=0.5)),
        ("fake-tokens+stall-2", Scenario(stall_after=2)),
        ("fake-tokens+split-42+chop-3", Scenario(split_seed=42, chop=3)),
        ("fake-tokens+finish-content_filter", Scenario(finish_reason="content_filter")),
        ("gpt-4o-mini", None),
    ],
)
def test_model_name_syntax(model: str, expected: Scenario | None) -> None:
    assert parse_model(model) == expected


@pytest.mark.parametrize(
    "model",
    ["fake-", "fake-bogus", "fake-tokens-x", "fake-tokens@fast", "fake-replay-", "fake-echo+bad",
     "fake-tokens+status-99", "fake-tokens+stall-", "fake-tokens+chop-0", "fake-echo-3"],
)  # fmt: skip
def test_malformed_model_names_are_rejected(model: str) -> None:
    with pytest.raises(ValueError, match="fake model"):
        parse_model(model)


async def test_malformed_fake_model_gets_a_400_that_says_why(
    upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    response = await client.post(f"{upstream.base_url}/chat/completions", json=chat("fake-nope"))
    assert response.status_code == 400
    assert "fake-nope" in response.json()["error"]["message"]


async def test_status_for_the_first_requests_then_success(
    upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    url = f"{upstream.base_url}/chat/completions"
    model = "fake-tokens-2+status-503x2+retry-7+retryms-70"
    first = await client.post(url, json=chat(model))
    second = await client.post(url, json=chat(model))
    third = await client.post(url, json=chat(model))
    assert [first.status_code, second.status_code, third.status_code] == [503, 503, 200]
    assert first.headers["retry-after"] == "7"
    assert first.headers["retry-after-ms"] == "70"
    assert first.json()["error"]["type"] == "server_error"
    assert payloads(third.content)[-1] == "[DONE]"
    # The counter belongs to that exact scenario: another name starts afresh.
    other = await client.post(url, json=chat("fake-tokens-3+status-503x2+retry-7+retryms-70"))
    assert other.status_code == 503


async def test_queue_comes_first_one_request_each_then_the_default(
    upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    upstream.default = Scenario(tokens=1)
    upstream.enqueue(
        Scenario(status=500, error_message="queued boom", headers=(("x-should-retry", "false"),)),
        Scenario(tokens=2),
    )
    url = f"{upstream.base_url}/chat/completions"
    first = await client.post(url, json=chat("fake-tokens-9"))
    second = await client.post(url, json=chat("fake-tokens-9"))
    third = await client.post(url, json=chat("anything"))
    assert first.status_code == 500
    assert first.json()["error"]["message"] == "queued boom"
    assert first.headers["x-should-retry"] == "false"
    assert len(payloads(second.content)) == 1 + 2 + 2
    assert len(payloads(third.content)) == 1 + 1 + 2
    assert [r.scenario for r in upstream.requests] == [
        Scenario(status=500, error_message="queued boom", headers=(("x-should-retry", "false"),)),
        Scenario(tokens=2),
        Scenario(tokens=1),
    ]


@pytest.mark.parametrize("done", [False, True])
async def test_error_frame_after_n_tokens(
    upstream: FakeUpstream, client: httpx.AsyncClient, done: bool
) -> None:
    upstream.enqueue(Scenario(tokens=6, error_after=2, done_after_error=done, error_message="x"))
    response = await client.post(f"{upstream.base_url}/chat/completions", json=chat("m"))
    got = payloads(response.content)
    assert len(got) == 1 + 2 + 1 + int(done)
    error = got[3]
    assert error == {"error": {"message": "x", "type": "server_error", "param": None, "code": None}}
    assert (got[-1] == "[DONE]") is done


async def test_omit_done(upstream: FakeUpstream, client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{upstream.base_url}/chat/completions", json=chat("fake-replay-content-short+nodone")
    )
    expected = RECORDED["content-short"].removesuffix(b"data: [DONE]\n\n")
    assert response.content == expected


async def test_reset_after_n_tokens(upstream: FakeUpstream, client: httpx.AsyncClient) -> None:
    upstream.enqueue(Scenario(tokens=10, reset_after=3))
    received = bytearray()

    async def read() -> None:
        url = f"{upstream.base_url}/chat/completions"
        async with client.stream("POST", url, json=chat("m")) as response:
            async for piece in response.aiter_raw():
                received.extend(piece)

    with pytest.raises(httpx.ReadError):
        await read()
    # Everything written before the reset arrived: the role chunk and three tokens.
    assert len(payloads(bytes(received))) == 4
    assert upstream.connections[0].closed_by == "reset"


async def test_a_timed_stall_sends_nothing_then_goes_on(
    upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    upstream.clock = clock = HeldClock()
    upstream.enqueue(Scenario(tokens=4, stall_after=2, stall_for=0.3))
    async with client.stream(
        "POST", f"{upstream.base_url}/chat/completions", json=chat("m")
    ) as response:
        reader = FrameReader(response)
        seconds, done = await clock.next_sleep()
        assert seconds == 0.3
        # Stalled after two tokens: the role chunk and those two have arrived, nothing more.
        assert len(await reader.until(3)) == 3
        assert reader.pending == b""
        done.set()
        body = await reader.rest()
    got = payloads(body)
    assert len(got) == 1 + 4 + 2
    assert got[-1] == "[DONE]"
    assert clock.asked == [0.3]


async def test_a_fault_beyond_the_answer_fires_before_the_body_ends(
    upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    upstream.enqueue(Scenario(tokens=2, error_after=50, error_message="late"))
    response = await client.post(f"{upstream.base_url}/chat/completions", json=chat("m"))
    got = payloads(response.content)
    assert got[-1]["error"]["message"] == "late"
    assert [p["choices"][0]["delta"].get("content") for p in got[1:3]] == ["Streaming", " keeps"]


async def test_a_client_leaving_a_stalled_stream_is_recorded_and_ends_the_answer(
    upstream: FakeUpstream,
) -> None:
    # The stall never ends by itself: only the client's leaving can close and finish it.
    upstream.enqueue(Scenario(tokens=5, stall_after=1))
    with socket.create_connection((upstream.host, upstream.port)) as sock:
        sock.sendall(raw_chat_request("m"))
        with anyio.fail_after(10):
            await upstream.wait_requests(1)
    with anyio.fail_after(10):
        await upstream.wait_closed(0)
        await upstream.requests[0].finished.wait()
    assert upstream.connections[0].closed_by == "client"


async def test_a_client_leaving_a_paced_stream_ends_the_answer_mid_wait(
    upstream: FakeUpstream,
) -> None:
    # The held clock never ends the wait: only the client's leaving can.
    upstream.clock = clock = HeldClock()
    with socket.create_connection((upstream.host, upstream.port)) as sock:
        sock.sendall(raw_chat_request("fake-tokens-5@25"))
        await clock.next_sleep()
    with anyio.fail_after(10):
        await upstream.wait_closed(0)
        await upstream.requests[0].finished.wait()
    assert upstream.connections[0].closed_by == "client"


# --- HTTP and records -----------------------------------------------------------------------------


async def test_requests_are_recorded_and_keep_alive_reuses_the_connection(
    upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    before = time.monotonic()
    body = chat("fake-tokens-2", temperature=0.3)
    await client.post(f"{upstream.base_url}/chat/completions", json=body)
    await client.get(f"{upstream.base_url}/models")
    first, second = upstream.requests
    assert (first.method, first.path, first.body) == ("POST", "/v1/chat/completions", body)
    assert first.headers["content-type"] == "application/json"
    assert before <= first.arrived_at <= second.arrived_at <= time.monotonic()
    assert (second.method, second.path, second.body) == ("GET", "/v1/models", None)
    assert len(upstream.connections) == 1
    assert upstream.connections[0].requests == [first, second]
    assert first.closed_at is None


async def test_unknown_route_and_bad_json(
    upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    missing = await client.get(f"{upstream.base_url}/nothing")
    assert missing.status_code == 404
    bad = await client.post(f"{upstream.base_url}/chat/completions", content=b"{not json")
    assert bad.status_code == 400
    assert "error" in bad.json()


async def test_malformed_request_gets_400_and_close(upstream: FakeUpstream) -> None:
    with socket.create_connection((upstream.host, upstream.port), timeout=10) as sock:
        sock.sendall(b"NONSENSE\r\n\r\n")
        reply = b""
        while chunk := await anyio.to_thread.run_sync(sock.recv, 65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 400 ")
    assert upstream.connections[0].closed_by == "server"


async def test_connection_close_is_honoured(upstream: FakeUpstream) -> None:
    async with httpx.AsyncClient(headers={"connection": "close"}) as client:
        response = await client.get(f"{upstream.base_url}/models")
    assert response.headers["connection"] == "close"
    with anyio.fail_after(10):
        await upstream.wait_closed(0)
    assert upstream.connections[0].closed_by == "server"


async def test_stop_cuts_streams_stalled_forever(anyio_backend: str) -> None:
    upstream = FakeUpstream(Scenario(stall_after=0))
    await upstream.start()
    url = f"{upstream.base_url}/chat/completions"
    async with (
        httpx.AsyncClient() as client,
        client.stream("POST", url, json=chat("m")) as response,
    ):
        assert response.status_code == 200
        with anyio.fail_after(10):
            await upstream.stop()
        with pytest.raises(httpx.HTTPError):
            await response.aread()
    assert upstream.connections[0].closed_by == "server"
    with pytest.raises(httpx.ConnectError):
        await httpx.AsyncClient().get(f"{upstream.base_url}/models")


def test_running_in_a_thread_for_sync_tests() -> None:
    with FakeUpstream.running_in_thread(Scenario(tokens=3)) as upstream:
        with httpx.Client(headers={"connection": "close"}, timeout=5) as client:
            response = client.post(f"{upstream.base_url}/chat/completions", json=chat("m"))
        assert len(payloads(response.content)) == 1 + 3 + 2
        assert upstream.requests[0].body["model"] == "m"
        # The wait_* coroutines run on the fake's own loop.
        closed_at = upstream.run(upstream.wait_closed(0), timeout=10)
        assert closed_at == upstream.connections[0].closed_at
        with pytest.raises(TimeoutError):
            upstream.run(upstream.wait_requests(2), timeout=0.05)
        url = upstream.base_url
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/models", timeout=2)


def test_runs_standalone_and_prints_its_url() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "ssechat.fake_upstream", "--port", "0", "--fixtures", str(FIXTURES)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("fake upstream on http://127.0.0.1:")
        url = line.split()[-1]
        response = httpx.post(
            f"{url}/chat/completions", json=chat("fake-replay-content-short"), timeout=5
        )
        assert response.content == RECORDED["content-short"]
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
