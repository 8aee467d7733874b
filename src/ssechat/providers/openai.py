"""The OpenAI-compatible provider: ``POST {base_url}/chat/completions``, streamed.

Works with anything that speaks the chat-completions wire format (OpenAI, Azure, Ollama, vLLM,
llama.cpp, LM Studio…). The body's bytes go through ``chunks.FrameSplitter`` and each frame
through ``orjson``: no SDK, no model classes, one ``Delta`` per network read, because the whole
per-token budget of the server is a few tens of microseconds. Reasoning (its fields, or a leading
``<think>`` in the content) and tool calls are read there too (``chunks.StreamState``, one per
stream). The request carries a conversation's tool steps (an assistant message's ``tool_calls``,
``tool`` messages) and the tools offered (``GenerationParams.tools``) in OpenAI's format.

One transport: ``http1``, a small asyncio HTTP/1.1 client made for this path (chosen by
measurement over aiohttp and httpx, see ``bench/PROFILE.md``), for the stream and for
``list_models`` alike. ``endpoint`` renders the requests once; HTTP proxies come from the
environment (``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``, ``NO_PROXY``, see
``providers.proxies``). TLS trusts ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` when set, else certifi's
bundle.

Retries happen here and nowhere else, and only before the first ``Delta`` is yielded, by the
openai SDK's rules: 408, 409, 429, 5xx, connection errors and timeouts are tried again up to
``max_retries`` times, after ``retry-after-ms`` / ``retry-after`` when the server asks for 0–60 s,
else after an exponential backoff with jitter; ``x-should-retry: true/false`` overrides the
status. A kept-alive connection the server had closed (``http1.StaleConnection``: the request
was never processed) is tried again at once, and counts as a retry like any other. Once text has
been yielded nothing is retried (the caller already has part of an answer): a broken connection
raises ``ProviderConnectionError`` and a silent one ``ProviderTimeoutError``, both keeping
``retryable=True`` because a new request may well succeed, just not transparently.

This module must never read the environment beyond the proxy and certificate settings above, let
an http1 or orjson exception escape, or put the API key (or a password of the base URL or of a
proxy) in an exception message, a repr or a log line.
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
import os
import random
import ssl
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from typing import Any

import anyio
import certifi
import orjson

from ssechat import __version__
from ssechat.errors import (
    ProviderAuthError,
    ProviderConnectionError,
    ProviderError,
    ProviderStatusError,
    ProviderStreamError,
    ProviderTimeoutError,
)
from ssechat.providers import http1
from ssechat.providers.base import ChatMessage, Delta, GenerationParams
from ssechat.providers.chunks import (
    FrameSplitter,
    StreamState,
    completion_deltas,
    error_detail,
    read_deltas,
)
from ssechat.providers.endpoint import Endpoint, without_userinfo
from ssechat.providers.reasoning import DEFAULT_TAGS, parse_tags
from ssechat.sse import EventTooLargeError

__all__ = ["DEFAULT_BASE_URL", "OpenAIProvider", "parse_retry_after"]

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"

# The SDK's limits: a server-requested wait is honoured only in (0, 60] seconds.
_MAX_RETRY_AFTER = 60.0
_ERROR_BODY_LIMIT = 64 * 1024
_JSON_BODY_LIMIT = 8 * 1024 * 1024
# After [DONE], what is left is normally just the chunked body's last few bytes; reading them
# lets the connection go back to the pool. A server that keeps talking is cut off.
_DRAIN_LIMIT = 64 * 1024
_DRAIN_TIMEOUT = 0.25
# Idle connections kept (each for at most 5 s): above any burst of streams worth keeping.
_MAX_IDLE = 1024

Sleep = Callable[[float], Awaitable[None]]


def _ssl_context() -> ssl.SSLContext:
    """The context for https upstreams: ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` when set (as
    OpenSSL, curl and httpx read them), else certifi's CA bundle."""
    cafile = os.environ.get("SSL_CERT_FILE") or None
    capath = os.environ.get("SSL_CERT_DIR") or None
    if cafile is None and capath is None:
        cafile = certifi.where()
    return ssl.create_default_context(cafile=cafile, capath=capath)


class OpenAIProvider:
    """Streams chat completions from one OpenAI-compatible API.

    ``backoff_initial`` and ``backoff_max`` (seconds) are the SDK's 0.5 and 8 by default;
    ``sleep`` waits between retries (tests pass one that records the delays).
    ``reasoning_tags`` are the tag names whose leading ``<tag>…</tag>`` in the content is the
    model's reasoning (``Settings.reasoning_tags``; ``()`` turns that off).
    """

    name = "openai"

    def __init__(
        self,
        *,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str | None = None,
        connect_timeout: float = 10.0,
        idle_timeout: float = 60.0,
        max_retries: int = 2,
        backoff_initial: float = 0.5,
        backoff_max: float = 8.0,
        sleep: Sleep = anyio.sleep,
        reasoning_tags: str | Sequence[str] = DEFAULT_TAGS,
    ) -> None:
        if api_key is not None and not (api_key.isprintable() and api_key.isascii()):
            # A header cannot carry it, and an error about the header would show it.
            raise ValueError("the API key contains characters an HTTP header cannot carry")
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key or None
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.max_retries = max(0, max_retries)
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._sleep = sleep
        self._closed = False
        # Checked here, once: a bad name is a configuration error, not a stream's.
        self._reasoning_tags = parse_tags(reasoning_tags)
        auth = {"authorization": f"Bearer {api_key}"} if api_key else {}
        stream_headers = {
            "content-type": "application/json",
            "accept": "text/event-stream",
            # A compressed body would cost a decompression per read.
            "accept-encoding": "identity",
            "user-agent": f"ssechat/{__version__}",
            **auth,
        }
        models_headers = {"accept": "application/json", "user-agent": f"ssechat/{__version__}"}
        self._shown_url = without_userinfo(self.base_url)
        self._endpoint = Endpoint.parse(self.base_url, stream_headers, {**models_headers, **auth})
        self._client = http1.Client(
            ssl_context=_ssl_context() if self.base_url.lower().startswith("https") else None,
            connect_timeout=connect_timeout,
            idle_timeout=idle_timeout,
            # Bursts of streams must find their connections again.
            max_idle=_MAX_IDLE,
        )

    def __repr__(self) -> str:
        key = "<set>" if self._api_key else None
        return f"OpenAIProvider(base_url={self._shown_url!r}, api_key={key})"

    async def aclose(self) -> None:
        self._closed = True
        self._client.close()

    # --- streaming ----------------------------------------------------------------------------

    async def stream(
        self, messages: Sequence[ChatMessage], model: str, params: GenerationParams
    ) -> AsyncGenerator[Delta, None]:
        payload: dict[str, Any] = {
            "model": model,
            # A plain message stays the two-key dict it always was; only a tool step's
            # messages take the longer way.
            "messages": [
                {"role": m.role, "content": m.content}
                if not m.tool_calls and m.tool_call_id is None
                else _tool_step_message(m)
                for m in messages
            ],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if params.temperature is not None:
            payload["temperature"] = params.temperature
        if params.max_tokens is not None:
            payload["max_tokens"] = params.max_tokens
        if params.tools:
            payload["tools"] = params.tools
            if params.tool_choice is not None:
                payload["tool_choice"] = params.tool_choice
        # Kept for the stream's life (retries): a copy sized to fit, as orjson's own buffer is
        # 4 KiB however short the body.
        content = bytes(memoryview(orjson.dumps(payload, default=_plain_json)))
        retries = 0
        while True:
            yielded = False
            body: http1.Response | None = None
            error: ProviderError
            try:
                body = await self._open(content)
                if _is_json(body.headers):  # the server ignored "stream": a whole completion
                    whole = await body.read(_JSON_BODY_LIMIT)
                    for delta in completion_deltas(whole, self._reasoning_tags):
                        yielded = True
                        yield delta
                    return
                splitter = FrameSplitter()
                state = StreamState(self._reasoning_tags)
                while chunk := await body.receive():
                    deltas, done, failure = read_deltas(splitter, chunk, state)
                    for delta in deltas:
                        yielded = True
                        yield delta
                    if failure is not None:
                        # What the <think> splitter held is text the upstream did send.
                        for delta in state.end(calls=False):
                            yielded = True
                            yield delta
                        raise failure
                    if done:
                        for delta in state.end():
                            yield delta
                        await body.drain(_DRAIN_LIMIT, _DRAIN_TIMEOUT)
                        return
                # The body ended without [DONE]: what arrived is the whole answer.
                for delta in state.end():
                    yielded = True
                    yield delta
                return
            except ProviderError as exc:
                error = exc
            except http1.HTTPError as exc:
                error = self._transport_error(exc, yielded)
                error.__cause__ = _cause(exc, self._api_key)
            except EventTooLargeError as exc:
                error = ProviderStreamError(f"upstream sent an oversized event: {exc}")
            finally:
                # A cancelled caller must still close the upstream response now, so the
                # connection is dropped (or pooled) at once, not left half-read.
                if body is not None:
                    body.close()
            _scrub(error, self._api_key)
            if yielded or not error.retryable or retries >= self.max_retries:
                if retries:
                    _set_message(error, f"{error.message} (after {retries} retries)")
                raise error
            delay = self._retry_delay(retries, error)
            logger.info(
                "upstream request to %s failed (%s); retry %d of %d in %.2f s",
                self._shown_url,
                error.message,
                retries + 1,
                self.max_retries,
                delay,
            )
            retries += 1
            if delay > 0:
                await self._sleep(delay)

    def _usable_endpoint(self) -> Endpoint:
        if self._closed:
            raise ProviderConnectionError("the upstream provider is closed", retryable=False)
        endpoint = self._endpoint
        if isinstance(endpoint, str):
            raise ProviderConnectionError(endpoint, retryable=False)
        return endpoint

    async def _open(self, content: bytes) -> http1.Response:
        """Send the request; the response, its body unread, if the status is a success."""
        endpoint = self._usable_endpoint()
        head = endpoint.chat_head + b"content-length: %d\r\n\r\n" % len(content)
        body = await self._client.request(endpoint.origin, head, content, proxy=endpoint.proxy)
        if not 200 <= body.status < 300:
            try:
                raise await self._status_error(body)
            finally:
                body.close()
        return body

    def _retry_delay(self, retries: int, exc: ProviderError) -> float:
        if isinstance(exc.__cause__, http1.StaleConnection):
            return 0.0  # the request never reached the server: send it again now
        retry_after = exc.retry_after if isinstance(exc, ProviderStatusError) else None
        if retry_after is not None and 0 < retry_after <= _MAX_RETRY_AFTER:
            return retry_after
        backoff = min(self.backoff_initial * 2.0**retries, self.backoff_max)
        return backoff * (1 - 0.25 * random.random())

    async def _status_error(self, body: http1.Response) -> ProviderStatusError:
        status = body.status
        detail = ""
        with contextlib.suppress(http1.HTTPError):  # the status says enough
            detail = error_detail(await body.read(_ERROR_BODY_LIMIT))
        what = f"HTTP {status} {body.reason}".rstrip()
        cls = ProviderStatusError
        if status in (401, 403):
            cls, what = ProviderAuthError, f"upstream rejected the credentials ({what})"
        elif status == 407:
            what = f"the proxy asked for credentials ({what}); set them in the proxy URL"
        else:
            what = f"upstream answered {what}"
        exc = cls(
            f"{what}: {detail}" if detail else what,
            status=status,
            retry_after=parse_retry_after(body.headers),
        )
        should_retry = body.headers.get("x-should-retry")
        if should_retry in ("true", "false"):
            exc.retryable = should_retry == "true"
        return exc

    def _transport_error(self, exc: http1.HTTPError, yielded: bool) -> ProviderError:
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        during = " after the answer began" if yielded else ""
        if isinstance(exc, http1.ReadTimeout):
            return ProviderTimeoutError(
                f"upstream sent nothing for {self.idle_timeout:g} s{during}"
            )
        if isinstance(exc, http1.ConnectTimeout):
            return ProviderTimeoutError(
                f"connecting to the upstream at {self._shown_url} timed out"
                f" after {self.connect_timeout:g} s"
            )
        if isinstance(exc, http1.ClientClosed):
            return ProviderConnectionError("the upstream provider is closed", retryable=False)
        if isinstance(exc, http1.ConnectError):
            return ProviderConnectionError(
                f"cannot connect to the upstream at {self._shown_url} ({detail})"
            )
        if isinstance(exc, http1.ConnectionBroken):
            return ProviderConnectionError(f"the upstream connection broke{during} ({detail})")
        return ProviderStreamError(f"upstream response could not be read{during} ({detail})")

    # --- models -------------------------------------------------------------------------------

    async def list_models(self) -> list[str]:
        """The ids of ``GET {base_url}/models``, sorted; ``[]`` when that fails in any way. A
        stale kept-alive connection is tried again at once, as a stream's would be."""
        for attempt in range(self.max_retries + 1):
            body: http1.Response | None = None
            try:
                endpoint = self._usable_endpoint()
                body = await self._client.request(
                    endpoint.origin, endpoint.models_head, b"", proxy=endpoint.proxy
                )
                if body.status != 200:
                    raise ValueError(f"HTTP {body.status}")
                data = orjson.loads(await body.read(_JSON_BODY_LIMIT))["data"]
                return sorted({m["id"] for m in data if isinstance(m.get("id"), str)})
            except http1.StaleConnection:
                if attempt < self.max_retries:
                    continue
                self._log_models_failure("a kept-alive connection was closed")
            except Exception as exc:  # any failure means "no list", never an error
                self._log_models_failure(f"{type(exc).__name__}: {exc}")
            finally:
                if body is not None:
                    body.close()
            break
        return []

    def _log_models_failure(self, message: str) -> None:
        if self._api_key:
            message = message.replace(self._api_key, "***")
        logger.debug("listing models at %s failed: %s", self._shown_url, message)


# --- helpers ----------------------------------------------------------------------------------


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds the server asks to wait: ``retry-after-ms``, else ``retry-after`` in seconds or
    as an HTTP date (relative to ``now``, default the current time); None when absent or bad."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return float(millis) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    parsed = email.utils.parsedate_tz(value)
    if parsed is None:
        return None
    return email.utils.mktime_tz(parsed) - (time.time() if now is None else now)


def _tool_step_message(message: ChatMessage) -> dict[str, Any]:
    """A message of a tool step as the chat-completions API takes it: an assistant message with
    its ``tool_calls`` (``content`` null when it has no text, as OpenAI itself sends it back), or
    a ``tool`` message answering one call."""
    if message.tool_call_id is not None:
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    return {
        "role": message.role,
        "content": message.content or None,
        "tool_calls": [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in message.tool_calls
        ],
    }


def _plain_json(value: object) -> object:
    # orjson writes dicts, lists and tuples natively; a tool's schema may come as another
    # Mapping (a read-only view, say), which it hands here.
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _is_json(headers: Mapping[str, str]) -> bool:
    kind = headers.get("content-type", "")
    return kind.split(";", 1)[0].strip().lower() == "application/json"


def _scrub(exc: ProviderError, api_key: str | None) -> None:
    # Upstreams echo keys back ("Incorrect API key provided: sk-…"); never pass that on.
    if api_key and api_key in exc.message:
        _set_message(exc, exc.message.replace(api_key, "***"))


def _set_message(exc: ProviderError, message: str) -> None:
    exc.message = message
    exc.args = (message,)


def _cause(exc: Exception, api_key: str | None) -> Exception | None:
    # Keep the transport's exception as the cause for debugging, unless its text holds the key.
    return None if api_key and api_key in str(exc) else exc
