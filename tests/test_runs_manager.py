"""ssechat.runs.manager against a real store and the fake upstream: batched saving, states."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest

from ssechat.fake_upstream import FakeUpstream, Scenario
from ssechat.fake_upstream.wire import generated_tokens
from ssechat.providers.base import ChatMessage, GenerationParams
from ssechat.providers.openai import OpenAIProvider
from ssechat.runs import RunManager, RunSpec
from ssechat.store import SQLStore, Store

from .runlog_support import batches
from .store_support import OWNER

pytestmark = pytest.mark.anyio


class CountingStore(SQLStore):
    """The real store, counting the saves a run makes."""

    saves: list[dict[str, Any]]
    batches: list[dict[str, str]]

    async def update_message(self, id: str, **fields: Any) -> None:
        self.saves.append(fields)
        await super().update_message(id, **fields)

    async def save_partial_answers(
        self, contents: Mapping[str, str], reasoning: Mapping[str, str] | None = None
    ) -> None:
        self.batches.append(dict(contents))
        self.saves.extend({"content": text} for text in contents.values())
        await super().save_partial_answers(contents, reasoning)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[CountingStore]:
    store = await CountingStore.open(tmp_path / "runs.db")
    assert isinstance(store, CountingStore)
    store.saves = []
    store.batches = []
    try:
        yield store
    finally:
        await store.close()


async def start(store: Store, upstream: FakeUpstream, manager: RunManager) -> Any:
    conversation = await store.create_conversation(model="m", owner=OWNER)
    exchange = await store.start_exchange(
        conversation.id, owner=OWNER, user_content="go", model="m"
    )
    user, answer = exchange.user, exchange.answer
    provider = OpenAIProvider(base_url=upstream.base_url, max_retries=0)
    spec = RunSpec(
        conversation_id=conversation.id,
        user_message_id=user.id,
        message_id=answer.id,
        model="m",
        messages=[ChatMessage("user", "go")],
        params=GenerationParams(),
    )
    return manager.start(spec, provider), provider, answer.id


async def test_a_fast_run_is_saved_once_at_the_end_not_per_token(store: CountingStore) -> None:
    async with FakeUpstream(Scenario(tokens=500)) as upstream:
        manager = RunManager(store, persist_interval=60)
        run, provider, message_id = await start(store, upstream, manager)
        await run.finished.wait()
        await provider.aclose()
    assert run.status == "complete"
    assert await run.text() == "".join(generated_tokens(500))
    assert len(store.saves) == 1
    assert store.saves[0]["status"] == "complete"
    saved = await store.get_message(message_id, owner=OWNER)
    assert saved.content == await run.text()
    assert saved.usage == {"prompt_tokens": 1, "completion_tokens": 500, "total_tokens": 501}


async def test_a_slow_run_is_saved_in_batches(store: CountingStore) -> None:
    async with FakeUpstream(Scenario(tokens=60, rate=200)) as upstream:
        manager = RunManager(store, persist_interval=0.05)
        run, provider, message_id = await start(store, upstream, manager)
        await run.finished.wait()
        await provider.aclose()
    partial = [s for s in store.saves if "status" not in s]
    assert partial, "a growing answer was never saved before the end"
    assert len(store.saves) < 60 / 2  # batches, never one save per token
    contents = [s["content"] for s in store.saves]
    text = await run.text()
    assert all(text.startswith(c) for c in contents)
    assert contents == sorted(contents, key=len)
    assert (await store.get_message(message_id, owner=OWNER)).content == text


async def test_shutdown_stops_live_runs_as_interrupted(store: CountingStore) -> None:
    async with FakeUpstream(Scenario(tokens=10_000, rate=50)) as upstream:
        manager = RunManager(store)
        run, provider, message_id = await start(store, upstream, manager)
        async for _ in batches(run.log.reader(0)):  # the first delta
            break
        await manager.shutdown()
        await provider.aclose()
    assert run.status == "interrupted"
    saved = await store.get_message(message_id, owner=OWNER)
    assert saved.status == "interrupted"
    assert saved.content == await run.text()
    assert saved.content
    rest = run.log.reader(await run.log.last_id() - 1)
    assert b'"status":"interrupted"' in rest.take()
    assert rest.ended  # the log is closed


@pytest.mark.parametrize("how", ["cancel", "shutdown"])
async def test_a_run_stopped_before_its_task_began_is_still_finished(
    store: CountingStore, how: str
) -> None:
    # No await between start and the stop: the run's task has not taken a step.
    async with FakeUpstream(Scenario(tokens=10)) as upstream:
        manager = RunManager(store)
        conversation = await store.create_conversation(model="m", owner=OWNER)
        exchange = await store.start_exchange(
            conversation.id, owner=OWNER, user_content="go", model="m"
        )
        provider = OpenAIProvider(base_url=upstream.base_url, max_retries=0)
        spec = RunSpec(
            conversation_id=conversation.id,
            user_message_id=exchange.user.id,
            message_id=exchange.answer.id,
            model="m",
            messages=[ChatMessage("user", "go")],
        )
        run = manager.start(spec, provider)
        with anyio.fail_after(10):  # a hang here is the bug
            if how == "cancel":
                await manager.cancel(run.id)
            else:
                await manager.shutdown()
        await provider.aclose()
    expected = "stopped" if how == "cancel" else "interrupted"
    assert run.status == expected
    assert (await store.get_message(exchange.answer.id, owner=OWNER)).status == expected
    assert upstream.requests == []  # it never reached the upstream
    frames = run.log.reader().take()
    assert f'"status":"{expected}"'.encode() in frames  # a done event ends the log
    reader = run.log.reader()
    reader.take()
    assert reader.ended


async def test_live_runs_are_saved_together_in_one_write_per_tick(store: CountingStore) -> None:
    async with FakeUpstream(Scenario(tokens=40, rate=100)) as upstream:
        manager = RunManager(store, persist_interval=0.05)
        first, provider_a, id_a = await start(store, upstream, manager)
        second, provider_b, id_b = await start(store, upstream, manager)
        await first.finished.wait()
        await second.finished.wait()
        await provider_a.aclose()
        await provider_b.aclose()
    assert any(set(batch) == {id_a, id_b} for batch in store.batches), store.batches
    finals = {id_a: await first.text(), id_b: await second.text()}
    for batch in store.batches:  # each text saved is a prefix of the final one
        for message_id, text in batch.items():
            assert finals[message_id].startswith(text)
    for message_id in (id_a, id_b):
        saved = await store.get_message(message_id, owner=OWNER)
        assert (saved.status, saved.content) == ("complete", finals[message_id])


async def test_the_saver_stops_when_no_run_is_live_and_restarts(store: CountingStore) -> None:
    async with FakeUpstream(Scenario(tokens=30, rate=200)) as upstream:
        manager = RunManager(store, persist_interval=0.02)
        run, provider, _ = await start(store, upstream, manager)
        saver = manager._saver
        assert saver is not None
        await run.finished.wait()
        await saver  # it ends by itself once no run is live
        assert manager._saver is None
        again, provider_again, _ = await start(store, upstream, manager)
        assert manager._saver is not None
        assert manager._saver is not saver
        await again.finished.wait()
        await provider.aclose()
        await provider_again.aclose()
    await manager.shutdown()


async def test_the_text_is_the_logs_and_knows_what_is_unsaved() -> None:
    from ssechat.runs.log import MemoryRunLog
    from ssechat.runs.manager import Run

    spec = RunSpec("c", "u", "m", "model", [ChatMessage("user", "hi")])
    run = Run("r", spec, MemoryRunLog("r"))
    for text in ("a", "b", "c"):
        await run.log.append_delta(text)
    assert run.unsaved
    assert await run.text() == "abc"
    run.saved_size = run.log.text_size
    assert not run.unsaved
    await run.log.append_delta("d")
    assert run.unsaved
    assert await run.text() == "abcd"
