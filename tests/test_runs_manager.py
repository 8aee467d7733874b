"""ssechat.runs.manager against a real store and the fake upstream: batched saving, states."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ssechat.fake_upstream import FakeUpstream, Scenario
from ssechat.providers.base import ChatMessage, GenerationParams
from ssechat.providers.openai import OpenAIProvider
from ssechat.runs import RunManager, RunSpec
from ssechat.store import Store

pytestmark = pytest.mark.anyio


class CountingStore(Store):
    """The real store, counting the saves a run makes."""

    saves: list[dict[str, Any]]

    async def update_message(self, id: str, **fields: Any) -> None:
        self.saves.append(fields)
        await super().update_message(id, **fields)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[CountingStore]:
    store = await CountingStore.open(tmp_path / "runs.db")
    assert isinstance(store, CountingStore)
    store.saves = []
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
    assert len(run.parts) == 500
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
