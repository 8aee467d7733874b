"""Reasoning and tool calls through the runs: the log's ``reasoning`` events (one id sequence
with the deltas, resumable from any id, in both logs), and what the manager keeps and saves."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import anyio
import pytest

from ssechat.providers.base import ChatMessage, Delta, ToolCall, Usage
from ssechat.runs import MemoryRunLog, RunLog, RunManager, RunSpec
from ssechat.runs.log import reasoning_frame
from ssechat.sse import EventDecoder, encode, json_data

from .runlog_support import ListRunLog, MemoryAnswers, ScriptedDeltas, batches, read_all

pytestmark = pytest.mark.anyio

LOGS: list[Callable[[str], RunLog]] = [MemoryRunLog, ListRunLog]

# A run's log as a reasoning model writes it: run, thinking, a read holding the end of the
# thinking and the start of the answer (reasoning first), answer, done.
SCRIPT: list[tuple[str, str]] = [
    ("run", "{}"),
    ("reasoning", "Let me"),
    ("reasoning", " think:\nstep 1 — naïve"),
    ("reasoning", " 🙂 done."),
    ("delta", "The answer"),
    ("reasoning", "(late)"),  # not what providers do, but the log must keep any order
    ("delta", " is 42.\n"),
    ("done", '{"status":"complete"}'),
]


async def write(log: RunLog) -> list[int]:
    ids = []
    for kind, text in SCRIPT:
        if kind == "delta":
            ids.append(await log.append_delta(text))
        elif kind == "reasoning":
            ids.append(await log.append_reasoning(text))
        else:
            ids.append(await log.append(kind, text))
    await log.close()
    return ids


def expected_frame(id: int, kind: str, text: str) -> bytes:
    if kind in ("delta", "reasoning"):
        return encode(json_data({"text": text}), event=kind, id=str(id))
    return encode(text, event=kind, id=str(id))


@pytest.mark.parametrize("factory", LOGS, ids=["memory", "list"])
async def test_reasoning_shares_the_sequence_and_resumes_from_every_id(
    factory: Callable[[str], RunLog],
) -> None:
    log = factory("r")
    ids = await write(log)
    assert ids == sorted(set(ids))  # one increasing sequence across kinds
    assert await log.last_id() == ids[-1]
    frames = [expected_frame(i, kind, text) for i, (kind, text) in zip(ids, SCRIPT, strict=True)]
    assert await read_all(log.reader()) == b"".join(frames)
    for n, after in enumerate(ids):
        # Resuming after any id, reasoning or delta, gives exactly the rest.
        assert await read_all(log.reader(after)) == b"".join(frames[n + 1 :]), after
    assert await log.text() == "The answer is 42.\n"
    assert await log.reasoning() == "Let me think:\nstep 1 — naïve 🙂 done.(late)"


async def test_a_live_reader_gets_reasoning_and_deltas_in_order_without_gap() -> None:
    log = MemoryRunLog()
    reader = log.reader()
    decoder = EventDecoder()
    seen: list[tuple[str, str, str]] = []

    async def follow() -> None:
        async for batch in batches(reader):
            for event in decoder.feed(batch):
                seen.append((event.last_event_id, event.type, event.data))

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(follow)
        for i in range(50):
            await log.append_reasoning(f"r{i} ")
            await asyncio.sleep(0)  # the reader takes some frames one by one, some batched
            await log.append_delta(f"a{i} ")
        await log.close()
    assert [int(id) for id, _, _ in seen] == list(range(100))
    assert [kind for _, kind, _ in seen] == ["reasoning", "delta"] * 50
    assert "".join(json.loads(d)["text"] for _, k, d in seen if k == "reasoning") == "".join(
        f"r{i} " for i in range(50)
    )


async def test_a_long_mixed_backlog_is_taken_in_slices_without_loss() -> None:
    from ssechat.runs import log as log_module

    log = MemoryRunLog()
    count = 2 * log_module._TAKE_FRAMES + 3
    expected = []
    for i in range(count):
        if i % 3:
            expected.append(reasoning_frame(await log.append_reasoning(f"t{i}"), f"t{i}"))
        else:
            expected.append(
                expected_frame(await log.append_delta(f"w{i}"), "delta", f"w{i}"),
            )
    await log.close()
    for after in (-1, 5, log_module._TAKE_FRAMES + 1):
        taken = [batch async for batch in batches(log.reader(after))]
        assert len(taken) > 1  # never the whole backlog encoded at once
        assert b"".join(taken) == b"".join(expected[after + 1 :])


async def test_text_size_grows_with_reasoning_so_the_saver_sees_it() -> None:
    log = MemoryRunLog()
    await log.append_reasoning("thinking")
    assert log.text_size == len("thinking")
    await log.append_delta("é")
    assert log.text_size == len("thinking") + 2


@pytest.mark.parametrize("text", ["plain", "line\nbreak\r\n", '\u2028 🙂 "q" \\', ""])
def test_the_fast_reasoning_frame_is_the_generic_encoding(text: str) -> None:
    assert reasoning_frame(7, text) == encode(json_data({"text": text}), event="reasoning", id="7")


# --- the manager ------------------------------------------------------------------------------


def spec() -> RunSpec:
    return RunSpec(
        conversation_id="c",
        user_message_id="u",
        message_id="m",
        model="scripted",
        messages=[ChatMessage("user", "go")],
    )


def events_of(body: bytes) -> list[tuple[str, dict[str, object]]]:
    decoder = EventDecoder()
    return [(e.type, json.loads(e.data)) for e in [*decoder.feed(body), *decoder.close()]]


@pytest.mark.parametrize("factory", LOGS, ids=["memory", "list"])
async def test_a_run_logs_reasoning_before_its_answer_and_saves_both(
    factory: Callable[[str], RunLog],
) -> None:
    answers = MemoryAnswers()
    reasoned = asyncio.Event()
    go_on = asyncio.Event()

    async def pause() -> None:
        reasoned.set()
        await go_on.wait()

    usage = Usage(5, 20, 25, reasoning_tokens=12)
    provider = ScriptedDeltas(
        Delta(reasoning="Think"),
        Delta(reasoning="ing…"),
        pause,
        # One read that ends the thinking and begins the answer: reasoning goes first.
        Delta(text="Hello", reasoning=" done."),
        Delta(text=" world", finish_reason="stop"),
        Delta(usage=usage),
    )
    manager = RunManager(answers, persist_interval=3600, log_factory=factory)
    run = manager.start(spec(), provider)
    with anyio.fail_after(10):
        await reasoned.wait()
    # Mid-reasoning: the run has the thinking so far and no answer yet.
    assert await run.reasoning() == "Thinking…"
    assert await run.text() == ""
    go_on.set()
    with anyio.fail_after(10):
        await run.finished.wait()
        body = await read_all(run.log.reader())

    events = events_of(body)
    assert [kind for kind, _ in events] == [
        "run",
        "reasoning",
        "reasoning",
        "reasoning",
        "delta",
        "delta",
        "done",
    ]
    done = events[-1][1]
    assert done["usage"] == {**usage.as_dict(), "reasoning_tokens": 12}
    assert "tool_calls" not in done  # only when the model asked for tools
    saved = answers.final["m"]
    assert saved["content"] == "Hello world"
    assert saved["reasoning"] == "Thinking… done."
    assert saved["usage"]["reasoning_tokens"] == 12
    seconds = saved["reasoning_seconds"]
    assert isinstance(seconds, float)
    assert seconds == run.reasoning_seconds
    assert run.reasoning_started is not None
    assert run.reasoning_ended is not None
    assert seconds == run.reasoning_ended - run.reasoning_started
    assert saved["tool_calls"] is None


async def test_a_plain_run_saves_no_reasoning() -> None:
    answers = MemoryAnswers()
    manager = RunManager(answers, persist_interval=3600)
    run = manager.start(spec(), ScriptedDeltas(Delta(text="hi"), Delta(finish_reason="stop")))
    with anyio.fail_after(10):
        await run.finished.wait()
    saved = answers.final["m"]
    assert (saved["content"], saved["reasoning"], saved["reasoning_seconds"]) == ("hi", None, None)
    assert run.reasoning_seconds is None


async def test_tool_calls_are_kept_saved_and_sent_in_done() -> None:
    answers = MemoryAnswers()
    calls = (
        ToolCall("call_1", "get_weather", '{"city": "Paris"}'),
        ToolCall("call_2", "get_time", "{}"),
    )
    provider = ScriptedDeltas(
        Delta(reasoning="I need tools."), Delta(finish_reason="tool_calls", tool_calls=calls)
    )
    manager = RunManager(answers, persist_interval=3600)
    run = manager.start(spec(), provider)
    with anyio.fail_after(10):
        await run.finished.wait()
        body = await read_all(run.log.reader())
    done = events_of(body)[-1]
    assert done[0] == "done"
    # Not offered tools, the run makes none of them: each is kept as asked for, with no result.
    unmade = {"server": None, "tool": None, "approval": None, "decision": None, "result": None}
    expected = [{**call.as_dict(), **unmade, "offset": 0} for call in calls]
    assert done[1]["tool_calls"] == expected
    assert done[1]["finish_reason"] == "tool_calls"
    saved = answers.final["m"]
    assert saved["tool_calls"] == expected
    assert saved["content"] == ""
    assert saved["reasoning"] == "I need tools."


async def test_the_periodic_save_carries_the_reasoning_so_far() -> None:
    answers = MemoryAnswers()
    go_on = asyncio.Event()
    provider = ScriptedDeltas(Delta(reasoning="half a thought"), go_on.wait, Delta(text="x"))
    manager = RunManager(answers, persist_interval=0.01)
    run = manager.start(spec(), provider)
    with anyio.fail_after(10):
        while not any(saved.get("m") == "half a thought" for saved in answers.partial_reasoning):
            await answers.changed.wait()
    # The content saved with it is the answer so far: nothing yet.
    assert answers.partial[-1] == {"m": ""}
    go_on.set()
    with anyio.fail_after(10):
        await run.finished.wait()
    assert answers.final["m"]["reasoning"] == "half a thought"
