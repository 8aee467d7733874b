"""How many imports run at once: one per user, ``MAX_IMPORTS_AT_ONCE`` per process (each holds a
worker thread and a spool file of up to 100 MB); beyond, a 429 saying why, before a byte of the
body is read. A place is given back when its import ends, however it ends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from ssechat.api.transfer_service import MAX_IMPORTS_AT_ONCE, TransferService
from ssechat.config import Settings
from ssechat.errors import InvalidRequestError, RateLimitedError
from ssechat.store import open_store

from .api_support import api_client

pytestmark = pytest.mark.anyio

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "chat-exports"
FILE = (FIXTURES / "chatgpt-librechat-tree.json").read_bytes()  # one conversation


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=str(tmp_path / "chat.db"),
        demo_tokens_per_second=0,
        web_dir=str(tmp_path / "no-web"),
        auth="off",
        allowed_hosts="test",
    )


class Upload:
    """A body that arrives in two halves, the second only once released: an import held under
    way (anyio events, never sleeps)."""

    def __init__(self, body: bytes = FILE) -> None:
        self.body = body
        self.started = anyio.Event()
        self.released = anyio.Event()
        self.read = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        half = len(self.body) // 2
        self.started.set()
        self.read += half
        yield self.body[:half]
        await self.released.wait()
        self.read += len(self.body) - half
        yield self.body[half:]


async def _chunks(body: bytes) -> AsyncIterator[bytes]:
    yield body


async def test_one_import_per_user_and_two_per_process(settings: Settings) -> None:
    assert MAX_IMPORTS_AT_ONCE == 2  # the numbers this test walks through
    async with await open_store(settings.database_url) as store:
        service = TransferService(settings, store)
        results: dict[str, dict[str, Any]] = {}
        uploads = {"alice": Upload(), "bob": Upload()}

        async def run(owner: str) -> None:
            results[owner] = await service.import_stream(uploads[owner], owner=owner)

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(run, "alice")
                await uploads["alice"].started.wait()
                # Alice's second import: refused before any of it is read.
                again = Upload()
                with pytest.raises(RateLimitedError, match="an import of yours") as refused:
                    await service.import_stream(again, owner="alice")
                assert refused.value.retry_after > 0
                assert again.read == 0
                tasks.start_soon(run, "bob")
                await uploads["bob"].started.wait()
                # Two under way: a third user's waits for one of them.
                with pytest.raises(RateLimitedError, match="busy importing"):
                    await service.import_stream(Upload(), owner="carol")
                for upload in uploads.values():
                    upload.released.set()
            assert {owner: r["imported"] for owner, r in results.items()} == {"alice": 1, "bob": 1}
            # Their places are given back: carol's goes through, alice's own again (skipped),
            # and a refused file gives its place back too.
            assert (await service.import_stream(_chunks(FILE), owner="carol"))["imported"] == 1
            with pytest.raises(InvalidRequestError):
                await service.import_stream(_chunks(FILE[:-5]), owner="alice")
            again_result = await service.import_stream(_chunks(FILE), owner="alice")
            assert (again_result["imported"], again_result["skipped"]) == (0, 1)


async def test_a_second_import_of_the_same_user_is_429_over_http(settings: Settings) -> None:
    async with api_client(settings) as client:
        held = Upload()
        answers: list[httpx.Response] = []

        async def first() -> None:
            answers.append(await client.post("/api/import", content=held))

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(first)
                await held.started.wait()
                refused = await client.post("/api/import", content=FILE)
                held.released.set()
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "rate_limited"
        assert "an import of yours" in refused.json()["error"]["message"]
        assert int(refused.headers["Retry-After"]) >= 1
        (done,) = answers
        assert done.status_code == 200, done.text
        assert done.json()["imported"] == 1
