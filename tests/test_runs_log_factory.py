"""The run manager through its log factory, with a second ``RunLog`` (``ListRunLog``).

Its ids are 1000, 1007, 1014…, its async methods suspend, and its readers are fed by pushes:
these tests fail if the manager builds a ``MemoryRunLog`` itself, predicts an id, encodes a
frame the log did not, or reads the text anywhere but from the log.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import anyio
import pytest

from ssechat.errors import ProviderStatusError, error_data
from ssechat.providers.base import ChatMessage
from ssechat.runs import Run, RunManager, RunSpec
from ssechat.sse import Event, EventDecoder

from .runlog_support import (
    ListLogFactory,
    ListRunLog,
    MemoryAnswers,
    ScriptedProvider,
    read_all,
    read_until,
)

pytestmark = pytest.mark.anyio

SPEC = RunSpec("c1", "u1", "a1", "scripted", [ChatMessage("user", "hi")])
USAGE = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}


@dataclass
class Setup:
    manager: RunManager
    factory: ListLogFactory
    answers: MemoryAnswers
    provider: ScriptedProvider
    run: Run

    @property
    def log(self) -> ListRunLog:
        return self.factory.logs[self.run.id]


@pytest.fixture
async def setup() -> AsyncIterator[Setup]:
    factory, answers, provider = ListLogFactory(), MemoryAnswers(), ScriptedProvider()
    manager = RunManager(answers, log_factory=factory, persist_interval=0.01)
    run = manager.start(SPEC, provider)
    try:
        yield Setup(manager, factory, answers, provider, run)
    finally:
        await manager.shutdown()


def decode(raw: bytes) -> list[Event]:
    return list(EventDecoder().feed(raw))


def ids(events: list[Event]) -> list[int]:
    return [int(event.last_event_id) for event in events]


def deltas(count: int) -> Callable[[list[Event]], bool]:
    """Read until ``count`` deltas have come."""
    return lambda events: sum(e.type == "delta" for e in events) >= count


async def test_a_run_is_written_through_the_log_its_factory_made(setup: Setup) -> None:
    with anyio.fail_after(10):
        run, log = setup.run, setup.log
        assert setup.factory.logs == {run.id: log}  # made for this run, by its id
        assert run.log is log
        setup.provider.feed("Hel", "lo", " wörld\n", None)
        wire = await read_all(setup.manager.subscribe(run))
        await run.finished.wait()

        # Every byte after retry is a frame the log encoded, with the ids the log assigned.
        assert wire == setup.manager.retry_frame + b"".join(frame for _, frame in log.frames)
        events = decode(wire)
        assert [e.type for e in events] == ["run", "delta", "delta", "delta", "done"]
        assert ids(events) == [1000, 1007, 1014, 1021, 1028]
        assert json.loads(events[0].data) == {
            "run_id": run.id,
            "conversation_id": "c1",
            "user_message_id": "u1",
            "message_id": "a1",
            "model": "scripted",
        }
        assert [json.loads(e.data)["text"] for e in events[1:4]] == ["Hel", "lo", " wörld\n"]
        assert json.loads(events[-1].data) == {
            "status": "complete",
            "finish_reason": "stop",
            "usage": USAGE,
        }
        assert log.closed

        # The text, the state and the saved answer are read from the log.
        assert await run.text() == "Hello wörld\n"
        state = await run.as_dict()
        assert (state["status"], state["text"], state["last_event_id"]) == (
            "complete",
            "Hello wörld\n",
            1028,
        )
        final = setup.answers.final["a1"]
        assert (final["content"], final["status"], final["usage"]) == (
            "Hello wörld\n",
            "complete",
            USAGE,
        )


async def test_a_client_resumes_from_a_middle_id_without_gap_or_duplicate(setup: Setup) -> None:
    with anyio.fail_after(10):
        manager, run, provider = setup.manager, setup.run, setup.provider
        provider.feed("a", "b", "c")
        first = manager.subscribe(run)
        seen, _ = await read_until(first, deltas(3))
        first.close()  # the client drops off…
        middle = ids(seen)[2]  # …having applied the events up to the second delta
        provider.feed("d", "e", None)
        resumed = decode(await read_all(manager.subscribe(run, after=middle)))
        await run.finished.wait()

        applied = [e for e in seen if int(e.last_event_id) <= middle] + resumed
        every = decode(b"".join(frame for _, frame in setup.log.frames))
        assert applied == every  # in order, nothing missing, nothing twice
        assert ids(applied) == [1000 + 7 * i for i in range(len(every))]
        assert "".join(json.loads(e.data)["text"] for e in applied if e.type == "delta") == "abcde"
        assert await run.text() == "abcde"


async def test_cancel_ends_the_log_with_ids_from_the_log_and_saves_the_text(
    setup: Setup,
) -> None:
    with anyio.fail_after(10):
        manager, run, provider = setup.manager, setup.run, setup.provider
        provider.feed("one ", "two ")
        follower = manager.subscribe(run)
        seen, _ = await read_until(follower, deltas(2))
        stopped = await manager.cancel(run.id)
        rest = decode(await read_all(follower))

        assert stopped is run
        assert run.status == "stopped"
        assert provider.closed.is_set()  # the upstream stream was closed
        events = seen + rest
        assert [e.type for e in events] == ["run", "delta", "delta", "done"]
        assert ids(events) == [1000, 1007, 1014, 1021]
        done = {"status": "stopped", "finish_reason": None, "usage": None}
        assert json.loads(events[-1].data) == done
        assert await run.text() == "one two "
        final = setup.answers.final["a1"]
        assert (final["content"], final["status"]) == ("one two ", "stopped")
        assert (await run.as_dict())["last_event_id"] == 1021


async def test_an_error_event_is_appended_by_the_log_then_done(setup: Setup) -> None:
    with anyio.fail_after(10):
        failure = ProviderStatusError("upstream said 503", status=503)
        setup.provider.feed("partial", failure)
        events = decode(await read_all(setup.manager.subscribe(setup.run)))
        await setup.run.finished.wait()

        assert [e.type for e in events] == ["run", "delta", "error", "done"]
        assert ids(events) == [1000, 1007, 1014, 1021]
        assert json.loads(events[2].data) == error_data(failure)
        assert json.loads(events[3].data)["status"] == "error"
        final = setup.answers.final["a1"]
        assert (final["content"], final["status"], final["error"]) == (
            "partial",
            "error",
            "upstream said 503",
        )


async def test_the_saver_saves_the_text_it_reads_from_the_log(setup: Setup) -> None:
    with anyio.fail_after(10):
        setup.provider.feed("x", "y")
        await read_until(setup.manager.subscribe(setup.run), deltas(2))
        answers = setup.answers
        while not answers.partial or answers.partial[-1].get("a1") != "xy":
            await answers.changed.wait()
        assert all("xy".startswith(batch["a1"]) for batch in answers.partial)
        assert setup.run.live


async def test_shutdown_interrupts_a_run_through_its_log(setup: Setup) -> None:
    with anyio.fail_after(10):
        setup.provider.feed("half")
        follower = setup.manager.subscribe(setup.run)
        seen, _ = await read_until(follower, deltas(1))
        await setup.manager.shutdown()
        events = seen + decode(await read_all(follower))
        assert [e.type for e in events] == ["run", "delta", "done"]
        assert ids(events) == [1000, 1007, 1014]
        assert json.loads(events[-1].data)["status"] == "interrupted"
        assert setup.answers.final["a1"]["content"] == "half"
