"""The tool loop of a run (``runs.tools``, ``RunManager``): calls written as events, decided,
run and answered, the next request carrying them in order, cancel, timeouts and limits.

The provider here plays one scripted turn per request and keeps what each request carried; the
tool runner is a recording stand-in whose calls the test can hold open. The real MCP servers
and the real upstream wire are in test_tools_api.py and test_tools_servers.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import pytest

from ssechat.errors import ConflictError, NotFoundError
from ssechat.providers.base import ChatMessage, Delta, GenerationParams, ToolCall
from ssechat.runs import Run, RunManager, RunSpec
from ssechat.runs.tools import DENIED, EXPIRED, ToolOffer
from ssechat.sse import EventDecoder

from .runlog_support import MemoryAnswers, read_all, read_until

pytestmark = pytest.mark.anyio


def offer(tool: str, approval: str = "always", server: str = "demo") -> ToolOffer:
    function = f"{server}__{tool}"
    definition = {"type": "function", "function": {"name": function, "parameters": {}}}
    return ToolOffer(function, server, tool, approval, definition)  # type: ignore[arg-type]


class Turns:
    """A provider that answers request n with script n, and keeps each request's messages
    and parameters."""

    name = "turns"

    def __init__(self, *scripts: Sequence[Delta]) -> None:
        self.scripts = list(scripts)
        self.requests: list[tuple[list[ChatMessage], GenerationParams]] = []

    async def stream(
        self, messages: Sequence[ChatMessage], model: str, params: GenerationParams
    ) -> AsyncGenerator[Delta, None]:
        self.requests.append((list(messages), params))
        for delta in self.scripts[len(self.requests) - 1]:
            yield delta

    async def list_models(self) -> list[str]:
        return ["turns"]

    async def aclose(self) -> None:
        pass


@dataclass
class Outcome:
    content: str
    is_error: bool = False


class Runner:
    """A ``ToolRunner`` that answers ``name(arguments)`` with a text, or holds the call open
    until ``release`` (to cancel it there); it records every call and every cancellation."""

    def __init__(self, *, hold: bool = False) -> None:
        self.calls: list[tuple[str, str, dict[str, Any], float]] = []
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.release = asyncio.Event()
        self.hold = hold

    async def call(
        self,
        server: str,
        tool: str,
        arguments: Mapping[str, Any],
        *,
        timeout: float,  # noqa: ASYNC109 - the ToolRunner protocol's
    ) -> Outcome:
        self.calls.append((server, tool, dict(arguments), timeout))
        self.started.set()
        if self.hold:
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
        return Outcome(f"{tool} says {json.dumps(dict(arguments), sort_keys=True)}")


def calling(*calls: ToolCall, text: str = "") -> list[Delta]:
    before = [Delta(text=text)] if text else []
    return [*before, Delta(finish_reason="tool_calls", tool_calls=calls)]


def answering(text: str) -> list[Delta]:
    return [Delta(text=text), Delta(finish_reason="stop")]


def spec(*offers: ToolOffer) -> RunSpec:
    return RunSpec("c", "u", "m", "turns", [ChatMessage("user", "go")], tools=offers, owner="o")


def events_of(body: bytes) -> list[tuple[str, Any]]:
    decoder = EventDecoder()
    return [(e.type, json.loads(e.data)) for e in [*decoder.feed(body), *decoder.close()]]


async def finished(run: Run) -> list[tuple[str, Any]]:
    with anyio.fail_after(10):
        await run.finished.wait()
        return events_of(await read_all(run.log.reader()))


async def until_waiting(run: Run, call_id: str) -> None:
    """Until the run waits for a decision on ``call_id``: its ``tool_call`` event is written
    just before the wait begins, in the same step of the run's task."""
    reader = run.log.reader()
    with anyio.fail_after(10):
        await read_until(
            reader, lambda events: any(e.type == "tool_call" and call_id in e.data for e in events)
        )
    reader.close()
    assert run.tools.calls[call_id].waiting


def manager(answers: MemoryAnswers, runner: Runner, **options: Any) -> RunManager:
    return RunManager(answers, persist_interval=3600, tool_runner=runner, **options)


async def test_an_always_tool_runs_and_the_next_request_carries_call_and_result() -> None:
    answers, runner = MemoryAnswers(), Runner()
    call = ToolCall("call_1", "demo__echo", '{"text": "hi"}')
    provider = Turns(calling(call, text="Let me look. "), answering("It said hi."))
    run = manager(answers, runner).start(spec(offer("echo")), provider)
    events = await finished(run)

    kinds = [kind for kind, _ in events]
    assert kinds == ["run", "delta", "tool_call", "tool_result", "delta", "done"]
    tool_call, tool_result = events[2][1], events[3][1]
    assert tool_call == {
        "id": "call_1",
        "name": "demo__echo",
        "arguments": '{"text": "hi"}',
        "server": "demo",
        "tool": "echo",
        "approval": "always",
        "offset": len("Let me look. "),
    }
    assert tool_result == {"id": "call_1", "content": 'echo says {"text": "hi"}', "is_error": False}
    assert runner.calls == [("demo", "echo", {"text": "hi"}, 60.0)]

    first, second = provider.requests
    assert [t["function"]["name"] for t in first[1].tools] == ["demo__echo"]  # type: ignore[index]
    assert second[0][1:] == [
        ChatMessage("assistant", "Let me look. ", tool_calls=(call,)),
        ChatMessage("tool", 'echo says {"text": "hi"}', tool_call_id="call_1"),
    ]
    saved = answers.final["m"]
    assert saved["content"] == "Let me look. It said hi."
    assert saved["status"] == "complete"
    result = {"content": 'echo says {"text": "hi"}', "is_error": False}
    assert saved["tool_calls"] == [{**tool_call, "decision": None, "result": result}]
    assert events[-1][1]["tool_calls"] == saved["tool_calls"]


async def test_an_asking_tool_waits_for_approval_then_runs() -> None:
    answers, runner = MemoryAnswers(), Runner()
    call = ToolCall("call_a", "demo__echo", '{"text": "x"}')
    runs = manager(answers, runner)
    run = runs.start(spec(offer("echo", "ask")), Turns(calling(call), answering("done")))
    await until_waiting(run, "call_a")
    assert runner.calls == []  # nothing runs before the decision
    with pytest.raises(NotFoundError):
        runs.decide(run.id, "call_unknown", True)
    assert runs.decide(run.id, "call_a", True) == "approved"
    with pytest.raises(ConflictError):  # decided once
        runs.decide(run.id, "call_a", False)
    events = await finished(run)
    kinds = [kind for kind, _ in events]
    assert kinds == ["run", "tool_call", "tool_decision", "tool_result", "delta", "done"]
    assert events[2][1] == {"id": "call_a", "decision": "approved"}
    assert len(runner.calls) == 1
    assert answers.final["m"]["tool_calls"][0]["decision"] == "approved"


async def test_a_denied_call_is_not_run_and_the_model_is_told() -> None:
    answers, runner = MemoryAnswers(), Runner()
    call = ToolCall("call_d", "demo__echo", "{}")
    provider = Turns(calling(call), answering("ok, I will not"))
    runs = manager(answers, runner)
    run = runs.start(spec(offer("echo", "ask")), provider)
    await until_waiting(run, "call_d")
    runs.decide(run.id, "call_d", False)
    events = await finished(run)
    assert runner.calls == []
    assert ("tool_decision", {"id": "call_d", "decision": "denied"}) in events
    assert ("tool_result", {"id": "call_d", "content": DENIED, "is_error": True}) in events
    assert provider.requests[1][0][-1] == ChatMessage("tool", DENIED, tool_call_id="call_d")
    assert answers.final["m"]["status"] == "complete"


async def test_an_approval_that_never_comes_expires() -> None:
    answers, runner = MemoryAnswers(), Runner()
    call = ToolCall("call_e", "demo__echo", "{}")
    runs = manager(answers, runner, tool_approval_timeout=0.05)
    run = runs.start(spec(offer("echo", "ask")), Turns(calling(call), answering("fine")))
    events = await finished(run)
    assert ("tool_decision", {"id": "call_e", "decision": "expired"}) in events
    assert ("tool_result", {"id": "call_e", "content": EXPIRED, "is_error": True}) in events
    assert runner.calls == []


@pytest.mark.parametrize("where", ["waiting", "running"])
async def test_cancel_stops_a_waiting_or_running_call_and_the_run(where: str) -> None:
    answers, runner = MemoryAnswers(), Runner(hold=True)
    call = ToolCall("call_c", "demo__slow", "{}")
    approval = "ask" if where == "waiting" else "always"
    provider = Turns(calling(call), answering("never"))
    runs = manager(answers, runner)
    run = runs.start(spec(offer("slow", approval)), provider)
    if where == "waiting":
        await until_waiting(run, "call_c")
    else:
        with anyio.fail_after(10):
            await runner.started.wait()
    await runs.cancel(run.id)
    if where == "running":
        assert runner.cancelled.is_set()  # the call itself was cancelled, not left running
    assert run.status == "stopped"
    assert len(provider.requests) == 1  # no second request upstream
    saved = answers.final["m"]
    assert saved["status"] == "stopped"
    assert saved["tool_calls"][0]["result"] is None
    events = events_of(await read_all(run.log.reader()))
    assert events[-1] == (
        "done",
        {
            "status": "stopped",
            "finish_reason": "tool_calls",
            "usage": None,
            "tool_calls": saved["tool_calls"],
        },
    )


async def test_a_call_of_no_offered_tool_or_with_bad_arguments_gets_an_error_result() -> None:
    answers, runner = MemoryAnswers(), Runner()
    calls = (
        ToolCall("call_x", "demo__nope", "{}"),
        ToolCall("call_y", "demo__echo", "[1, 2]"),
        ToolCall("call_z", "demo__echo", '{"text": '),
    )
    run = manager(answers, runner).start(
        spec(offer("echo")), Turns(calling(*calls), answering("sorry"))
    )
    events = await finished(run)
    results = {data["id"]: data for kind, data in events if kind == "tool_result"}
    assert set(results) == {"call_x", "call_y", "call_z"}
    assert all(result["is_error"] for result in results.values())
    assert "No tool named 'demo__nope'" in results["call_x"]["content"]
    assert runner.calls == []
    unknown = next(data for kind, data in events if kind == "tool_call" and data["id"] == "call_x")
    assert (unknown["server"], unknown["tool"], unknown["approval"]) == (None, None, None)


async def test_the_step_limit_asks_for_text_and_keeps_further_calls_unmade() -> None:
    answers, runner = MemoryAnswers(), Runner()
    first = ToolCall("call_1", "demo__echo", '{"text": "1"}')
    again = ToolCall("call_2", "demo__echo", '{"text": "2"}')
    provider = Turns(calling(first), calling(again, text="more?"))
    run = manager(answers, runner, max_tool_steps=1).start(spec(offer("echo")), provider)
    events = await finished(run)
    assert len(runner.calls) == 1
    assert provider.requests[0][1].tool_choice is None
    assert provider.requests[1][1].tool_choice == "none"  # the last request: text, please
    saved = answers.final["m"]["tool_calls"]
    assert [c["id"] for c in saved] == ["call_1", "call_2"]
    assert saved[1]["result"] is None
    assert saved[1]["offset"] == len("more?")
    assert [kind for kind, _ in events].count("tool_call") == 1


async def test_calls_in_two_steps_keep_their_order_offsets_and_unique_ids() -> None:
    answers, runner = MemoryAnswers(), Runner()
    step1 = (ToolCall("c", "demo__echo", '{"text": "a"}'), ToolCall("d", "demo__echo", "{}"))
    step2 = (ToolCall("c", "demo__echo", '{"text": "b"}'),)  # a model that reuses an id
    provider = Turns(calling(*step1, text="é😀 "), calling(*step2, text="then "), answering("end"))
    run = manager(answers, runner).start(spec(offer("echo")), provider)
    await finished(run)
    saved = answers.final["m"]
    assert saved["content"] == "é😀 then end"
    ids_offsets = [(c["id"], c["offset"]) for c in saved["tool_calls"]]
    assert ids_offsets == [("c", 3), ("d", 3), ("c~2", 8)]
    third = provider.requests[2][0]
    assert [m.role for m in third] == ["user", "assistant", "tool", "tool", "assistant", "tool"]
    assert third[4] == ChatMessage(
        "assistant", "then ", tool_calls=(ToolCall("c~2", "demo__echo", '{"text": "b"}'),)
    )
    assert third[5].tool_call_id == "c~2"


async def test_without_offers_the_request_carries_no_tools() -> None:
    answers, runner = MemoryAnswers(), Runner()
    provider = Turns(answering("plain"))
    run = manager(answers, runner).start(spec(), provider)
    await finished(run)
    assert provider.requests[0][1].tools == ()
    assert answers.final["m"]["tool_calls"] is None
