"""Accounts through the API: first-run setup, sign-in and its limits, sessions, passwords, the
admins' work, API keys and the sign-up policies.

Every test runs the app in process with accounts on (``tests.auth_support``); a request carries
exactly the credentials the test puts in its headers. Where a refusal must change nothing, a
plain-SQL snapshot of the database is compared before and after.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ssechat.config import Settings

from .auth_support import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    PASSWORD,
    Account,
    admin_account,
    app_of,
    app_routes,
    auth_client,
    auth_settings,
    bearer,
    client_for,
    cookie_header,
    create_key,
    db_path_of,
    db_snapshot,
    make_pending,
    make_user,
    session_token,
    set_status,
    sign_in,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return auth_settings(tmp_path)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with auth_client(settings) as client:
        yield client


@pytest.fixture
async def admin(client: httpx.AsyncClient) -> Account:
    return await admin_account(client)


def code_of(response: httpx.Response) -> str:
    code: str = response.json()["error"]["code"]
    return code


def cookie_attributes(response: httpx.Response) -> dict[str, str]:
    """The attributes of the session's Set-Cookie, names lowercased (``httponly`` -> "")."""
    for header in response.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        if name.strip() == "ssechat_session":
            attributes = {}
            for part in rest.split(";")[1:]:
                key, _, value = part.strip().partition("=")
                attributes[key.lower()] = value
            return attributes
    raise AssertionError(f"no session cookie in {response.headers.get_list('set-cookie')}")


# --- first-run setup -----------------------------------------------------------------------


async def test_before_setup_every_api_but_health_and_status_answers_401(tmp_path: Path) -> None:
    # Sign-up too, whatever the policy: with no account yet, there is nobody to approve one
    # and nothing to join; the one way in is the setup link.
    settings = auth_settings(tmp_path, headless_admin=False)
    bodies: dict[str, Any] = {
        "/api/auth/setup": {"token": "wrong", "email": "a@example.com", "password": PASSWORD},
        "/api/auth/login": {"email": "a@example.com", "password": PASSWORD},
        "/api/auth/signup": {"email": "a@example.com", "password": PASSWORD},
    }
    public = {("GET", "/api/health"), ("GET", "/api/auth/status")}
    async with auth_client(settings) as client:
        routes = sorted(r for r in app_routes(app_of(client)) if r[1].startswith("/api/"))
        assert len(routes) > 20
        wrong = []
        for method, template in routes:
            path = template.replace("{", "").replace("}", "")  # any id: none exists
            body = bodies.get(template)
            response = await client.request(
                method, path, **({"json": body} if body is not None else {})
            )
            expected = 200 if (method, template) in public else 401
            if response.status_code != expected:
                wrong.append(f"{method} {template}: {response.status_code} {response.text}")
        assert wrong == []
        assert (await client.get("/api/auth/status")).json()["setup_required"] is True


async def test_setup_makes_the_first_admin_once(tmp_path: Path) -> None:
    settings = auth_settings(tmp_path, headless_admin=False)
    links: list[str] = []
    async with auth_client(settings, on_setup_link=links.append) as client:
        assert len(links) == 1
        prefix = "http://127.0.0.1:8000/setup#token="
        assert links[0].startswith(prefix)
        token = links[0][len(prefix) :]
        assert len(token) >= 22  # at least 128 bits, URL-safe
        status = (await client.get("/api/auth/status")).json()
        assert status == {"auth": "on", "setup_required": True, "signup": "closed"}

        # A wrong token is refused and changes nothing.
        before = db_snapshot(db_path_of(settings))
        refused = await client.post(
            "/api/auth/setup",
            json={"token": token[:-2] + "xx", "email": "boss@example.com", "password": PASSWORD},
        )
        assert refused.status_code == 401
        assert code_of(refused) == "unauthenticated"
        assert session_token(refused) is None
        assert db_snapshot(db_path_of(settings)) == before

        made = await client.post(
            "/api/auth/setup",
            json={"token": token, "email": "Boss@Example.com", "password": PASSWORD, "name": "B"},
        )
        assert made.status_code == 201, made.text
        me = made.json()
        assert me["role"] == "admin"
        assert me["name"] == "B"
        attributes = cookie_attributes(made)
        assert "httponly" in attributes
        assert attributes["samesite"].lower() == "lax"
        assert attributes["path"] == "/"
        assert "secure" not in attributes  # plain http
        signed_in = cookie_header(session_token(made) or "")
        assert (await client.get("/api/auth/me", headers=signed_in)).json() == me
        assert (await client.get("/api/auth/status")).json()["setup_required"] is False

        # The token is spent: it makes no second admin.
        again = await client.post(
            "/api/auth/setup",
            json={"token": token, "email": "thief@example.com", "password": PASSWORD},
        )
        assert again.status_code == 401
        users = (await client.get("/api/admin/users", headers=signed_in)).json()["users"]
        assert [u["email"] for u in users] == ["Boss@Example.com"]


async def test_the_cookie_is_secure_over_https_from_a_trusted_proxy_only(tmp_path: Path) -> None:
    settings = auth_settings(tmp_path, trusted_proxies="10.0.0.7")
    credentials = {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    https = {"X-Forwarded-Proto": "https"}
    async with auth_client(settings, client_address=("10.0.0.7", 41000)) as proxied:
        through_proxy = await proxied.post("/api/auth/login", json=credentials, headers=https)
        assert through_proxy.status_code == 200, through_proxy.text
        assert "secure" in cookie_attributes(through_proxy)
        plain = await proxied.post("/api/auth/login", json=credentials)
        assert "secure" not in cookie_attributes(plain)
        async with client_for(app_of(proxied), ("192.0.2.9", 41000)) as direct:
            claimed = await direct.post("/api/auth/login", json=credentials, headers=https)
            assert claimed.status_code == 200, claimed.text
            assert "secure" not in cookie_attributes(claimed)


# --- signing in ----------------------------------------------------------------------------


async def test_login_tells_nothing_about_which_emails_exist(client: httpx.AsyncClient) -> None:
    unknown = await client.post(
        "/api/auth/login", json={"email": "nobody@example.com", "password": ADMIN_PASSWORD}
    )
    wrong = await client.post(
        "/api/auth/login", json={"email": ADMIN_EMAIL, "password": "not the password"}
    )
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json() == wrong.json()
    assert code_of(wrong) == "unauthenticated"
    assert session_token(unknown) is None
    assert session_token(wrong) is None


async def test_login_email_is_case_insensitive(client: httpx.AsyncClient) -> None:
    headers = await sign_in(client, "  " + ADMIN_EMAIL.upper(), ADMIN_PASSWORD)
    assert (await client.get("/api/auth/me", headers=headers)).json()["email"] == ADMIN_EMAIL


async def test_pending_and_disabled_accounts_cannot_sign_in(tmp_path: Path) -> None:
    async with auth_client(auth_settings(tmp_path, signup="approval")) as client:
        admin = await admin_account(client)
        await make_pending(client, "waiting@example.com")  # checks the 403, without a cookie
        disabled = await make_user(client, admin, "gone@example.com", signed_in=False)
        await set_status(client, admin, disabled.id, "disabled")
        login = {"email": disabled.email, "password": PASSWORD}
        refused = await client.post("/api/auth/login", json=login)
        assert refused.status_code == 403
        assert code_of(refused) == "forbidden"
        assert session_token(refused) is None
        # Only the right password learns the account's state.
        guessed = await client.post(
            "/api/auth/login", json={"email": disabled.email, "password": "a wrong guess!"}
        )
        assert guessed.status_code == 401


# --- sessions and passwords ----------------------------------------------------------------


async def test_logout_ends_the_session_at_once(client: httpx.AsyncClient) -> None:
    first = await sign_in(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    second = await sign_in(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert (await client.get("/api/auth/me", headers=first)).status_code == 200
    out = await client.post("/api/auth/logout", headers=first)
    assert out.status_code == 204
    assert cookie_attributes(out).get("max-age") == "0"  # the browser drops it too
    gone = await client.get("/api/auth/me", headers=first)
    assert gone.status_code == 401
    assert code_of(gone) == "unauthenticated"
    assert (await client.get("/api/auth/me", headers=second)).status_code == 200


async def test_a_new_password_ends_other_sessions_and_keys_but_not_this_one(
    client: httpx.AsyncClient, admin: Account, settings: Settings
) -> None:
    user = await make_user(client, admin, "user@example.com", with_key=True)
    other_session = await sign_in(client, user.email, user.password)
    change = {"current_password": "not my password", "new_password": "a brand new password"}

    before = db_snapshot(db_path_of(settings))
    wrong = await client.post("/api/auth/password", json=change, headers=user.cookie)
    assert wrong.status_code == 403
    assert db_snapshot(db_path_of(settings)) == before
    assert (await client.get("/api/auth/me", headers=other_session)).status_code == 200

    change["current_password"] = user.password
    changed = await client.post("/api/auth/password", json=change, headers=user.cookie)
    assert changed.status_code == 204, changed.text
    assert (await client.get("/api/auth/me", headers=user.cookie)).status_code == 200
    assert (await client.get("/api/auth/me", headers=other_session)).status_code == 401
    assert (await client.get("/api/auth/me", headers=user.bearer)).status_code == 401
    old = await client.post("/api/auth/login", json={"email": user.email, "password": PASSWORD})
    assert old.status_code == 401
    await sign_in(client, user.email, "a brand new password")


async def test_passwords_must_be_8_to_256_characters(
    client: httpx.AsyncClient, admin: Account, settings: Settings
) -> None:
    before = db_snapshot(db_path_of(settings))
    for password in ("short", "x" * 257):
        made = await client.post(
            "/api/admin/users",
            json={"email": "new@example.com", "password": password},
            headers=admin.cookie,
        )
        assert made.status_code == 422, made.text
    assert db_snapshot(db_path_of(settings)) == before


# --- admins --------------------------------------------------------------------------------


async def test_admins_create_approve_disable_enable_promote_reset_and_delete(
    tmp_path: Path,
) -> None:
    async with auth_client(auth_settings(tmp_path, signup="approval")) as client:
        admin = await admin_account(client)
        made = await client.post(
            "/api/admin/users",
            json={"email": "made@example.com", "password": PASSWORD, "name": "M"},
            headers=admin.cookie,
        )
        assert made.status_code == 201, made.text
        info = made.json()
        assert {k: info[k] for k in ("email", "name", "role", "status")} == {
            "email": "made@example.com",
            "name": "M",
            "role": "user",
            "status": "active",
        }
        assert PASSWORD not in made.text
        user = Account(id=info["id"], email="made@example.com", password=PASSWORD)
        headers = await sign_in(client, user.email, PASSWORD)

        # approve
        await make_pending(client, "waiting@example.com")
        users = (await client.get("/api/admin/users", headers=admin.cookie)).json()["users"]
        waiting = next(u for u in users if u["email"] == "waiting@example.com")
        assert waiting["status"] == "pending"
        await set_status(client, admin, waiting["id"], "active")
        await sign_in(client, "waiting@example.com", PASSWORD)

        # disable: the session ends at once, and signing in is refused; enable: it works again
        disabled = await set_status(client, admin, user.id, "disabled")
        assert disabled.json()["status"] == "disabled"
        assert (await client.get("/api/auth/me", headers=headers)).status_code == 401
        login = {"email": user.email, "password": PASSWORD}
        assert (await client.post("/api/auth/login", json=login)).status_code == 403
        await set_status(client, admin, user.id, "active")
        headers = await sign_in(client, user.email, PASSWORD)

        # role: a user is refused the users list until made an admin
        assert (await client.get("/api/admin/users", headers=headers)).status_code == 403
        promoted = await client.patch(
            f"/api/admin/users/{user.id}", json={"role": "admin"}, headers=admin.cookie
        )
        assert promoted.json()["role"] == "admin"
        assert (await client.get("/api/admin/users", headers=headers)).status_code == 200
        assert (await client.get("/api/auth/me", headers=headers)).json()["role"] == "admin"

        # reset the password: the old one and the sessions end
        reset = await client.patch(
            f"/api/admin/users/{user.id}",
            json={"password": "chosen by the admin"},
            headers=admin.cookie,
        )
        assert reset.status_code == 200
        assert "chosen by the admin" not in reset.text
        assert (await client.get("/api/auth/me", headers=headers)).status_code == 401
        assert (await client.post("/api/auth/login", json=login)).status_code == 401
        headers = await sign_in(client, user.email, "chosen by the admin")

        # delete: the account, its sessions and its conversations go
        conversation = await client.post("/api/conversations", json={}, headers=headers)
        assert conversation.status_code == 201
        deleted = await client.delete(f"/api/admin/users/{user.id}", headers=admin.cookie)
        assert deleted.status_code == 204
        assert (await client.get("/api/auth/me", headers=headers)).status_code == 401
        users = (await client.get("/api/admin/users", headers=admin.cookie)).json()["users"]
        assert user.id not in {u["id"] for u in users}
        again = await client.delete(f"/api/admin/users/{user.id}", headers=admin.cookie)
        assert again.status_code == 404
        rows = db_snapshot(db_path_of(app_of(client).state.settings))
        assert conversation.json()["id"] not in repr(rows["conversations"])


async def test_the_last_active_admin_stays_and_no_admin_disables_themselves(
    client: httpx.AsyncClient, admin: Account, settings: Settings
) -> None:
    async def patch(who: Account, user_id: str, change: dict[str, str]) -> httpx.Response:
        return await client.patch(f"/api/admin/users/{user_id}", json=change, headers=who.cookie)

    before = db_snapshot(db_path_of(settings))
    demoted = await patch(admin, admin.id, {"role": "user"})
    assert demoted.status_code == 409
    assert code_of(demoted) == "conflict"
    assert (await patch(admin, admin.id, {"status": "disabled"})).status_code == 409
    assert db_snapshot(db_path_of(settings)) == before

    second = await make_user(client, admin, "second@example.com", role="admin")
    # Another admin exists, and still no admin disables or deletes their own account.
    for change in ({"status": "disabled"}, {"status": "pending"}):
        refused = await patch(admin, admin.id, change)
        assert refused.status_code == 409, refused.text
    assert (
        await client.delete(f"/api/admin/users/{admin.id}", headers=admin.cookie)
    ).status_code == 409
    assert (await client.get("/api/auth/me", headers=admin.cookie)).status_code == 200

    # Once the first is disabled, the second is the last active admin.
    assert (await patch(second, admin.id, {"status": "disabled"})).status_code == 200
    last = await patch(second, second.id, {"role": "user"})
    assert last.status_code == 409
    assert (await client.get("/api/admin/users", headers=second.cookie)).status_code == 200


async def test_duplicate_emails_are_refused_in_any_case(tmp_path: Path) -> None:
    async with auth_client(auth_settings(tmp_path, signup="open")) as client:
        admin = await admin_account(client)
        for email in (ADMIN_EMAIL, ADMIN_EMAIL.upper(), " Admin@Example.COM"):
            made = await client.post(
                "/api/admin/users",
                json={"email": email, "password": PASSWORD},
                headers=admin.cookie,
            )
            assert made.status_code == 409, made.text
            signed_up = await client.post(
                "/api/auth/signup", json={"email": email, "password": PASSWORD}
            )
            assert signed_up.status_code == 409, signed_up.text
            assert code_of(signed_up) == "conflict"


# --- API keys ------------------------------------------------------------------------------


async def test_a_key_is_shown_once_listed_by_prefix_and_works_only_as_bearer(
    client: httpx.AsyncClient, admin: Account
) -> None:
    user = await make_user(client, admin, "programs@example.com")
    made = await create_key(client, user.cookie, "my script")
    key = made["key"]
    assert key.startswith("ssk_")
    assert made["prefix"] == key[:12]
    assert made["name"] == "my script"

    listing = await client.get("/api/keys", headers=user.cookie)
    assert listing.status_code == 200
    assert [(k["id"], k["name"], k["prefix"]) for k in listing.json()["keys"]] == [
        (made["id"], "my script", key[:12])
    ]
    assert key not in listing.text
    assert key[12:] not in listing.text

    me = await client.get("/api/auth/me", headers=bearer(key))
    assert me.json()["id"] == user.id
    assert (
        await client.get("/api/auth/me", headers={"Authorization": f"bearer  {key} "})
    ).status_code == 200
    for elsewhere in (
        {"X-API-Key": key},
        {"Authorization": key},
        {"Authorization": f"Token {key}"},
        cookie_header(key),
    ):
        refused = await client.get("/api/auth/me", headers=elsewhere)
        assert refused.status_code == 401, elsewhere
        assert code_of(refused) == "unauthenticated"
    # A bad Bearer key is refused even beside a good session cookie.
    both = {**user.cookie, "Authorization": "Bearer ssk_not-a-key"}
    assert (await client.get("/api/auth/me", headers=both)).status_code == 401

    # Another user cannot revoke it; its owner can, and then it is refused.
    other = await client.delete(f"/api/keys/{made['id']}", headers=admin.cookie)
    assert other.status_code == 404
    assert (await client.get("/api/auth/me", headers=bearer(key))).status_code == 200
    assert (await client.delete(f"/api/keys/{made['id']}", headers=user.cookie)).status_code == 204
    revoked = await client.get("/api/auth/me", headers=bearer(key))
    assert revoked.status_code == 401
    assert (await client.get("/api/keys", headers=user.cookie)).json() == {"keys": []}


# --- sign-up policies ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "status", "answer"),
    [("closed", 403, None), ("approval", 201, "pending"), ("open", 201, "active")],
)
async def test_signup_policy(tmp_path: Path, policy: str, status: int, answer: str | None) -> None:
    settings = auth_settings(tmp_path, signup=policy)
    async with auth_client(settings) as client:
        assert (await client.get("/api/auth/status")).json()["signup"] == policy
        email = f"{uuid.uuid4().hex[:8]}@example.com"
        before = db_snapshot(db_path_of(settings))
        response = await client.post(
            "/api/auth/signup", json={"email": email, "password": PASSWORD}
        )
        assert response.status_code == status, response.text
        assert session_token(response) is None  # signing up is not signing in
        login = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
        if answer is None:
            assert code_of(response) == "forbidden"
            assert db_snapshot(db_path_of(settings)) == before
            assert login.status_code == 401
        else:
            assert response.json() == {"status": answer}
            assert login.status_code == (200 if answer == "active" else 403)


# --- secrets -------------------------------------------------------------------------------


async def test_no_secret_is_answered_or_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A whole flow, every logger at DEBUG: no password, token or key appears in a response
    body or header (but the session cookie and the new key's one answer), nor in the log."""
    caplog.set_level(logging.DEBUG)
    links: list[str] = []
    secrets: list[str] = []
    answers: list[httpx.Response] = []
    passwords = ["first admin's password", "the user's password", "changed by the user"]
    passwords += ["reset by the admin", "a wrong guess here"]
    secrets += passwords

    settings = auth_settings(tmp_path, headless_admin=False, signup="approval")
    async with auth_client(settings, on_setup_link=links.append) as client:

        async def call(method: str, url: str, **options: Any) -> httpx.Response:
            response = await client.request(method, url, **options)
            answers.append(response)
            token = session_token(response)
            if token:
                secrets.append(token)
            return response

        setup_token = links[0].partition("#token=")[2]
        secrets.append(setup_token)
        made = await call(
            "POST",
            "/api/auth/setup",
            json={"token": setup_token, "email": "boss@example.com", "password": passwords[0]},
        )
        admin = cookie_header(session_token(made) or "")
        user = await call(
            "POST",
            "/api/admin/users",
            json={"email": "u@example.com", "password": passwords[1]},
            headers=admin,
        )
        login = {"email": "u@example.com", "password": passwords[1]}
        await call("POST", "/api/auth/login", json={**login, "password": passwords[4]})
        signed_in = await call("POST", "/api/auth/login", json=login)
        session = cookie_header(session_token(signed_in) or "")
        created = await client.post("/api/keys", json={"name": "ci"}, headers=session)
        key = created.json()["key"]
        secrets.append(key)
        await call("GET", "/api/keys", headers=session)
        await call("GET", "/api/auth/me", headers=bearer(key))
        await call("POST", "/api/conversations", json={"title": "t"}, headers=bearer(key))
        await call("GET", "/api/auth/me", headers={"X-API-Key": key})
        await call(
            "POST",
            "/api/auth/password",
            json={"current_password": passwords[1], "new_password": passwords[2]},
            headers=session,
        )
        await call("GET", "/api/auth/me", headers=bearer(key))  # revoked by the new password
        await call(
            "PATCH",
            f"/api/admin/users/{user.json()['id']}",
            json={"password": passwords[3]},
            headers=admin,
        )
        await call(
            "POST", "/api/auth/signup", json={"email": "new@example.com", "password": passwords[1]}
        )
        await call("GET", "/api/admin/users", headers=admin)
        await call("POST", "/api/auth/logout", headers=admin)
        await call("GET", "/api/auth/me", headers=admin)

    assert len(answers) == 15
    assert created.status_code == 201
    assert "POST http://test/api/auth/login" in caplog.text  # the log was being captured
    for secret in secrets:
        for response in answers:
            assert secret not in response.text, (response.request.url, secret)
            shown = [v for k, v in response.headers.multi_items() if k != "set-cookie"]
            assert all(secret not in value for value in shown), response.request.url
        assert secret not in caplog.text
        assert secret not in repr(settings)
    # The key's one answer holds the key and nothing else secret.
    assert [s for s in secrets if s in created.text] == [key]


async def test_the_headless_admins_password_is_not_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = auth_settings(tmp_path)
    async with auth_client(settings) as client:
        await sign_in(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert "SSECHAT_ADMIN_EMAIL" in caplog.text  # it said it made the account...
    assert ADMIN_PASSWORD not in caplog.text  # ...and not with what
    assert ADMIN_PASSWORD not in repr(settings)
    assert ADMIN_PASSWORD not in capsys.readouterr().out
