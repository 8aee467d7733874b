"""ssechat.runs.manager against a real store and the fake upstream: batched saving, states."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from ssechat.fake_upstream import FakeUpstream, Scenario
from ssechat.fake_upstream.wire import generated_tokens
from ssechat.providers.base import ChatMessage, GenerationParams
from ssechat.providers.openai import OpenAIProvider
from ssechat.runs import RunManager, RunSpec
from ssechat.store import Store

pytestmark = pytest.mark.anyio


class CountingStore(Store):
    """The real store, counting the saves a run makes."""

    saves: list[dict[str, Any]]
    batches: list[dict[str, str]]

    async def update_message(self, id: str, **fields: Any) -> None:
        self.saves.append(fields)
        await super().update_message(id, **fields)

    async def save_partial_answers(self, contents: Mapping[str, str]) -> None:
        self.batches.append(dict(contents))
        self.saves.extend({"content": text} for text in contents.values())
        await super().save_partial_answers(contents)


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
    conversation = await store.create_conversation(model="m")
    user, answer = await store.add_exchange(
        conversation.id, parent_id=None, user_content="go", model="m"
    )
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
    assert run.text == "".join(generated_tokens(500))
    assert len(store.saves) == 1
    assert store.saves[0]["status"] == "complete"
    saved = await store.get_message(message_id)
    assert saved.content == run.text
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
    assert all(run.text.startswith(c) for c in contents)
    assert contents == sorted(contents, key=len)
    assert (await store.get_message(message_id)).content == run.text


async def test_shutdown_stops_live_runs_as_interrupted(store: CountingStore) -> None:
    async with FakeUpstream(Scenario(tokens=10_000, rate=50)) as upstream:
        manager = RunManager(store)
        run, provider, message_id = await start(store, upstream, manager)
        async for _ in run.log.follow(0):  # the first delta
            break
        await manager.shutdown()
        await provider.aclose()
    assert run.status == "interrupted"
    saved = await store.get_message(message_id)
    assert saved.status == "interrupted"
    assert saved.content == run.text
    assert run.log.closed


@pytest.mark.parametrize(
    "text",
    ["plain", " naïve 20 °C", "line\nbreak\r\n", '"quoted" \\ back', "\u2028\u2029", "🙂", ""],
)
def test_the_fast_delta_frame_is_the_generic_encoding(text: str) -> None:
    from ssechat.runs.manager import delta_frame
    from ssechat.sse import encode, json_data

    assert delta_frame(41, text) == encode(json_data({"text": text}), event="delta", id="41")
    assert delta_frame(41, text).isascii()


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
    for batch in store.batches:  # each text saved is a prefix of the final one
        for message_id, text in batch.items():
            final = first.text if message_id == id_a else second.text
            assert final.startswith(text)
    for message_id, run in ((id_a, first), (id_b, second)):
        saved = await store.get_message(message_id)
        assert (saved.status, saved.content) == ("complete", run.text)


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


def test_the_text_is_the_logs_and_knows_what_is_unsaved() -> None:
    from ssechat.runs.log import MemoryRunLog
    from ssechat.runs.manager import Run

    spec = RunSpec("c", "u", "m", "model", [ChatMessage("user", "hi")])
    run = Run(spec, MemoryRunLog())
    for text in ("a", "b", "c"):
        run.log.append_delta(text)
    assert run.unsaved
    assert run.text == "abc"
    run.saved_size = run.log.text_size
    assert not run.unsaved
    run.log.append_delta("d")
    assert run.unsaved
    assert run.text == "abcd"
