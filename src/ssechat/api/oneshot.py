"""``/api/chat``'s stateless answers as frames, and the hold on a live-run place they keep.

``one_shot_frames`` streams a provider's answer as the tutorial's clients read it (``data:
<text>`` per piece, an ``error`` event on failure, ``data: [DONE]``); ``Held`` gives the place
back when the iterator ends or is closed. Nothing here touches the store or the runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import aclosing

from ssechat.errors import SSEChatError, error_data
from ssechat.providers.base import ChatMessage, GenerationParams, Provider
from ssechat.sse import encode, json_data

__all__ = ["Held", "one_shot_frames"]


class Held:
    """An async iterator that calls ``release`` once when it ends or is closed, even if it was
    never iterated (an async generator's ``finally`` would not run then)."""

    __slots__ = ("_inner", "_release")

    def __init__(self, inner: AsyncIterator[bytes], release: Callable[[], None]) -> None:
        self._inner = inner
        self._release: Callable[[], None] | None = release

    def __aiter__(self) -> Held:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self._inner.__anext__()
        except BaseException:
            self._done()
            raise

    async def aclose(self) -> None:
        try:
            aclose = getattr(self._inner, "aclose", None)
            if aclose is not None:
                await aclose()
        finally:
            self._done()

    def _done(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()


_DONE = encode("[DONE]")


async def one_shot_frames(
    provider: Provider, messages: Sequence[ChatMessage], model: str, *, reasoning: bool
) -> AsyncIterator[bytes]:
    try:
        stream = provider.stream(messages, model, GenerationParams())
        async with aclosing(stream):  # a client that leaves closes the upstream request
            async for delta in stream:
                # The thinking first: a read may end it and begin the answer. Without
                # ?reasoning, the tutorial's clients see only the answer, as before.
                if reasoning and delta.reasoning:
                    yield encode(delta.reasoning, event="reasoning")
                if delta.text:
                    yield encode(delta.text)
    except SSEChatError as exc:
        yield encode(json_data(error_data(exc)), event="error")
    yield _DONE
