"""ssechat.runs.log: the in-memory run log, read from any id, live, in batches."""

from __future__ import annotations

import anyio
import pytest

from ssechat.runs.log import MemoryRunLog, RunLog

pytestmark = pytest.mark.anyio


async def collect(log: MemoryRunLog, after: int = -1) -> bytes:
    return b"".join([batch async for batch in log.follow(after)])


def test_memory_log_implements_the_interface() -> None:
    log: RunLog = MemoryRunLog()
    assert log.last_seq == -1
    assert log.append(b"a") == 0
    assert log.append(b"b") == 1
    assert log.last_seq == 1


async def test_replay_from_any_id_then_end() -> None:
    log = MemoryRunLog()
    for frame in (b"0", b"1", b"2", b"3"):
        log.append(frame)
    log.close()
    assert await collect(log) == b"0123"
    assert await collect(log, after=1) == b"23"
    assert await collect(log, after=3) == b""


async def test_backlog_arrives_as_one_batch() -> None:
    log = MemoryRunLog()
    for i in range(5):
        log.append(str(i).encode())
    log.close()
    assert [batch async for batch in log.follow()] == [b"01234"]


async def test_followers_get_live_frames_without_gap_or_duplicate() -> None:
    log = MemoryRunLog()
    log.append(b"<0>")
    results: dict[int, bytes] = {}

    async def reader(n: int, after: int) -> None:
        results[n] = await collect(log, after)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(reader, 0, -1)
            tg.start_soon(reader, 1, 0)
            for i in range(1, 50):
                log.append(f"<{i}>".encode())
                if i % 7 == 0:
                    await anyio.lowlevel.checkpoint()  # let readers catch up mid-stream
            tg.start_soon(reader, 2, 25)
            await anyio.lowlevel.checkpoint()
            log.close()
    everything = b"".join(f"<{i}>".encode() for i in range(50))
    assert results[0] == everything
    assert results[1] == everything[len(b"<0>") :]
    assert results[2] == b"".join(f"<{i}>".encode() for i in range(26, 50))


async def test_append_after_close_is_refused() -> None:
    log = MemoryRunLog()
    log.close()
    with pytest.raises(RuntimeError):
        log.append(b"x")


async def test_deltas_are_kept_as_text_and_encoded_when_read() -> None:
    from ssechat.runs.log import delta_frame

    log = MemoryRunLog()
    texts = ["Hé", "llo\n", "", "\u2028 🙂", '"q"']
    assert log.append(b"<run>") == 0
    for i, text in enumerate(texts, start=1):
        assert log.append_delta(text) == i
    assert log.append(b"<done>") == len(texts) + 1
    log.close()
    frames = [b"<run>", *(delta_frame(i, t) for i, t in enumerate(texts, start=1)), b"<done>"]
    assert await collect(log) == b"".join(frames)
    for after in range(len(frames)):
        assert await collect(log, after) == b"".join(frames[after + 1 :])


async def test_a_long_backlog_is_taken_in_slices_without_loss() -> None:
    from ssechat.runs import log as log_module

    log = MemoryRunLog()
    count = 3 * log_module._TAKE_FRAMES + 7
    for i in range(count):
        log.append_delta(f" w{i}")
    log.close()
    batches = [batch async for batch in log.follow()]
    assert len(batches) == 4  # never the whole backlog encoded at once
    expected = b"".join(log_module.delta_frame(i, f" w{i}") for i in range(count))
    assert b"".join(batches) == expected
