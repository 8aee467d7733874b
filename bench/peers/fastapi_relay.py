"""A benchmark peer: the minimal relay written the way the Python docs and tutorials show it.

FastAPI, sse-starlette's ``EventSourceResponse`` and the openai SDK's ``AsyncOpenAI`` stream,
one ``data: <content>`` event per chunk and ``data: [DONE]`` at the end. It runs in its own
virtualenv (``bench/.venv-peers``), never in the project's::

    OPENAI_BASE_URL=http://127.0.0.1:UP/v1 bench/.venv-peers/bin/python \
        bench/peers/fastapi_relay.py --port P

It is deliberately not tuned: it is the reference a reader would write first.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator

import uvicorn
from fastapi import FastAPI
from openai import AsyncOpenAI  # type: ignore[import-not-found,unused-ignore]
from sse_starlette.sse import EventSourceResponse  # type: ignore[import-not-found,unused-ignore]

app = FastAPI()
client = AsyncOpenAI(
    base_url=os.environ.get("OPENAI_BASE_URL"),
    api_key=os.environ.get("OPENAI_API_KEY") or "sk-bench",
)


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/chat")
async def chat(message: str = "hello", model: str = "fake-tokens-20") -> EventSourceResponse:
    async def events() -> AsyncIterator[dict[str, str]]:
        stream = await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": message}], stream=True
        )
        async for chunk in stream:
            content = chunk.choices[0].delta.content if chunk.choices else None
            if content:
                yield {"data": content}
        yield {"data": "[DONE]"}

    return EventSourceResponse(events())


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8200)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
