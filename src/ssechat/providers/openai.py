"""The OpenAI-compatible provider: ``POST {base_url}/chat/completions``, streamed.

Works with anything that speaks the chat-completions wire format (OpenAI, Azure, Ollama, vLLM,
llama.cpp, LM Studio…). The body's bytes go through ``chunks.FrameSplitter`` and each frame
through ``orjson``: no SDK, no model classes, one ``Delta`` per useful frame, because the whole
per-token budget of the server is a few tens of microseconds.

Transports. A provider that owns its connections streams with ``http1``, a small asyncio
HTTP/1.1 client made for this path (no task, no timer and no cancel scope per read). httpx
carries everything else: an injected ``client=`` (a shared pool, a test's mock transport),
``list_models``, and every request when httpx would send it through a proxy (``HTTP_PROXY``,
``HTTPS_PROXY``, ``ALL_PROXY``, ``NO_PROXY``, read once, by httpx's own rules) or refuse its URL
(then with today's message). Both share the SSL context (httpx's: certifi, ``SSL_CERT_FILE``),
the retry rules, the status and error handling and the frame parsing; credentials in the base
URL are sent as Basic auth, in place of the key, as httpx does.

Retries follow the openai SDK's rules, but only before the first ``Delta`` is yielded: 408, 409,
429, 5xx, connection errors and timeouts are tried again up to ``max_retries`` times, after
``retry-after-ms`` / ``retry-after`` when the server asks for 0–60 s, else after an exponential
backoff with jitter; ``x-should-retry: true/false`` overrides the status. Once text has been
yielded nothing is retried (the caller already has part of an answer): a broken connection
raises ``ProviderConnectionError`` and a silent one ``ProviderTimeoutError``, both keeping
``retryable=True`` because a new request may well succeed, just not transparently.

httpx connections: httpcore 1.0's pool does work proportional to (connections x queued requests)
on every request and every close (encode/httpcore#1035), which at a thousand concurrent streams
costs more CPU than the streams themselves. So an owned httpx pool is split into shards, clients
opened on demand that each carry at most ``_SHARD_STREAMS`` streams at a time.

This module must never read the environment beyond the proxy settings httpx itself honours, let
an httpx, http1 or orjson exception escape, or put the API key (or a password of the base URL)
in an exception message, a repr or a log line.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import logging
import random
import time
import urllib.request
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from typing import Any, Protocol
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
from ssechat.providers import http1
from ssechat.providers.base import ChatMessage, Delta, GenerationParams
from ssechat.providers.chunks import FrameSplitter, completion_deltas, error_detail, read_deltas
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
# Streams one pooled httpx client carries before another is opened (see the module docstring).
_SHARD_STREAMS = 32
# Idle connections http1 keeps (each for at most 5 s): above any burst of streams worth keeping.
_MAX_IDLE = 1024

_TRANSPORT_ERRORS = (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, http1.HTTPError)


class _Shard:
    __slots__ = ("active", "client")

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.active = 0


class _Body(Protocol):
    """A response as the streaming code sees it, whichever transport carried it.

    ``http1.Response`` is one; ``_HttpxBody`` makes an httpx response one.
    """

    @property
    def status(self) -> int: ...

    @property
    def reason(self) -> str: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    async def receive(self) -> bytes:
        """The next piece of the body; ``b""`` at its end."""
        ...

    async def read(self, limit: int) -> bytes: ...

    async def drain(self, limit: int, seconds: float) -> bool: ...

    async def aclose(self) -> None: ...


class OpenAIProvider:
    """Streams chat completions from one OpenAI-compatible API.

    ``client`` lets several providers share an httpx connection pool (used as it is, unsharded);
    the connections and clients created here are owned and closed by ``aclose()``.
    ``backoff_initial`` and ``backoff_max`` (seconds) are the SDK's 0.5 and 8 by default; tests
    make them small.
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
        if api_key is not None and not (api_key.isprintable() and api_key.isascii()):
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
            # A compressed body would cost a decompression per read.
            "accept-encoding": "identity",
            "user-agent": f"ssechat/{__version__}",
            **auth,
        }
        self._chat_url = f"{self.base_url}/chat/completions"
        self._models_url = f"{self.base_url}/models"
        self._shown_url = _without_userinfo(self.base_url)
        self._direct: http1.Client | None = None
        endpoint = (
            _direct_endpoint(self._chat_url, self._stream_headers) if client is None else None
        )
        if endpoint is not None:
            self._origin, self._head = endpoint
            self._direct = http1.Client(
                ssl_context=self._ssl_context,
                connect_timeout=connect_timeout,
                idle_timeout=idle_timeout,
                # Bursts of streams must find their connections again, as httpx's shards do.
                max_idle=_MAX_IDLE,
            )

    def __repr__(self) -> str:
        key = "<set>" if self._api_key else None
        return f"OpenAIProvider(base_url={self._shown_url!r}, api_key={key})"

    async def aclose(self) -> None:
        self._closed = True
        if self._direct is not None:
            self._direct.close()
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
        # Kept for the stream's life (retries): a copy sized to fit, as orjson's own buffer is
        # 4 KiB however short the body.
        content = bytes(memoryview(orjson.dumps(payload)))
        if self._closed or (not self._owns_clients and self._shards[0].client.is_closed):
            # httpx would raise a bare RuntimeError.
            raise ProviderConnectionError("the upstream provider is closed", retryable=False)
        shard = self._acquire() if self._direct is None else None
        try:
            retries = 0
            while True:
                yielded = False
                body: _Body | None = None
                error: ProviderError
                try:
                    body = await self._open(shard, content)
                    if _is_json(body.headers):  # the server ignored "stream": a whole completion
                        for delta in completion_deltas(await body.read(_JSON_BODY_LIMIT)):
                            yielded = True
                            yield delta
                        return
                    splitter = FrameSplitter()
                    while chunk := await body.receive():
                        deltas, done, failure = read_deltas(splitter, chunk)
                        for delta in deltas:
                            yielded = True
                            yield delta
                        if failure is not None:
                            raise failure
                        if done:
                            await body.drain(_DRAIN_LIMIT, _DRAIN_TIMEOUT)
                            return
                    # The body ended without [DONE]: what arrived is the whole answer.
                    return
                except ProviderError as exc:
                    error = exc
                except _TRANSPORT_ERRORS as exc:
                    error = self._transport_error(exc, yielded)
                    error.__cause__ = _cause(exc, self._api_key)
                except EventTooLargeError as exc:
                    error = ProviderStreamError(f"upstream sent an oversized event: {exc}")
                finally:
                    # A cancelled caller must still close the upstream response now, so the
                    # connection is dropped (or pooled) at once, not left half-read.
                    if body is not None:
                        await body.aclose()
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
            if shard is not None:
                shard.active -= 1

    async def _open(self, shard: _Shard | None, content: bytes) -> _Body:
        """Send the request; the response, its body unread, if the status is a success."""
        body: _Body
        if shard is None:
            assert self._direct is not None
            head = self._head + b"content-length: %d\r\n\r\n" % len(content)
            body = await self._direct.post(self._origin, head, content)
        else:
            request = shard.client.build_request(
                "POST",
                self._chat_url,
                content=content,
                headers=self._stream_headers,
                timeout=self._timeout,
            )
            body = _HttpxBody(await shard.client.send(request, stream=True))
        if not 200 <= body.status < 300:
            try:
                raise await self._status_error(body)
            finally:
                await body.aclose()
        return body

    def _retry_delay(self, retries: int, exc: ProviderError) -> float:
        retry_after = exc.retry_after if isinstance(exc, ProviderStatusError) else None
        if retry_after is not None and 0 < retry_after <= _MAX_RETRY_AFTER:
            return retry_after
        backoff = min(self.backoff_initial * 2.0**retries, self.backoff_max)
        return backoff * (1 - 0.25 * random.random())

    async def _status_error(self, body: _Body) -> ProviderStatusError:
        status = body.status
        detail = ""
        with contextlib.suppress(*_TRANSPORT_ERRORS):  # the status says enough
            detail = error_detail(await body.read(_ERROR_BODY_LIMIT))
        what = f"HTTP {status} {body.reason}".rstrip()
        cls = ProviderStatusError
        if status in (401, 403):
            cls, what = ProviderAuthError, f"upstream rejected the credentials ({what})"
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

    def _transport_error(self, exc: Exception, yielded: bool) -> ProviderError:
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        during = " after the answer began" if yielded else ""
        if isinstance(exc, httpx.ReadTimeout | http1.ReadTimeout):
            return ProviderTimeoutError(
                f"upstream sent nothing for {self.idle_timeout:g} s{during}"
            )
        if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout | http1.ConnectTimeout):
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
        if isinstance(exc, http1.ClientClosed):
            return ProviderConnectionError("the upstream provider is closed", retryable=False)
        if isinstance(exc, httpx.ConnectError | http1.ConnectError):
            return ProviderConnectionError(
                f"cannot connect to the upstream at {self._shown_url} ({detail})"
            )
        if isinstance(exc, httpx.TransportError | http1.ConnectionBroken):
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


class _HttpxBody:
    """An httpx streaming response as a ``_Body``."""

    __slots__ = ("_chunks", "_response", "headers", "reason", "status")

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self._chunks: AsyncIterator[bytes] | None = None
        self.status = response.status_code
        self.reason = response.reason_phrase
        self.headers: Mapping[str, str] = response.headers

    async def receive(self) -> bytes:
        chunks = self._chunks
        if chunks is None:
            encoding = self.headers.get("content-encoding", "identity")
            raw = encoding.lower() in ("identity", "")
            response = self._response
            chunks = self._chunks = response.aiter_raw() if raw else response.aiter_bytes()
        async for chunk in chunks:
            if chunk:
                return chunk
        return b""

    async def read(self, limit: int) -> bytes:
        parts: list[bytes] = []
        size = 0
        async for part in self._response.aiter_bytes():
            parts.append(part)
            size += len(part)
            if size >= limit:
                break
        return b"".join(parts)[:limit]

    async def drain(self, limit: int, seconds: float) -> bool:
        received = 0
        try:
            with anyio.move_on_after(seconds):
                while chunk := await self.receive():
                    received += len(chunk)
                    if received > limit:
                        return False
                return True
        except (httpx.HTTPError, httpx.StreamError):
            pass  # the answer is complete; only the connection is lost
        return False

    async def aclose(self) -> None:
        # Shielded: a cancelled caller must still close the response now, so the connection
        # is dropped (or pooled) at once, not left half-read.
        with anyio.CancelScope(shield=True):
            aclose = getattr(self._chunks, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(httpx.HTTPError, httpx.StreamError):
                    await aclose()
            await self._response.aclose()


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


def _is_json(headers: Mapping[str, str]) -> bool:
    kind = headers.get("content-type", "")
    return kind.split(";", 1)[0].strip().lower() == "application/json"


def _direct_endpoint(url: str, headers: Mapping[str, str]) -> tuple[http1.Origin, bytes] | None:
    """Where ``http1`` sends the chat requests, and their head but for the content length; None
    when httpx must carry them: a URL it would refuse (it says why) or send through a proxy."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return None
    scheme = parsed.scheme
    if scheme not in ("http", "https") or not parsed.raw_host or _proxied(parsed):
        return None
    port = parsed.port or (443 if scheme == "https" else 80)
    fields = {"host": parsed.netloc.decode("ascii"), **headers, "connection": "keep-alive"}
    if parsed.username or parsed.password:
        # As httpx does: credentials in the URL are sent as Basic auth, in place of the key.
        userpass = f"{parsed.username}:{parsed.password}".encode()
        fields["authorization"] = f"Basic {base64.b64encode(userpass).decode()}"
    lines = "".join(f"{name}: {value}\r\n" for name, value in fields.items())
    head = b"POST " + parsed.raw_path + b" HTTP/1.1\r\n" + lines.encode("ascii")
    return http1.Origin(scheme, parsed.raw_host.decode("ascii"), port), head


def _proxied(url: httpx.URL) -> bool:
    """Whether httpx, reading the environment as it does by default, would send ``url``
    through a proxy (its own rules: the most specific matching pattern wins)."""
    try:
        from httpx._utils import URLPattern, get_environment_proxies
    except ImportError:  # pragma: no cover - another httpx: any proxy setting means httpx
        return bool(urllib.request.getproxies())
    mounts = sorted(
        ((URLPattern(key), proxy) for key, proxy in get_environment_proxies().items()),
        key=lambda mount: mount[0],
    )
    return next((proxy is not None for pattern, proxy in mounts if pattern.matches(url)), False)


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


def _without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
