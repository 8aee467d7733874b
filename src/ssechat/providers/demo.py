"""The built-in ``demo`` model: an offline, deterministic provider that needs no key.

It streams a Markdown-rich answer (heading, list, table, code, math) word by word at a steady
pace, so a fresh install shows what streaming and rendering look like, and it says how to
connect a real model. Same messages in, same text out. This module must never do network IO
or read the environment.
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncGenerator, Sequence

import anyio
import anyio.lowlevel

from ssechat.providers.base import ChatMessage, Delta, GenerationParams, Usage

__all__ = ["DEMO_MODEL", "DemoProvider"]

DEMO_MODEL = "demo"

_QUOTE_LIMIT = 160
_TOKEN = re.compile(r"\S+\s*|\s+")

_INTRO = """\
This answer comes from **ssechat's built-in demo model**. It runs offline and always writes \
the same text, so you can see how streaming and Markdown rendering look before you connect a \
real model.

"""

_BODY = """\
### What it shows

- **Streaming**: every word arrives as its own event, {pace}.
- **Markdown**: headings, lists, tables and code blocks render while they arrive.
- **Math**: inline formulas such as $e^{{i\\pi}}+1=0$ are typeset.

| Part | Module | Swappable |
| --- | --- | --- |
| Wire protocol | `ssechat.sse` | no |
| Model providers | `ssechat.providers` | yes |
| Conversation store | `ssechat.store` | yes |

```python
async for delta in provider.stream(messages, model, params):
    print(delta.text, end="", flush=True)
```

### Talk to a real model

This is only the demo model. To use a real one, set `OPENAI_API_KEY` before starting the \
server, and `OPENAI_BASE_URL` for another OpenAI-compatible API (for example \
`http://localhost:11434/v1` for Ollama, which needs no key), or choose the model with \
`--model`:

```sh
OPENAI_API_KEY=sk-... ssechat serve --model gpt-4o-mini
```
"""


class DemoProvider:
    """Streams ``answer(messages)`` one word (with the whitespace after it) per ``Delta``.

    ``tokens_per_second`` sets the pace; 0 or infinity sends as fast as the consumer reads.
    """

    name = "demo"

    def __init__(self, *, tokens_per_second: float = 40.0) -> None:
        if not tokens_per_second >= 0:  # also rejects NaN
            raise ValueError("tokens_per_second must be >= 0")
        self.tokens_per_second = tokens_per_second

    def __repr__(self) -> str:
        return f"DemoProvider(tokens_per_second={self.tokens_per_second!r})"

    @property
    def _interval(self) -> float:
        tps = self.tokens_per_second
        return 0.0 if tps == 0 or math.isinf(tps) else 1.0 / tps

    def answer(self, messages: Sequence[ChatMessage]) -> str:
        """The whole text the demo model answers to ``messages``."""
        parts = ["## A streamed answer from the demo model\n\n"]
        asked = _last_user_text(messages)
        if asked:
            parts.append(f"You asked:\n\n> {_shorten(asked)}\n\n")
        parts.append(_INTRO)
        interval = self._interval
        pace = (
            f"about {self.tokens_per_second:g} words per second"
            if interval
            else "as fast as they can be sent"
        )
        parts.append(_BODY.format(pace=pace))
        return "".join(parts)

    async def stream(
        self, messages: Sequence[ChatMessage], model: str, params: GenerationParams
    ) -> AsyncGenerator[Delta, None]:
        tokens = _TOKEN.findall(self.answer(messages))
        finish = "stop"
        if params.max_tokens is not None and params.max_tokens < len(tokens):
            tokens, finish = tokens[: max(params.max_tokens, 0)], "length"
        interval = self._interval
        start = anyio.current_time()
        for i, token in enumerate(tokens):
            # Deadlines from the start, so the pace does not drift with the consumer's speed.
            delay = start + i * interval - anyio.current_time() if interval else 0.0
            if delay > 0:
                await anyio.sleep(delay)
            else:
                await anyio.lowlevel.checkpoint()  # stay cancellable even when unpaced
            yield Delta(token)
        yield Delta(finish_reason=finish)
        prompt = sum(len(m.content.split()) for m in messages)
        yield Delta(usage=Usage(prompt, len(tokens), prompt + len(tokens)))

    async def list_models(self) -> list[str]:
        return [DEMO_MODEL]

    async def aclose(self) -> None:
        return None


def _last_user_text(messages: Sequence[ChatMessage]) -> str:
    for message in reversed(messages):
        if message.role == "user":
            return message.content
    return ""


def _shorten(text: str) -> str:
    # One line, so the quote stays inside its blockquote whatever the message holds.
    flat = " ".join(text.split())
    if len(flat) <= _QUOTE_LIMIT:
        return flat
    return flat[: _QUOTE_LIMIT - 1].rstrip() + "…"
