"""No way in from another site: the Host allow-list, the same-origin check on changes, CORS only
when asked for, the Content-Security-Policy header on HTML, and single-user mode (which keeps
the first two, and is refused off loopback).

In process, with accounts on (``tests.auth_support``). A refused request must change nothing:
the database is compared before and after, and a fake upstream counts what reaches it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from ssechat.api import create_app
from ssechat.api.web import default_web_dir
from ssechat.config import Settings
from ssechat.fake_upstream import FakeUpstream

from .auth_support import (
    ORIGIN,
    PASSWORD,
    Account,
    admin_account,
    auth_client,
    auth_settings,
    db_path_of,
    db_snapshot,
    make_user,
)

pytestmark = pytest.mark.anyio

FAST = "fake-tokens-3"
LIVE = "fake-tokens-3+stall-2"
FOREIGN = "http://evil.example"


def code_of(response: httpx.Response) -> str:
    code: str = response.json()["error"]["code"]
    return code


# --- Host ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("allowed_hosts", "host", "answered"),
    [
        ("", "localhost:8000", True),
        ("", "127.0.0.1:8000", True),
        ("", "[::1]:8000", True),
        ("", "LOCALHOST", True),
        ("", "192.168.1.20:8000", True),  # the address it is bound to
        ("", "evil.example", False),
        ("", "localhost.evil.example:8000", False),
        ("", "192.168.1.21:8000", False),
        ("chat.example.org", "chat.example.org:443", True),
        ("chat.example.org", "localhost:8000", False),
        ("*", "evil.example", True),
    ],
)
async def test_a_foreign_host_is_refused_before_routing(
    tmp_path: Path, allowed_hosts: str, host: str, answered: bool
) -> None:
    settings = auth_settings(tmp_path, host="192.168.1.20", allowed_hosts=allowed_hosts)
    async with auth_client(settings) as client:
        for path in ("/api/health", "/no/such/route", "/api/conversations"):
            response = await client.get(path, headers={"Host": host})
            if answered:
                assert response.status_code != 400, (path, response.text)
            else:
                assert response.status_code == 400, (path, response.text)
                assert code_of(response) == "invalid_host"


async def test_a_request_without_a_host_is_refused(tmp_path: Path) -> None:
    app = create_app(auth_settings(tmp_path))
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.0",
        "method": "GET",
        "scheme": "http",
        "path": "/api/health",
        "raw_path": b"/api/health",
        "query_string": b"",
        "headers": [],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }
    await app(scope, receive, send)  # the guard answers before the app needs its lifespan
    assert sent[0]["status"] == 400


# --- Origin --------------------------------------------------------------------------------


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as fake:
        yield fake


@pytest.fixture
def settings(tmp_path: Path, upstream: FakeUpstream) -> Settings:
    return auth_settings(
        tmp_path,
        openai_base_url=upstream.base_url,
        openai_api_key="sk-sites-upstream-key",
        model=FAST,
        upstream_max_retries=0,
    )


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with auth_client(settings) as client:
        yield client


@pytest.fixture
async def user(client: httpx.AsyncClient) -> Account:
    admin = await admin_account(client)
    return await make_user(client, admin, "user@example.com", with_key=True)


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": FOREIGN},
        {"Origin": "null"},
        {"Origin": "https://test"},  # another scheme is another origin
        {"Origin": "http://test:8080"},
        {"Origin": FOREIGN, "Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
)
async def test_a_cross_site_change_with_the_cookie_is_refused_and_changes_nothing(
    client: httpx.AsyncClient,
    user: Account,
    settings: Settings,
    upstream: FakeUpstream,
    headers: dict[str, str],
) -> None:
    conversation = await client.post("/api/conversations", json={}, headers=user.cookie)
    cid = conversation.json()["id"]
    before, asked = db_snapshot(db_path_of(settings)), len(upstream.requests)
    attempts = [
        client.post("/api/conversations", json={}, headers={**user.cookie, **headers}),
        client.patch(
            f"/api/conversations/{cid}", json={"title": "x"}, headers={**user.cookie, **headers}
        ),
        client.post(
            f"/api/conversations/{cid}/messages",
            json={"content": "spend the key"},
            headers={**user.cookie, **headers},
        ),
        client.delete(f"/api/conversations/{cid}", headers={**user.cookie, **headers}),
        client.get("/api/chat", params={"message": "hi"}, headers={**user.cookie, **headers}),
        client.post("/api/keys", json={"name": "theirs"}, headers={**user.cookie, **headers}),
        client.post("/api/auth/logout", headers={**user.cookie, **headers}),
        # Signing a browser in to an account of another site's choosing is refused too.
        client.post(
            "/api/auth/login",
            json={"email": user.email, "password": PASSWORD},
            headers=headers,
        ),
    ]
    for attempt in attempts:
        response = await attempt
        assert response.status_code == 403, response.text
        assert code_of(response) == "forbidden"
        assert "set-cookie" not in response.headers
    assert db_snapshot(db_path_of(settings)) == before
    assert len(upstream.requests) == asked
    assert (await client.get("/api/auth/me", headers=user.cookie)).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": ORIGIN},
        {"Origin": ORIGIN.upper()},
        {"Sec-Fetch-Site": "same-origin"},
        {"Origin": ORIGIN, "Sec-Fetch-Site": "same-origin"},
        {},  # no browser: neither header
    ],
)
async def test_a_same_origin_change_with_the_cookie_goes_through(
    client: httpx.AsyncClient, user: Account, upstream: FakeUpstream, headers: dict[str, str]
) -> None:
    made = await client.post("/api/conversations", json={}, headers={**user.cookie, **headers})
    assert made.status_code == 201, made.text
    answer = await client.get(
        "/api/chat", params={"message": "hi"}, headers={**user.cookie, **headers}
    )
    assert answer.status_code == 200, answer.text
    assert answer.text.endswith("data: [DONE]\n\n")
    assert len(upstream.requests) == 1


async def test_an_api_key_is_exempt_from_the_origin_check(
    client: httpx.AsyncClient, user: Account, upstream: FakeUpstream
) -> None:
    foreign = {**user.bearer, "Origin": FOREIGN, "Sec-Fetch-Site": "cross-site"}
    made = await client.post("/api/conversations", json={}, headers=foreign)
    assert made.status_code == 201, made.text
    answer = await client.get("/api/chat", params={"message": "hi"}, headers=foreign)
    assert answer.status_code == 200, answer.text
    assert len(upstream.requests) == 1
    # A bogus "Bearer" does not buy a cookie its way past the check: it is not a key.
    bogus = {**user.cookie, "Authorization": "Bearer nothing", "Origin": FOREIGN}
    assert (await client.post("/api/conversations", json={}, headers=bogus)).status_code == 401


async def test_reading_cross_site_is_not_a_change(client: httpx.AsyncClient, user: Account) -> None:
    # GETs change nothing (but /api/chat, which starts a generation); what they answer no other
    # site can read without CORS.
    response = await client.get("/api/conversations", headers={**user.cookie, "Origin": FOREIGN})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers


# --- CORS ----------------------------------------------------------------------------------


async def test_no_cors_headers_by_default(client: httpx.AsyncClient, user: Account) -> None:
    preflight = await client.options(
        "/api/conversations",
        headers={
            "Origin": "http://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert not any(name.startswith("access-control-") for name in preflight.headers)
    made = await client.post(
        "/api/conversations", json={}, headers={**user.bearer, "Origin": "http://app.example"}
    )
    assert made.status_code == 201
    assert not any(name.startswith("access-control-") for name in made.headers)


async def test_named_cors_origins_get_cors_headers_without_credentials(tmp_path: Path) -> None:
    settings = auth_settings(tmp_path, cors_origins="http://app.example, https://b.example/")
    async with auth_client(settings) as client:
        admin = await admin_account(client)
        user = await make_user(client, admin, "user@example.com", with_key=True)
        preflight = await client.options(
            "/api/conversations",
            headers={
                "Origin": "http://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert preflight.status_code == 200, preflight.text
        assert preflight.headers["access-control-allow-origin"] == "http://app.example"
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
        assert "access-control-allow-credentials" not in preflight.headers

        for origin in ("http://app.example", "https://b.example"):
            made = await client.post(
                "/api/conversations", json={}, headers={**user.bearer, "Origin": origin}
            )
            assert made.status_code == 201, made.text
            assert made.headers["access-control-allow-origin"] == origin
            assert "access-control-allow-credentials" not in made.headers

        other = await client.get(
            "/api/conversations", headers={**user.bearer, "Origin": "http://other.example"}
        )
        assert "access-control-allow-origin" not in other.headers
        # Being named for CORS does not let an origin use the cookie.
        with_cookie = await client.post(
            "/api/conversations", json={}, headers={**user.cookie, "Origin": "http://app.example"}
        )
        assert with_cookie.status_code == 403


# --- Content-Security-Policy ---------------------------------------------------------------


class _MetaPolicy(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.policy: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "meta" and (values.get("http-equiv") or "").lower() == "content-security-policy":
            self.policy = values.get("content")


def directives(policy: str) -> dict[str, str]:
    found = {}
    for part in policy.split(";"):
        name, _, value = part.strip().partition(" ")
        if name:
            found[name.lower()] = " ".join(value.split())
    return found


async def test_html_answers_carry_the_builds_content_security_policy(tmp_path: Path) -> None:
    built = default_web_dir() / "index.html"
    if not built.is_file():
        pytest.skip("web/dist is not built (npm run build): no <meta> policy to compare with")
    parser = _MetaPolicy()
    parser.feed(built.read_text(encoding="utf-8"))
    assert parser.policy, f"no Content-Security-Policy <meta> in {built}"
    meta = directives(parser.policy)

    web = tmp_path / "web"
    web.mkdir()
    (web / "index.html").write_text("<!doctype html><title>dev build</title>", encoding="utf-8")
    (web / "app.js").write_text("console.log('hi')", encoding="utf-8")
    async with auth_client(auth_settings(tmp_path, web_dir=str(web))) as client:
        for path in ("/", "/index.html", "/settings/keys"):  # the last: a client-side route
            response = await client.get(path)
            assert response.status_code == 200, path
            assert response.headers["content-type"].startswith("text/html")
            header = directives(response.headers["content-security-policy"])
            # The header says one thing a <meta> cannot: who may frame the page.
            assert header.pop("frame-ancestors") == "'none'"
            assert header == meta, path
        script = await client.get("/app.js")
        assert script.headers["content-security-policy"] == "frame-ancestors 'none'"
        assert script.headers["x-content-type-options"] == "nosniff"

    # And the page shown when no UI is built.
    async with auth_client(auth_settings(tmp_path / "none")) as client:
        response = await client.get("/")
        header = directives(response.headers["content-security-policy"])
        header.pop("frame-ancestors")
        assert header == meta


# --- single-user mode ----------------------------------------------------------------------


async def test_accounts_off_on_loopback_is_one_implicit_user(tmp_path: Path) -> None:
    settings = auth_settings(tmp_path, headless_admin=False, auth="off")
    async with auth_client(settings) as client:
        status = (await client.get("/api/auth/status")).json()
        assert status["auth"] == "off"
        assert status["setup_required"] is False
        made = await client.post("/api/conversations", json={"title": "mine"})
        assert made.status_code == 201, made.text
        listing = (await client.get("/api/conversations")).json()["conversations"]
        assert [c["id"] for c in listing] == [made.json()["id"]]
        assert (await client.get("/api/auth/me")).status_code == 200
        # The Host and Origin checks still apply.
        before = db_snapshot(db_path_of(settings))
        foreign = await client.post("/api/conversations", json={}, headers={"Origin": FOREIGN})
        assert foreign.status_code == 403
        assert (
            await client.get("/api/chat", params={"message": "hi"}, headers={"Origin": FOREIGN})
        ).status_code == 403
        rebound = await client.get("/api/conversations", headers={"Host": "evil.example"})
        assert rebound.status_code == 400
        assert db_snapshot(db_path_of(settings)) == before


OFF_LOOPBACK = ["0.0.0.0", "::", "192.168.1.20", "chat.example.org"]


@pytest.mark.parametrize("host", OFF_LOOPBACK)
def test_accounts_off_is_refused_off_loopback(host: str) -> None:
    with pytest.raises(ValueError, match=r"SSECHAT_AUTH=off .* loopback address, not"):
        Settings(auth="off", host=host).validate()
    with pytest.raises(ValueError, match=r"SSECHAT_AUTH=off .* loopback"):
        Settings.from_env({"SSECHAT_AUTH": "off", "SSECHAT_HOST": host})


async def test_the_app_will_not_start_with_accounts_off_off_loopback(tmp_path: Path) -> None:
    # However its settings were made: a program (or a test) that builds Settings in code and
    # hands them to create_app skips from_env's validation.
    unsafe = Settings(
        auth="off", host="0.0.0.0", database_url=str(tmp_path / "chat.db"), web_dir=str(tmp_path)
    )
    with pytest.raises(ValueError, match=r"SSECHAT_AUTH=off .* loopback"):
        async with auth_client(unsafe):
            pass


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"])
def test_accounts_off_is_allowed_on_loopback(host: str) -> None:
    Settings(auth="off", host=host).validate()
