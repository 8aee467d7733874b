"""The provider's one transport end to end: proxies from the environment (a real forward proxy
on a loopback port), TLS inside a CONNECT tunnel, NO_PROXY, IPv6, credentials in the base URL,
and the one retry policy (a stale kept-alive connection is retried by the provider, counted).
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from pathlib import Path

import pytest

from ssechat.errors import (
    ProviderConnectionError,
    ProviderError,
    ProviderStatusError,
    ProviderTimeoutError,
)
from ssechat.fake_upstream import FakeUpstream, Scenario
from ssechat.fake_upstream.wire import generated_tokens
from ssechat.providers import Delta, GenerationParams, OpenAIProvider
from ssechat.providers.proxies import UnsupportedProxy, bypassed, parse_proxy, proxy_for

from .http1_support import (
    MESSAGES,
    OK_HEAD,
    SSE,
    RawServer,
    answering,
    chunked,
    drain_into,
    raw_server,
)
from .proxy_support import ForwardProxy

pytestmark = pytest.mark.anyio

KEY = "sk-proxy-test-key-0123456789"


@pytest.fixture
def proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The environment without any proxy setting, for the test to add its own."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


async def text_of(provider: OpenAIProvider, model: str = "m") -> str:
    got: list[Delta] = []
    async for delta in provider.stream(MESSAGES, model, GenerationParams()):
        got.append(delta)
    return "".join(d.text for d in got)


def tls_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


# --- through a real proxy ----------------------------------------------------------------------


async def test_http_proxy_carries_the_stream_in_absolute_form(
    anyio_backend: str, proxy_env: pytest.MonkeyPatch
) -> None:
    async with ForwardProxy() as proxy, FakeUpstream() as upstream:
        proxy_env.setenv("HTTP_PROXY", proxy.url)
        provider = OpenAIProvider(base_url=upstream.base_url, api_key=KEY)
        text = await text_of(provider, "fake-tokens-3")
        models = await provider.list_models()
        await provider.aclose()
    assert text == "".join(generated_tokens(3))
    assert models  # the models list went through the proxy too
    assert proxy.request_lines == [
        f"POST http://127.0.0.1:{upstream.port}/v1/chat/completions HTTP/1.1".encode(),
        f"GET http://127.0.0.1:{upstream.port}/v1/models HTTP/1.1".encode(),
    ]
    # The proxy forwarded them in origin form: the upstream saw ordinary requests.
    assert [r.path for r in upstream.requests] == ["/v1/chat/completions", "/v1/models"]
    assert upstream.requests[0].headers["authorization"] == f"Bearer {KEY}"


async def test_https_proxy_tunnels_tls_to_the_upstream(
    anyio_backend: str, proxy_env: pytest.MonkeyPatch, certificate: tuple[Path, Path]
) -> None:
    answer = OK_HEAD + b"transfer-encoding: chunked\r\n\r\n" + chunked(SSE)
    async with (
        ForwardProxy() as proxy,
        raw_server(answering(answer, answer), ssl=tls_context(certificate)) as upstream,
    ):
        proxy_env.setenv("HTTPS_PROXY", proxy.url)
        proxy_env.setenv("SSL_CERT_FILE", str(certificate[0]))
        provider = OpenAIProvider(base_url=f"https://localhost:{upstream.port}/v1", api_key=KEY)
        texts = [await text_of(provider), await text_of(provider)]
        await provider.aclose()
    assert texts == ["hi", "hi"]
    # One tunnel, kept alive for the second stream; the request itself was inside TLS.
    assert proxy.request_lines == [f"CONNECT localhost:{upstream.port} HTTP/1.1".encode()]
    assert all(KEY.encode() not in head for head in proxy.heads)
    assert [index for index, _ in upstream.requests] == [0, 0]
    assert f"authorization: Bearer {KEY}".encode() in upstream.requests[0][1]


async def test_no_proxy_sends_the_upstream_around_the_proxy(
    anyio_backend: str, proxy_env: pytest.MonkeyPatch
) -> None:
    async with ForwardProxy() as proxy, FakeUpstream() as upstream:
        proxy_env.setenv("HTTP_PROXY", proxy.url)
        proxy_env.setenv("NO_PROXY", "localhost,127.0.0.1")
        provider = OpenAIProvider(base_url=upstream.base_url)
        text = await text_of(provider, "fake-tokens-2")
        await provider.aclose()
    assert text == "".join(generated_tokens(2))
    assert proxy.heads == []
    assert len(upstream.requests) == 1


async def test_proxy_credentials_go_to_the_proxy_and_no_further(
    anyio_backend: str, proxy_env: pytest.MonkeyPatch
) -> None:
    expected = "Basic " + base64.b64encode(b"pr oxy:s3cr@t").decode()
    async with ForwardProxy(require_auth=expected) as proxy, FakeUpstream() as upstream:
        proxy_env.setenv("HTTP_PROXY", f"http://pr%20oxy:s3cr%40t@127.0.0.1:{proxy.port}")
        provider = OpenAIProvider(base_url=upstream.base_url)
        text = await text_of(provider, "fake-tokens-1")
        await provider.aclose()
    assert text == "".join(generated_tokens(1))
    assert "proxy-authorization" not in upstream.requests[0].headers


async def test_a_proxy_that_wants_credentials_is_a_clear_error(
    anyio_backend: str, proxy_env: pytest.MonkeyPatch, certificate: tuple[Path, Path]
) -> None:
    async with ForwardProxy(require_auth="Basic eDp5") as proxy, FakeUpstream() as upstream:
        proxy_env.setenv("HTTP_PROXY", proxy.url)
        proxy_env.setenv("HTTPS_PROXY", proxy.url)
        plain = OpenAIProvider(base_url=upstream.base_url, max_retries=0)
        with pytest.raises(ProviderStatusError, match="proxy asked for credentials") as status:
            await text_of(plain)
        tunnelled = OpenAIProvider(base_url=f"https://localhost:{upstream.port}/v1", max_retries=0)
        with pytest.raises(ProviderConnectionError, match=r"refused the tunnel.*407") as refused:
            await text_of(tunnelled)
        for provider in (plain, tunnelled):
            await provider.aclose()
    assert status.value.status == 407
    assert refused.value.retryable is True  # a proxy may let us through later
    assert upstream.requests == []


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("HTTPS_PROXY", "socks5://user:hunter2@127.0.0.1:1080", "uses socks5://"),
        ("HTTPS_PROXY", "https://user:hunter2@127.0.0.1:3129", "uses https://"),
        ("ALL_PROXY", "http://user:hunter2@127.0.0.1:notaport", "not a valid URL"),
    ],
)
async def test_an_unusable_proxy_setting_fails_clearly_without_its_password(
    anyio_backend: str, proxy_env: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    proxy_env.setenv(variable, value)
    provider = OpenAIProvider(base_url="https://api.example.com/v1", max_retries=3)
    with pytest.raises(ProviderConnectionError, match=message) as info:
        await text_of(provider)
    await provider.aclose()
    assert info.value.retryable is False
    assert "hunter2" not in str(info.value)
    assert "(after" not in str(info.value)  # not retried


# --- proxy settings, read as curl reads them -----------------------------------------------------


@pytest.mark.parametrize(
    ("host", "port", "no_proxy", "expected"),
    [
        ("api.example.com", 443, "example.com", True),
        ("api.example.com", 443, ".example.com", True),
        ("api.example.com", 443, "*.example.com", True),
        ("example.com", 443, ".example.com", True),
        ("badexample.com", 443, "example.com", False),
        ("api.example.com", 443, "other.org, example.com", True),
        ("api.example.com", 443, "api.example.com:8443", False),
        ("api.example.com", 8443, "api.example.com:8443", True),
        ("10.1.2.3", 80, "10.0.0.0/8", True),
        ("11.1.2.3", 80, "10.0.0.0/8", False),
        ("::1", 80, "::1", True),
        ("::1", 80, "[::1]:80", True),
        ("fd00::5", 80, "fd00::/8", True),
        ("anything.test", 80, "*", True),
        ("anything.test", 80, "", False),
        ("API.Example.COM", 80, "example.com", True),
    ],
)
def test_no_proxy_rules(host: str, port: int, no_proxy: str, expected: bool) -> None:
    assert bypassed(host, port, no_proxy) is expected


def test_which_proxy_serves_which_scheme() -> None:
    proxies = {"http": "http://p1:3128", "https": "p2:8080", "all": "http://p3"}
    assert proxy_for("http", "h", 80, proxies) == parse_proxy("http://p1:3128", "HTTP_PROXY")
    https = proxy_for("https", "h", 443, proxies)
    assert https is not None
    assert (https.host, https.port) == ("p2", 8080)
    only_all = proxy_for("https", "h", 443, {"all": "http://p3"})
    assert only_all is not None
    assert (only_all.host, only_all.port) == ("p3", 80)
    assert proxy_for("https", "h", 443, {"http": "http://p1"}) is None
    assert proxy_for("https", "h", 443, {**proxies, "no": "h"}) is None
    with pytest.raises(UnsupportedProxy, match="uses socks5://"):
        proxy_for("http", "h", 80, {"http": "socks5://p"})
    assert "secret" not in repr(parse_proxy("http://u:secret@p:1", "HTTP_PROXY"))


# --- the direct path ---------------------------------------------------------------------------


async def test_ipv6_base_url(anyio_backend: str) -> None:
    upstream = FakeUpstream()
    try:
        await upstream.start("::1")
    except OSError:
        pytest.skip("no IPv6 loopback")
    async with upstream:
        provider = OpenAIProvider(base_url=upstream.base_url)
        text = await text_of(provider, "fake-tokens-3")
        await provider.aclose()
    assert text == "".join(generated_tokens(3))
    assert upstream.requests[0].headers["host"] == f"[::1]:{upstream.port}"


async def test_userinfo_is_sent_as_basic_auth_in_place_of_the_key(anyio_backend: str) -> None:
    async with FakeUpstream() as upstream:
        url = f"http://us%20er:p%40ss@127.0.0.1:{upstream.port}/v1"
        provider = OpenAIProvider(base_url=url, api_key="sk-key")
        await text_of(provider, "fake-tokens-1")
        await provider.aclose()
    headers = upstream.requests[0].headers
    assert headers["authorization"] == "Basic " + base64.b64encode(b"us er:p@ss").decode()
    assert headers["host"] == f"127.0.0.1:{upstream.port}"
    assert "p@ss" not in repr(provider)
    assert "p%40ss" not in repr(provider)


# --- the one retry policy ----------------------------------------------------------------------


def closing_on_request(number: int) -> object:
    """A handler answering every request, except the ``number``-th of all (1-based), on which
    connection 0 closes without a byte of answer: the keep-alive race."""
    answer = OK_HEAD + b"transfer-encoding: chunked\r\n\r\n" + chunked(SSE)

    async def handler(
        server: RawServer, index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while await server.read_request(index, reader) is not None:
            if index == 0 and len(server.requests) == number:
                return
            writer.write(answer)

    return handler


async def test_a_stale_connection_is_retried_at_once_and_counted(anyio_backend: str) -> None:
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    async with raw_server(closing_on_request(2)) as s:
        provider = OpenAIProvider(
            base_url=f"http://127.0.0.1:{s.port}/v1", max_retries=1, sleep=sleep
        )
        assert await text_of(provider) == "hi"
        assert await text_of(provider) == "hi"  # the pooled connection was stale: retried
        await provider.aclose()
    assert [index for index, _ in s.requests] == [0, 0, 1]
    assert delays == []  # at once: the request never reached the server


async def test_a_stale_connection_uses_up_a_retry(anyio_backend: str) -> None:
    async with raw_server(closing_on_request(2)) as s:
        provider = OpenAIProvider(base_url=f"http://127.0.0.1:{s.port}/v1", max_retries=0)
        assert await text_of(provider) == "hi"
        with pytest.raises(ProviderConnectionError, match="kept-alive connection was closed"):
            await text_of(provider)
        await provider.aclose()
    assert [index for index, _ in s.requests] == [0, 0]  # nothing below the provider retried


async def test_provider_errors_through_http1(anyio_backend: str) -> None:
    async with FakeUpstream(Scenario(tokens=5, stall_after=1)) as upstream:
        provider = OpenAIProvider(base_url=upstream.base_url, idle_timeout=0.2, max_retries=0)
        got: list[Delta] = []
        with pytest.raises(ProviderTimeoutError, match=r"nothing for 0\.2 s after the answer"):
            await drain_into(got, provider)
        await provider.aclose()
        with pytest.raises(ProviderError, match="closed"):
            await provider.stream(MESSAGES, "m", GenerationParams()).__anext__()
    assert len(got) == 1
