"""A fake OpenAI-compatible upstream, for tests, demos and benchmarks.

``FakeUpstream`` is a raw asyncio HTTP/1.1 server (no ASGI framework: it needs byte-level control
for split writes and resets, and must stay cheap at a thousand concurrent streams). It serves
``POST /v1/chat/completions`` (``stream: true`` gives ``text/event-stream`` in the exact OpenAI
wire format; ``stream: false`` a ``chat.completion`` object) and ``GET /v1/models``, records every
request and when each connection closed, and answers according to a ``Scenario``::

    async with FakeUpstream(fixtures_dir=FIXTURES) as upstream:
        upstream.enqueue(Scenario(status=429, retry_after_ms="50"))  # the next request
        upstream.default = Scenario(tokens=200, rate=20)              # every other one
        ... OpenAIProvider(base_url=upstream.base_url) ...
        await upstream.wait_closed()                                   # the latest request's

For synchronous tests: ``with FakeUpstream.running_in_thread() as upstream: ...``.

Modules: ``server`` (connections, routes and the records tests read), ``answers`` (what a chat
request is answered with, and its pace), ``faults`` (statuses, error frames, resets, stalls),
``scenario`` (the ``Scenario`` value and the model-name syntax), ``wire`` (the OpenAI wire
format's bytes) and ``http11`` (the minimal HTTP/1.1 and its socket tricks).
Standalone: ``python -m ssechat.fake_upstream --host 127.0.0.1 --port 9100 [--fixtures DIR]``.

Model-name syntax
-----------------
Another process drives the fake through the model name of its request::

    fake-<answer>[@<rate>][+<fault>]...

answers:

- ``tokens[-N]``        N generated tokens (default 20): ``fake-tokens-200@20`` is 200 tokens at
                        20 tokens/s; without ``@rate`` (or ``@0``) as fast as possible;
- ``echo``              the words of the last user message: ``fake-echo@50``;
- ``replay-NAME``       the recording ``NAME.sse`` from the fixtures directory, byte for byte;
                        ``@rate`` is then in frames/s: ``fake-replay-content-short``;
- ``reason-SHAPE-R-A``  R reasoning tokens, then A answer tokens; SHAPE is where the reasoning
                        goes: ``content`` (``delta.reasoning_content``), ``field``
                        (``delta.reasoning``) or ``tag`` (``<think>…</think>`` leading
                        ``delta.content``): ``fake-reason-tag-200-50@40``;
- ``tools[-N]``         N tool calls (default 1), each its first piece (index, id, name) and its
                        arguments in several pieces, then finish_reason ``tool_calls``;
- ``agent``             scripted tool turns: calls the tools a ``{"calls": [{name, arguments}]}``
                        user message names, else the first tool offered with ``{"text": <the
                        user's text>}``; once the request ends in ``tool`` messages, answers
                        "Tool said: " and their contents.

faults (N counts tokens, or frames for a replay):

- ``status-CODE[xK]``   answer HTTP CODE with a JSON error for the first K requests that use this
                        exact model name (always, without ``xK``), then succeed:
                        ``fake-tokens-5+status-429x2``;
- ``retry-S``           a ``Retry-After: S`` header on those answers; ``retryms-MS`` a
                        ``retry-after-ms`` one;
- ``error-N``           an ``{"error": ...}`` frame after N tokens, then the body ends;
                        ``errordone-N`` adds ``data: [DONE]`` after it;
- ``reset-N``           a TCP reset after N tokens;
- ``stall-N[-S]``       silence after N tokens, for S seconds or until the client leaves;
- ``split-SEED``        frames written in pieces cut at seeded random offsets, ``chop-B`` in
                        pieces of B bytes (each piece its own HTTP chunk, write and drain);
- ``nodone``            no ``data: [DONE]``;
- ``finish-REASON``     the last chunk's finish_reason (default ``stop``).

Any other model name gets the default scenario. A malformed ``fake-`` name gets a 400 that says
what is wrong.

This package must never be used as a real provider, reach any network beyond the socket it
listens on, or import anything of ssechat above ``sse`` and its own modules.
"""

from __future__ import annotations

from ssechat.fake_upstream.scenario import MODEL_PREFIX, Scenario, parse_model
from ssechat.fake_upstream.server import ConnectionRecord, FakeUpstream, RecordedRequest

__all__ = [
    "MODEL_PREFIX",
    "ConnectionRecord",
    "FakeUpstream",
    "RecordedRequest",
    "Scenario",
    "parse_model",
]
