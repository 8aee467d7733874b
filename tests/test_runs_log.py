"""ssechat.runs.log: the in-memory run log, read from any id, live, in batches."""

from __future__ import annotations

import json

import anyio
import pytest

from ssechat.runs.log import MemoryRunLog, RunLog, delta_frame
from ssechat.sse import encode, json_data

from .runlog_support import batches, read_all

pytestmark = pytest.mark.anyio


async def collect(log: MemoryRunLog, after: int = -1) -> bytes:
    return await read_all(log.reader(after))


def frame(i: int) -> bytes:
    """What ``append("e", str(i))`` stores as the event with id ``i``."""
    return encode(str(i), event="e", id=str(i))


async def test_memory_log_implements_the_interface_and_numbers_from_zero() -> None:
    log: RunLog = MemoryRunLog("r1")
    assert await log.last_id() == -1
    assert await log.append("run", json_data({"run_id": "r1"})) == 0
    assert await log.append_delta("hi") == 1
    assert await log.append("done", "{}") == 2
    assert await log.last_id() == 2
    assert await log.text() == "hi"
    await log.close()
    events = await read_all(log.reader())
    assert events.startswith(b'id: 0\nevent: run\ndata: {"run_id":"r1"}\n\n')
    assert events.endswith(b"id: 2\nevent: done\ndata: {}\n\n")


async def test_the_log_encodes_each_event_with_the_id_it_assigns() -> None:
    log = MemoryRunLog()
    data = json_data({"code": "x", "message": "two\nlines"})
    for i in range(3):
        assert await log.append("error", data) == i
    await log.close()
    assert await collect(log) == b"".join(encode(data, event="error", id=str(i)) for i in range(3))


async def test_replay_from_any_id_then_end() -> None:
    log = MemoryRunLog()
    for i in range(4):
        await log.append("e", str(i))
    await log.close()
    everything = b"".join(frame(i) for i in range(4))
    assert await collect(log) == everything
    assert await collect(log, after=1) == frame(2) + frame(3)
    assert await collect(log, after=3) == b""


async def test_backlog_arrives_as_one_batch() -> None:
    log = MemoryRunLog()
    for i in range(5):
        await log.append("e", str(i))
    await log.close()
    assert [batch async for batch in batches(log.reader())] == [
        b"".join(frame(i) for i in range(5))
    ]


async def test_followers_get_live_frames_without_gap_or_duplicate() -> None:
    log = MemoryRunLog()
    await log.append("e", "0")
    results: dict[int, bytes] = {}

    async def reader(n: int, after: int) -> None:
        results[n] = await collect(log, after)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(reader, 0, -1)
            tg.start_soon(reader, 1, 0)
            for i in range(1, 50):
                await log.append("e", str(i))
                if i % 7 == 0:
                    await anyio.lowlevel.checkpoint()  # let readers catch up mid-stream
            tg.start_soon(reader, 2, 25)
            await anyio.lowlevel.checkpoint()
            await log.close()
    assert results[0] == b"".join(frame(i) for i in range(50))
    assert results[1] == b"".join(frame(i) for i in range(1, 50))
    assert results[2] == b"".join(frame(i) for i in range(26, 50))


async def test_append_after_close_is_refused() -> None:
    log = MemoryRunLog()
    await log.close()
    with pytest.raises(RuntimeError):
        await log.append("e", "x")
    with pytest.raises(RuntimeError):
        await log.append_delta("x")


async def test_deltas_are_kept_as_text_and_encoded_when_read() -> None:
    log = MemoryRunLog()
    texts = ["Hé", "llo\n", "", "\u2028 🙂", '"q"']
    assert await log.append("run", "{}") == 0
    for i, text in enumerate(texts, start=1):
        assert await log.append_delta(text) == i
    assert await log.append("done", "{}") == len(texts) + 1
    await log.close()
    frames = [
        encode("{}", event="run", id="0"),
        *(delta_frame(i, t) for i, t in enumerate(texts, start=1)),
        encode("{}", event="done", id=str(len(texts) + 1)),
    ]
    assert await collect(log) == b"".join(frames)
    for after in range(len(frames)):
        assert await collect(log, after) == b"".join(frames[after + 1 :])
    assert await log.text() == "".join(texts)
    assert log.text_size == len("".join(texts).encode())


async def test_a_long_backlog_is_taken_in_slices_without_loss() -> None:
    from ssechat.runs import log as log_module

    log = MemoryRunLog()
    count = 3 * log_module._TAKE_FRAMES + 7
    for i in range(count):
        await log.append_delta(f" w{i}")
    await log.close()
    taken = [batch async for batch in batches(log.reader())]
    assert len(taken) == 4  # never the whole backlog encoded at once
    expected = b"".join(delta_frame(i, f" w{i}") for i in range(count))
    assert b"".join(taken) == expected


@pytest.mark.parametrize(
    "text",
    ["plain", " naïve 20 °C", "line\nbreak\r\n", '"quoted" \\ back', "\u2028\u2029", "🙂", ""],
)
def test_the_fast_delta_frame_is_the_generic_encoding(text: str) -> None:
    assert delta_frame(41, text) == encode(json_data({"text": text}), event="delta", id="41")
    assert delta_frame(41, text).isascii()
    assert json.loads(delta_frame(41, text).split(b"data: ", 1)[1]) == {"text": text}
