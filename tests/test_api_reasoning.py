"""A reasoning model through the API: the run stream's ``reasoning`` events, the stored message's
reasoning, duration and tool calls, ``/api/chat``'s opt-in reasoning frames, the next turn's
context (no reasoning at the upstream), and a reconnect mid-reasoning on a real server.

Until the fake upstream speaks reasoning, the reasoning answers come from a scripted provider
(``runlog_support.ScriptedDeltas``) put in place of the registry's upstream provider once the
app has started; the second turn of the context test goes to the real ``FakeUpstream``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest

from ssechat.api import create_app
from ssechat.api.schemas import ConversationDetail
from ssechat.config import Settings
from ssechat.fake_upstream import FakeUpstream, Scenario
from ssechat.providers.base import Delta, Provider, ToolCall, Usage
from ssechat.sse import Event, EventDecoder

from .api_support import api_client, parse_events, run_stream
from .conftest import RealServer
from .runlog_support import ScriptedDeltas

pytestmark = pytest.mark.anyio

SSE = {"Accept": "text/event-stream"}
MODEL = "reasoner"
THOUGHTS = ["Let me think.", "\nThe user says hi;", " a greeting — 🙂", " so: greet back."]
ANSWER = ["Hello", " there!\n", "How can I help?"]
USAGE = Usage(3, 40, 43, reasoning_tokens=30)


def reasoning_script(*gates: Callable[[], Any]) -> ScriptedDeltas:
    """The thoughts then the answer (the last thought and the first answer piece in one read),
    with ``gates`` awaited after the first thoughts and after the second."""
    steps: list[Any] = [Delta(reasoning=THOUGHTS[0]), Delta(reasoning=THOUGHTS[1])]
    if gates:
        steps.insert(1, gates[0])
    if len(gates) > 1:
        steps.append(gates[1])
    steps += [
        Delta(reasoning=THOUGHTS[2]),
        Delta(reasoning=THOUGHTS[3], text=ANSWER[0]),
        Delta(text=ANSWER[1]),
        Delta(text=ANSWER[2], finish_reason="stop"),
        Delta(usage=USAGE),
    ]
    return ScriptedDeltas(*steps)


def settings_for(tmp_path: Path, base_url: str = "http://127.0.0.1:9/v1") -> Settings:
    return Settings(
        database_url=str(tmp_path / "chat.db"),
        openai_base_url=base_url,
        openai_api_key="sk-test-secret-key-0123456789",
        model=MODEL,
        web_dir=str(tmp_path / "no-web"),
        heartbeat=60,
        upstream_max_retries=0,
        auth="off",  # accounts are tests/test_auth_*.py's
        allowed_hosts="test,127.0.0.1",
    )


def use_provider(app: Any, provider: Provider) -> Provider:
    """Serve every upstream model with ``provider``; return the one it replaces."""
    registry = app.state.service.providers
    previous: Provider = registry.upstream
    registry.upstream = provider
    return previous


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(settings_for(tmp_path)) as client:
        yield client


async def new_conversation(client: httpx.AsyncClient) -> str:
    response = await client.post("/api/conversations", json={"model": MODEL})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def texts(events: list[Event], kind: str) -> str:
    return "".join(json.loads(e.data)["text"] for e in events if e.type == kind)


async def test_a_run_streams_reasoning_then_the_answer_and_the_message_keeps_both(
    client: httpx.AsyncClient,
) -> None:
    use_provider(client.app, reasoning_script())  # type: ignore[attr-defined]
    cid = await new_conversation(client)
    response = await client.post(
        f"/api/conversations/{cid}/messages", json={"content": "hi"}, headers=SSE
    )
    assert response.status_code == 200, response.text
    stream = run_stream(response.content)
    assert stream.types == ["run"] + ["reasoning"] * 4 + ["delta"] * 3 + ["done"]
    assert stream.ids == list(range(len(stream.types)))  # one sequence of ids
    assert texts(stream.events, "reasoning") == "".join(THOUGHTS)
    assert stream.text == "".join(ANSWER)
    assert stream.done["usage"]["reasoning_tokens"] == 30
    assert "tool_calls" not in stream.done

    detail = (await client.get(f"/api/conversations/{cid}")).json()
    assert ConversationDetail.model_validate(detail).model_dump(mode="json") == detail
    answer = detail["messages"][-1]
    assert answer["content"] == "".join(ANSWER)
    assert answer["reasoning"] == "".join(THOUGHTS)
    assert isinstance(answer["reasoning_seconds"], float)
    assert answer["tool_calls"] is None
    assert answer["usage"]["reasoning_tokens"] == 30
    assert detail["messages"][0]["reasoning"] is None  # the question


async def test_a_live_message_shows_the_reasoning_so_far(client: httpx.AsyncClient) -> None:
    gate = anyio.Event()
    reached = anyio.Event()

    async def pause() -> None:
        reached.set()
        await gate.wait()

    use_provider(client.app, reasoning_script(pause))  # type: ignore[attr-defined]
    cid = await new_conversation(client)
    started = await client.post(f"/api/conversations/{cid}/messages", json={"content": "hi"})
    assert started.status_code == 202, started.text
    with anyio.fail_after(10):
        await reached.wait()
    detail = (await client.get(f"/api/conversations/{cid}")).json()
    assert ConversationDetail.model_validate(detail).model_dump(mode="json") == detail
    live = detail["messages"][-1]
    assert live["status"] == "streaming"
    assert live["run_id"] == started.json()["run_id"]
    assert (live["reasoning"], live["content"]) == (THOUGHTS[0], "")
    gate.set()
    with anyio.fail_after(10):
        events = await client.get(started.json()["events_url"])
    assert run_stream(events.content).done["status"] == "complete"


async def test_tool_calls_reach_done_and_the_message(client: httpx.AsyncClient) -> None:
    call = ToolCall("call_9", "lookup", '{"q": "sse"}')
    provider = ScriptedDeltas(Delta(finish_reason="tool_calls", tool_calls=(call,)))
    use_provider(client.app, provider)  # type: ignore[attr-defined]
    cid = await new_conversation(client)
    response = await client.post(
        f"/api/conversations/{cid}/messages", json={"content": "look it up"}, headers=SSE
    )
    stream = run_stream(response.content)
    # Offered no tools, the run makes no call: it keeps it as the model asked for it.
    unmade = {"server": None, "tool": None, "approval": None, "decision": None, "result": None}
    kept = [{**call.as_dict(), **unmade, "offset": 0}]
    assert stream.done["tool_calls"] == kept
    assert stream.text == ""
    detail = (await client.get(f"/api/conversations/{cid}")).json()
    assert ConversationDetail.model_validate(detail).model_dump(mode="json") == detail
    answer = detail["messages"][-1]
    assert (answer["tool_calls"], answer["finish_reason"]) == (kept, "tool_calls")
    assert answer["reasoning"] is None


# --- /api/chat ----------------------------------------------------------------------------------


@pytest.mark.parametrize("asked", [False, True], ids=["answer-only", "with-reasoning"])
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_api_chat_sends_reasoning_only_when_asked(
    client: httpx.AsyncClient, method: str, asked: bool
) -> None:
    use_provider(client.app, reasoning_script())  # type: ignore[attr-defined]
    if method == "GET":
        params: dict[str, Any] = {"message": "hi"}
        if asked:
            params["reasoning"] = "1"
        response = await client.get("/api/chat", params=params)
    else:
        body: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}]}
        if asked:
            body["reasoning"] = True
        response = await client.post("/api/chat", json=body)
    assert response.status_code == 200, response.text
    events = parse_events([response.content])
    answer = [e.data for e in events if e.type == "message"]
    assert answer[-1] == "[DONE]"
    assert "".join(answer[:-1]) == "".join(ANSWER)  # multi-line pieces come back whole
    thoughts = [e.data for e in events if e.type == "reasoning"]
    assert thoughts == (THOUGHTS if asked else [])
    if asked:  # the thinking comes before the answer, even within one read
        types = [e.type for e in events]
        assert types.index("message") == len(THOUGHTS)


# --- the next turn's context -------------------------------------------------------------------


async def test_the_next_turn_sends_no_reasoning_upstream(tmp_path: Path) -> None:
    async with (
        FakeUpstream(Scenario(text="Second answer.")) as upstream,
        api_client(settings_for(tmp_path, upstream.base_url)) as client,
    ):
        real = use_provider(client.app, reasoning_script())  # type: ignore[attr-defined]
        cid = await new_conversation(client)
        first = await client.post(
            f"/api/conversations/{cid}/messages", json={"content": "hi"}, headers=SSE
        )
        assert run_stream(first.content).done["status"] == "complete"
        use_provider(client.app, real)  # type: ignore[attr-defined]
        second = await client.post(
            f"/api/conversations/{cid}/messages", json={"content": "and now?"}, headers=SSE
        )
        assert run_stream(second.content).text == "Second answer."

    (request,) = [r for r in upstream.requests if r.path.endswith("/chat/completions")]
    sent = request.body["messages"]
    assert [(m["role"], m["content"]) for m in sent] == [
        ("user", "hi"),
        ("assistant", "".join(ANSWER)),
        ("user", "and now?"),
    ]
    raw = json.dumps(request.body)
    for thought in THOUGHTS:
        assert json.dumps(thought)[1:-1] not in raw
    assert all(set(m) <= {"role", "content"} for m in sent)


# --- a real server ------------------------------------------------------------------------------


class Follower:
    """A run's events over a real connection, read event by event."""

    def __init__(self, response: httpx.Response) -> None:
        self.decoder = EventDecoder()
        self.events: list[Event] = []
        self._chunks = response.iter_raw()

    def until(self, done: Callable[[list[Event]], bool]) -> None:
        while not done(self.events):
            chunk = next(self._chunks, None)
            assert chunk is not None, f"the stream ended first: {self.events}"
            self.events.extend(self.decoder.feed(chunk))


def count(kind: str, n: int) -> Callable[[list[Event]], bool]:
    return lambda events: sum(e.type == kind for e in events) >= n


@pytest.mark.real_server
def test_reconnecting_mid_reasoning_loses_and_duplicates_nothing(
    tmp_path: Path, real_server: Callable[..., RealServer]
) -> None:
    # The run pauses after its first thought (the first client leaves there), then after its
    # second (written while nobody listened: the second client gets it as a replay), then goes
    # on live through the rest of the thinking and the answer.
    first_gate, second_gate, second_reached = (threading.Event() for _ in range(3))

    async def wait_first() -> None:
        assert await anyio.to_thread.run_sync(first_gate.wait, 10)

    async def wait_second() -> None:
        second_reached.set()
        assert await anyio.to_thread.run_sync(second_gate.wait, 10)

    app = create_app(settings_for(tmp_path))
    server = real_server(app, lifespan="on")
    use_provider(app, reasoning_script(wait_first, wait_second))
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        cid = client.post("/api/conversations", json={"model": MODEL}).json()["id"]
        with client.stream(
            "POST", f"/api/conversations/{cid}/messages", json={"content": "hi"}, headers=SSE
        ) as response:
            first = Follower(response)
            first.until(count("reasoning", 1))
        run = json.loads(first.events[0].data)
        first_gate.set()
        assert second_reached.wait(10)
        with client.stream(
            "GET",
            f"/api/runs/{run['run_id']}/events",
            headers={"Last-Event-ID": first.decoder.last_event_id},
        ) as response:
            second = Follower(response)
            second.until(count("reasoning", 1))  # the replayed thought
            second_gate.set()
            second.until(count("done", 1))
        saved = client.get(f"/api/conversations/{cid}").json()["messages"][-1]

    events = first.events + second.events
    ids = [int(e.last_event_id) for e in events]
    assert ids == list(range(len(events)))  # nothing lost, nothing twice
    assert texts(events, "reasoning") == "".join(THOUGHTS)
    assert texts(events, "delta") == "".join(ANSWER)
    assert (saved["reasoning"], saved["content"]) == ("".join(THOUGHTS), "".join(ANSWER))
