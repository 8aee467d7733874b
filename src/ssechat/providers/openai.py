"""The OpenAI-compatible provider: ``POST {base_url}/chat/completions`` streamed over httpx.

Works with anything that speaks the chat-completions wire format (OpenAI, Azure, Ollama, vLLM,
llama.cpp, LM Studio…). The raw body bytes go through ``ssechat.sse.EventDecoder`` and each
frame through ``orjson``: no SDK, no model classes, one ``Delta`` per useful frame, because the
whole per-token budget of the server is a few tens of microseconds.

Retries follow the openai SDK's rules, but only before the first ``Delta`` is yielded: 408, 409,
429, 5xx, connection errors and timeouts are tried again up to ``max_retries`` times, after
``retry-after-ms`` / ``retry-after`` when the server asks for 0–60 s, else after an exponential
backoff with jitter; ``x-should-retry: true/false`` overrides the status. Once text has been
yielded nothing is retried (the caller already has part of an answer): a broken connection
raises ``ProviderConnectionError`` and a silent one ``ProviderTimeoutError``, both keeping
``retryable=True`` because a new request may well succeed, just not transparently.

Connections: httpcore 1.0's pool does work proportional to (connections x queued requests) on
every request and every close (encode/httpcore#1035), which at a thousand concurrent streams
costs more CPU than the streams themselves. So an owned pool is split into shards, httpx clients
opened on demand that each carry at most ``_SHARD_STREAMS`` streams at a time; each keeps its
connections alive for reuse, and they share one SSL context.

This module must never read the environment, let an httpx or orjson exception escape, or put the
API key in an exception message, a repr or a log line.
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import anyio
import httpx
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
from ssechat.providers.base import ChatMessage, Delta, GenerationParams, Usage
from ssechat.sse import EventDecoder, EventTooLargeError

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
# Streams one pooled client carries before another is opened (see the module docstring).
_SHARD_STREAMS = 32


class _Shard:
    __slots__ = ("active", "client")

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.active = 0


class OpenAIProvider:
    """Streams chat completions from one OpenAI-compatible API.

    ``client`` lets several providers share a connection pool (used as it is, unsharded); the
    clients created here are owned and closed by ``aclose()``. ``backoff_initial`` and
    ``backoff_max`` (seconds) are the SDK's 0.5 and 8 by default; tests make them small.
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
        client: httpx.AsyncClient | None = None,
        backoff_initial: float = 0.5,
        backoff_max: float = 8.0,
    ) -> None:
        if api_key is not None and not api_key.isprintable():
            # h11 would put the whole header value, key included, in its error message.
            raise ValueError("the API key contains characters an HTTP header cannot carry")
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key or None
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.max_retries = max(0, max_retries)
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        # read= bounds each socket read, so it is the longest silence between two chunks.
        self._timeout = httpx.Timeout(
            connect=connect_timeout, read=idle_timeout, write=idle_timeout, pool=connect_timeout
        )
        self._owns_clients = client is None
        self._ssl_context = httpx.create_ssl_context() if client is None else None
        self._shards = [_Shard(client)] if client is not None else []
        self._closed = False
        auth = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._models_headers = {"accept": "application/json", **auth}
        self._stream_headers = {
            "content-type": "application/json",
            "accept": "text/event-stream",
            # A compressed body would not be readable with aiter_raw.
            "accept-encoding": "identity",
            "user-agent": f"ssechat/{__version__}",
            **auth,
        }
        self._chat_url = f"{self.base_url}/chat/completions"
        self._models_url = f"{self.base_url}/models"
        self._shown_url = _without_userinfo(self.base_url)

    def __repr__(self) -> str:
        key = "<set>" if self._api_key else None
        return f"OpenAIProvider(base_url={self._shown_url!r}, api_key={key})"

    async def aclose(self) -> None:
        self._closed = True
        if self._owns_clients:
            for shard in self._shards:
                await shard.client.aclose()

    def _acquire(self) -> _Shard:
        """The first shard with room (first fit keeps reusing the same warm connections); a new
        one when all are full. A shared client is the only shard, however busy."""
        for shard in self._shards:
            if shard.active < _SHARD_STREAMS or not self._owns_clients:
                break
        else:
            shard = _Shard(
                httpx.AsyncClient(
                    verify=self._ssl_context or True,
                    timeout=self._timeout,
                    limits=httpx.Limits(
                        max_connections=None, max_keepalive_connections=2 * _SHARD_STREAMS
                    ),
                )
            )
            self._shards.append(shard)
        shard.active += 1
        return shard

    # --- streaming ----------------------------------------------------------------------------

    async def stream(
        self, messages: Sequence[ChatMessage], model: str, params: GenerationParams
    ) -> AsyncGenerator[Delta, None]:
        payload: dict[str, Any] = {
            "model": model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if params.temperature is not None:
            payload["temperature"] = params.temperature
        if params.max_tokens is not None:
            payload["max_tokens"] = params.max_tokens
        content = orjson.dumps(payload)
        if self._closed or (not self._owns_clients and self._shards[0].client.is_closed):
            # httpx would raise a bare RuntimeError.
            raise ProviderConnectionError("the upstream provider is closed", retryable=False)
        shard = self._acquire()
        try:
            retries = 0
            while True:
                yielded = False
                response: httpx.Response | None = None
                chunks: AsyncIterator[bytes] | None = None
                error: ProviderError
                try:
                    response = await self._open(shard.client, content)
                    if _is_json(response):  # the server ignored "stream": a whole completion
                        for delta in _completion_deltas(await _read(response, _JSON_BODY_LIMIT)):
                            yielded = True
                            yield delta
                        return
                    encoding = response.headers.get("content-encoding", "identity")
                    raw = encoding.lower() in ("identity", "")
                    chunks = response.aiter_raw() if raw else response.aiter_bytes()
                    decoder = EventDecoder()
                    async for chunk in chunks:
                        for event in decoder.feed(chunk):
                            data = event.data
                            if data == "[DONE]":
                                await _drain(chunks)
                                return
                            if event.type == "error":
                                message = f"upstream stream error: {_frame_error(data)}"
                                raise ProviderStreamError(message)
                            step = _parse_chunk(data)
                            if step is not None:
                                yielded = True
                                yield step
                    # The body ended without [DONE]: what arrived is the whole answer.
                    return
                except ProviderError as exc:
                    error = exc
                except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as exc:
                    error = self._transport_error(exc, yielded)
                    error.__cause__ = _cause(exc, self._api_key)
                except EventTooLargeError as exc:
                    error = ProviderStreamError(f"upstream sent an oversized event: {exc}")
                finally:
                    # Shielded: a cancelled caller must still close the upstream response now,
                    # so the connection is dropped (or pooled) at once, not left half-read.
                    with anyio.CancelScope(shield=True):
                        if chunks is not None:
                            await _aclose_iterator(chunks)
                        if response is not None:
                            await response.aclose()
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
                await anyio.sleep(delay)
        finally:
            shard.active -= 1

    async def _open(self, client: httpx.AsyncClient, content: bytes) -> httpx.Response:
        """Send the request; the response, its body unread, if the status is a success."""
        request = client.build_request(
            "POST",
            self._chat_url,
            content=content,
            headers=self._stream_headers,
            timeout=self._timeout,
        )
        response = await client.send(request, stream=True)
        if not 200 <= response.status_code < 300:
            try:
                raise await self._status_error(response)
            finally:
                with anyio.CancelScope(shield=True):
                    await response.aclose()
        return response

    def _retry_delay(self, retries: int, exc: ProviderError) -> float:
        retry_after = exc.retry_after if isinstance(exc, ProviderStatusError) else None
        if retry_after is not None and 0 < retry_after <= _MAX_RETRY_AFTER:
            return retry_after
        backoff = min(self.backoff_initial * 2.0**retries, self.backoff_max)
        return backoff * (1 - 0.25 * random.random())

    async def _status_error(self, response: httpx.Response) -> ProviderStatusError:
        status = response.status_code
        detail = ""
        with contextlib.suppress(httpx.HTTPError, httpx.StreamError):  # the status says enough
            detail = _error_detail(await _read(response, _ERROR_BODY_LIMIT))
        what = f"HTTP {status} {response.reason_phrase}".rstrip()
        cls = ProviderStatusError
        if status in (401, 403):
            cls, what = ProviderAuthError, f"upstream rejected the credentials ({what})"
        else:
            what = f"upstream answered {what}"
        exc = cls(
            f"{what}: {detail}" if detail else what,
            status=status,
            retry_after=parse_retry_after(response.headers),
        )
        should_retry = response.headers.get("x-should-retry")
        if should_retry in ("true", "false"):
            exc.retryable = should_retry == "true"
        return exc

    def _transport_error(self, exc: Exception, yielded: bool) -> ProviderError:
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        during = " after the answer began" if yielded else ""
        if isinstance(exc, httpx.ReadTimeout):
            return ProviderTimeoutError(
                f"upstream sent nothing for {self.idle_timeout:g} s{during}"
            )
        if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
            return ProviderTimeoutError(
                f"connecting to the upstream at {self._shown_url} timed out"
                f" after {self.connect_timeout:g} s"
            )
        if isinstance(exc, httpx.TimeoutException):
            return ProviderTimeoutError(f"upstream timed out{during} ({detail})")
        if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
            return ProviderConnectionError(
                f"the upstream URL {self._shown_url!r} is not usable ({detail})", retryable=False
            )
        if isinstance(exc, httpx.ConnectError):
            return ProviderConnectionError(
                f"cannot connect to the upstream at {self._shown_url} ({detail})"
            )
        if isinstance(exc, httpx.TransportError):
            return ProviderConnectionError(f"the upstream connection broke{during} ({detail})")
        return ProviderStreamError(f"upstream response could not be read{during} ({detail})")

    # --- models -------------------------------------------------------------------------------

    async def list_models(self) -> list[str]:
        """The ids of ``GET {base_url}/models``, sorted; ``[]`` when that fails in any way."""
        try:
            if self._closed:
                raise RuntimeError("the provider is closed")
            shard = self._acquire()
            shard.active -= 1  # a short request: it does not hold the shard
            response = await shard.client.get(
                self._models_url, headers=self._models_headers, timeout=self._timeout
            )
            if response.status_code != 200:
                raise ValueError(f"HTTP {response.status_code}")
            data = orjson.loads(response.content)["data"]
            return sorted({m["id"] for m in data if isinstance(m.get("id"), str)})
        except Exception as exc:  # any failure means "no list", never an error
            message = f"{type(exc).__name__}: {exc}"
            if self._api_key:
                message = message.replace(self._api_key, "***")
            logger.debug("listing models at %s failed: %s", self._shown_url, message)
            return []


# --- the per-chunk path -----------------------------------------------------------------------


def _parse_chunk(data: str) -> Delta | None:
    """One ``chat.completion.chunk`` to a ``Delta``; None when it carries nothing for us."""
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError:
        if not data.strip():
            return None  # an empty data line carries nothing
        raise ProviderStreamError(
            f"upstream sent a frame that is not JSON: {data[:100]!r}"
        ) from None
    if type(chunk) is not dict:
        raise ProviderStreamError(f"upstream sent a frame that is not an object: {data[:100]!r}")
    error = chunk.get("error")
    if error:
        raise ProviderStreamError(f"upstream stream error: {_error_text(error)}")
    text = ""
    finish = None
    choices = chunk.get("choices")
    if choices and type(choices) is list:
        choice = choices[0]
        if type(choice) is dict and choice.get("index", 0) != 0:
            # n > 1: only choice 0 is the answer.
            choice = next((c for c in choices if type(c) is dict and c.get("index") == 0), None)
        if type(choice) is dict:
            delta = choice.get("delta")
            if delta and type(delta) is dict:
                content = delta.get("content")
                if content and type(content) is str:
                    text = content
                refusal = delta.get("refusal")
                if refusal and type(refusal) is str:
                    # A refusal is shown as the answer; both at once is not expected.
                    text = text + refusal if text else refusal
            reason = choice.get("finish_reason")
            if reason and type(reason) is str:
                finish = reason
    usage = _usage(chunk.get("usage"))
    if text or finish or usage:
        return Delta(text, finish, usage)
    return None


def _usage(value: Any) -> Usage | None:
    if not value or type(value) is not dict:
        return None
    prompt = value.get("prompt_tokens")
    completion = value.get("completion_tokens")
    total = value.get("total_tokens")
    prompt = prompt if type(prompt) is int else 0
    completion = completion if type(completion) is int else 0
    total = total if type(total) is int else prompt + completion
    return Usage(prompt, completion, total)


def _completion_deltas(body: bytes) -> list[Delta]:
    """A whole (non-streamed) ``chat.completion`` as deltas."""
    try:
        completion = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ProviderStreamError("upstream answered with JSON that does not parse") from None
    if type(completion) is not dict:
        raise ProviderStreamError("upstream answered with JSON that is not an object")
    if completion.get("error"):
        raise ProviderStreamError(f"upstream error: {_error_text(completion['error'])}")
    deltas: list[Delta] = []
    choices = completion.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else None
    if isinstance(choice, dict):
        message = choice.get("message")
        if isinstance(message, dict):
            text = message.get("content") or message.get("refusal")
            if isinstance(text, str) and text:
                deltas.append(Delta(text))
        reason = choice.get("finish_reason")
        if isinstance(reason, str) and reason:
            deltas.append(Delta(finish_reason=reason))
    usage = _usage(completion.get("usage"))
    if usage is not None:
        deltas.append(Delta(usage=usage))
    return deltas


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


def _is_json(response: httpx.Response) -> bool:
    kind: str = response.headers.get("content-type", "")
    return kind.split(";", 1)[0].strip().lower() == "application/json"


async def _read(response: httpx.Response, limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    async for part in response.aiter_bytes():
        parts.append(part)
        size += len(part)
        if size >= limit:
            break
    return b"".join(parts)[:limit]


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    received = 0
    try:
        with anyio.move_on_after(_DRAIN_TIMEOUT):
            async for chunk in chunks:
                received += len(chunk)
                if received > _DRAIN_LIMIT:
                    break
    except (httpx.HTTPError, httpx.StreamError):
        pass  # the answer is complete; only the connection is lost


async def _aclose_iterator(chunks: AsyncIterator[bytes]) -> None:
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(httpx.HTTPError, httpx.StreamError):
            await aclose()


def _error_detail(body: bytes) -> str:
    """The human part of an error body: ``error.message`` and the like, else nothing."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    if isinstance(value, dict):
        for key in ("error", "message", "detail"):
            if value.get(key):
                return _error_text(value[key])
    return ""


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        message = error.get("message")
        if isinstance(message, str) and message:
            return message[:1000]
    if isinstance(error, str):
        return error[:1000]
    return orjson.dumps(error).decode()[:1000]


def _frame_error(data: str) -> str:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return data[:1000] or "unknown error"
    if isinstance(value, dict) and value.get("error"):
        return _error_text(value["error"])
    return _error_text(value)


def _scrub(exc: ProviderError, api_key: str | None) -> None:
    # Upstreams echo keys back ("Incorrect API key provided: sk-…"); never pass that on.
    if api_key and api_key in exc.message:
        _set_message(exc, exc.message.replace(api_key, "***"))


def _set_message(exc: ProviderError, message: str) -> None:
    exc.message = message
    exc.args = (message,)


def _cause(exc: Exception, api_key: str | None) -> Exception | None:
    # Keep the httpx exception as the cause for debugging, unless its text holds the key.
    return None if api_key and api_key in str(exc) else exc


def _without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
