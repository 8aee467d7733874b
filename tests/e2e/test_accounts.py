"""Accounts in a real browser: sign-in, sign-out, first-run setup, API keys, the password, and
the admins' users page; keyboard-only sign-in; screenshots of each page, light and dark.

Names and labels are the UI contract's (briefs: ui-contract.md). Every test makes its own
accounts (``Server.add_user``), so none changes the admin the other tests sign in as.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.axe import describe, violations
from tests.e2e.harness import SESSION_COOKIE, Account, Browser, Server
from tests.e2e.test_chat import send

pytest.importorskip("playwright.sync_api", reason="the end-to-end tests need playwright")

from playwright.sync_api import Page, expect

PASSWORD_FIELD = "Password"


def h1(page: Page, name: str) -> Any:
    return page.get_by_role("heading", level=1, name=name)


def fill_sign_in(page: Page, email: str, password: str) -> None:
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label(PASSWORD_FIELD, exact=True).fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()


def in_the_chat(page: Page) -> None:
    expect(page.get_by_role("textbox", name="Message")).to_be_visible()


def accessible(page: Page) -> None:
    """No WCAG 2.1 A/AA violation in the page as it is now (a state test_a11y does not open)."""
    found = violations(page)
    assert not found, describe(found)


def session_of(page: Page) -> str:
    return next(c["value"] for c in page.context.cookies() if c["name"] == SESSION_COOKIE)


def me(page: Page, server: Server) -> Any:
    """``/api/auth/me`` with the page's cookie (through its context's request API)."""
    return page.context.request.get(server.base_url + "/api/auth/me")


def screenshot(
    ui: Browser,
    artifacts: Path,
    name: str,
    path: str,
    ready: Callable[[Page], None],
    **context: Any,
) -> None:
    """The page at ``path``, light and dark, into ``test-artifacts/{name}-{scheme}.png``."""
    for scheme in ("light", "dark"):
        page = ui.page(path, width=1280, height=860, color_scheme=scheme, **context)
        ready(page)
        page.evaluate("document.fonts.ready")
        shot = artifacts / f"{name}-{scheme}.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 5_000
        page.context.close()


# --- signing in and out ---------------------------------------------------------------------


def test_sign_in_wrong_then_right_password(ui: Browser, server: Server, artifacts: Path) -> None:
    account, _ = server.add_user(name="Sign-in Tester")
    page = ui.page("/", user=None)
    expect(h1(page, "Sign in")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/login$"))
    # Sign-up is closed on this server: no link to it.
    expect(page.get_by_role("link", name="Create an account", exact=True)).to_have_count(0)

    fill_sign_in(page, account.email, "not the password at all")
    expect(page.get_by_role("alert")).to_be_visible()
    expect(h1(page, "Sign in")).to_be_visible()
    accessible(page)
    assert me(page, server).status == 401

    fill_sign_in(page, account.email, account.password)
    in_the_chat(page)
    expect(h1(page, "Sign in")).to_have_count(0)
    assert me(page, server).json()["email"] == account.email
    # The account area: who is signed in, their settings, and no users page for a non-admin.
    expect(page.get_by_text("Sign-in Tester")).to_be_visible()
    expect(page.get_by_role("link", name="Settings", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="Users", exact=True)).to_have_count(0)

    screenshot(
        ui,
        artifacts,
        "sign-in",
        "/login",
        lambda p: expect(h1(p, "Sign in")).to_be_visible(),
        user=None,
    )


def test_admins_see_the_users_link(ui: Browser, server: Server) -> None:
    page = ui.page("/")
    in_the_chat(page)
    page.get_by_role("link", name="Users", exact=True).click()
    expect(h1(page, "Users")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/admin/users$"))
    page.get_by_role("link", name="Back to chat", exact=True).click()
    in_the_chat(page)


def test_users_page_is_for_admins_only(ui: Browser, server: Server) -> None:
    account, _ = server.add_user()
    page = ui.page("/admin/users", user=account)
    expect(page.get_by_text("Only admins can manage users")).to_be_visible()
    expect(page.get_by_role("button", name="Add user", exact=True)).to_have_count(0)
    expect(page.get_by_role("link", name="Back to chat", exact=True)).to_be_visible()


def test_sign_out_ends_the_session(ui: Browser, server: Server) -> None:
    account, _ = server.add_user()
    page = ui.page("/", user=account)
    in_the_chat(page)
    token = session_of(page)
    assert server.call("GET", "/api/auth/me", session=token).status == 200
    page.get_by_role("button", name="Sign out", exact=True).click()
    expect(h1(page, "Sign in")).to_be_visible()
    # Ended on the server, not just forgotten by the browser: the old cookie is worth nothing.
    assert server.call("GET", "/api/auth/me", session=token).status == 401
    assert me(page, server).status == 401
    page.reload()
    expect(h1(page, "Sign in")).to_be_visible()


def test_sign_in_by_keyboard_alone(ui: Browser, server: Server) -> None:
    account, _ = server.add_user()
    page = ui.page("/login", user=None)
    email = page.get_by_label("Email", exact=True)
    password = page.get_by_label(PASSWORD_FIELD, exact=True)
    expect(email).to_be_visible()
    is_focused = "el => el === document.activeElement"
    for _ in range(15):  # whatever comes first (a skip link, a logo), Tab reaches the field
        page.keyboard.press("Tab")
        if email.evaluate(is_focused):
            break
    expect(email).to_be_focused()
    # The focus is visible: an outline or a ring drawn for it.
    assert email.evaluate(
        "el => { const s = getComputedStyle(el);"
        " return (s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0)"
        " || s.boxShadow !== 'none'; }"
    ), "the focused field shows no focus indicator"
    page.keyboard.type(account.email)
    page.keyboard.press("Tab")
    expect(password).to_be_focused()
    page.keyboard.type(account.password)
    page.keyboard.press("Enter")
    in_the_chat(page)
    assert me(page, server).json()["email"] == account.email


# --- first-run setup ------------------------------------------------------------------------


def test_setup_through_the_printed_link(ui: Browser, fresh_server: Server, artifacts: Path) -> None:
    link = fresh_server.setup_link()
    path = link.removeprefix(fresh_server.base_url)
    assert path.startswith("/setup#token="), link
    token = path.split("#token=", 1)[1]
    assert fresh_server.call("GET", "/api/auth/status").body["setup_required"] is True
    assert fresh_server.call("GET", "/api/conversations").status == 401

    def ready(page: Page) -> None:
        expect(h1(page, "Set up ssechat")).to_be_visible()

    screenshot(ui, artifacts, "setup", path, ready, server=fresh_server)

    page = ui.page(path, server=fresh_server)
    ready(page)
    # Someone else opened the same link meanwhile: their form is shown too, for now.
    late = ui.page(path, server=fresh_server)
    ready(late)
    # The token is read, then taken out of the address bar.
    expect(page).not_to_have_url(re.compile("token="))
    page.get_by_label("Name").fill("First Admin")
    page.get_by_label("Email", exact=True).fill("first@e2e.example")
    page.get_by_label(PASSWORD_FIELD, exact=True).fill("the first admin's password")
    page.get_by_role("button", name="Create admin account", exact=True).click()
    in_the_chat(page)
    expect(page).to_have_url(fresh_server.base_url + "/")
    signed_in = me(page, fresh_server).json()
    assert (signed_in["email"], signed_in["role"]) == ("first@e2e.example", "admin")
    assert fresh_server.call("GET", "/api/auth/status").body["setup_required"] is False

    # The link is used up: the late form is refused, and so is the API; still one account.
    late.get_by_label("Email", exact=True).fill("second@e2e.example")
    late.get_by_label(PASSWORD_FIELD, exact=True).fill("a second admin's password")
    late.get_by_role("button", name="Create admin account", exact=True).click()
    expect(late.get_by_role("alert")).to_be_visible()
    expect(late.get_by_role("textbox", name="Message")).to_have_count(0)
    assert me(late, fresh_server).status == 401
    # Opened again, the link leads nowhere near an account (sign-in, or a form that fails).
    again = ui.page(path, server=fresh_server)
    setup_form = again.get_by_role("button", name="Create admin account", exact=True)
    expect(h1(again, "Sign in").or_(setup_form)).to_be_visible()
    assert me(again, fresh_server).status == 401
    refused = fresh_server.call(
        "POST",
        "/api/auth/setup",
        {"token": token, "email": "third@e2e.example", "password": "a third admin's password"},
    )
    assert refused.status == 401
    users = page.context.request.get(fresh_server.base_url + "/api/admin/users").json()["users"]
    assert [user["email"] for user in users] == ["first@e2e.example"]


# --- settings: API keys and the password ----------------------------------------------------


def test_api_key_create_copy_once_and_revoke(ui: Browser, server: Server, artifacts: Path) -> None:
    account, _ = server.add_user()
    page = ui.page("/settings", user=account)
    expect(h1(page, "Settings")).to_be_visible()
    page.get_by_label("Key name").fill("laptop script")
    page.get_by_role("button", name="Create key", exact=True).click()
    shown = page.get_by_label("New API key")
    expect(shown).to_have_value(re.compile(r"\S{20,}"))
    expect(shown).not_to_be_editable()
    key = shown.input_value()
    accessible(page)
    page.get_by_role("button", name="Copy key", exact=True).click()
    page.wait_for_function("k => navigator.clipboard.readText().then(t => t === k)", arg=key)

    row = page.get_by_role("row").filter(has_text="laptop script")
    expect(row).to_have_count(1)
    prefix = next(
        k for k in server.api("GET", "/api/keys", key=key)["keys"] if k["name"] == "laptop script"
    )["prefix"]
    assert key.startswith(prefix)
    expect(row).to_contain_text(prefix)

    # The key works as a Bearer token, for this account.
    answer = server.call("GET", "/api/auth/me", key=key)
    assert (answer.status, answer.body["email"]) == (200, account.email)

    # Shown once: after a reload the key is listed, but nowhere on the page.
    page.reload()
    expect(row).to_have_count(1)
    expect(page.get_by_label("New API key")).to_have_count(0)
    assert key not in page.content()

    def ready(shot: Page) -> None:
        expect(h1(shot, "Settings")).to_be_visible()
        expect(shot.get_by_role("button", name="Revoke laptop script")).to_be_visible()

    screenshot(ui, artifacts, "settings", "/settings", ready, user=account)

    page.get_by_role("button", name="Revoke laptop script").click()
    expect(row).to_have_count(0)
    assert server.call("GET", "/api/auth/me", key=key).status == 401
    listed = page.context.request.get(server.base_url + "/api/keys").json()["keys"]
    assert [k["name"] for k in listed] == []


def test_change_password(ui: Browser, server: Server) -> None:
    account, _ = server.add_user()
    elsewhere = server.login(account)  # another session of the same account, e.g. a laptop
    page = ui.page("/settings", user=account)
    expect(page.get_by_role("heading", level=2, name="Password")).to_be_visible()
    new_password = "a brand new password"
    page.get_by_label("Current password").fill(account.password)
    page.get_by_label("New password").fill(new_password)
    page.get_by_role("button", name="Change password", exact=True).click()
    expect(page.get_by_role("status")).to_be_visible()
    assert server.call("GET", "/api/auth/me", session=elsewhere).status == 401
    assert me(page, server).status == 200  # the session that changed it goes on
    assert (
        server.call(
            "POST", "/api/auth/login", {"email": account.email, "password": account.password}
        ).status
        == 401
    )
    server.login(Account(account.email, new_password))


# --- the users page -------------------------------------------------------------------------


def test_users_page_adds_and_disables_a_user(ui: Browser, server: Server, artifacts: Path) -> None:
    admin = ui.page("/admin/users")
    expect(h1(admin, "Users")).to_be_visible()
    added = Account(f"form-{uuid.uuid4().hex[:8]}@e2e.example", "a password from the form")
    form = admin.get_by_role("heading", level=2, name="Add a user")
    expect(form).to_be_visible()
    admin.get_by_label("Email", exact=True).fill(added.email)
    admin.get_by_label("Name", exact=True).fill("Added By Form")
    admin.get_by_label(PASSWORD_FIELD, exact=True).fill(added.password)
    admin.get_by_label("Role", exact=True).select_option("user")
    admin.get_by_role("button", name="Add user", exact=True).click()
    disable = admin.get_by_role("button", name=f"Disable {added.email}")
    expect(disable).to_be_visible()
    assert server.user_by_email(added.email)["status"] == "active"

    screenshot(
        ui,
        artifacts,
        "users",
        "/admin/users",
        lambda p: expect(p.get_by_role("button", name=f"Disable {added.email}")).to_be_visible(),
    )

    # The new user, signed in, is reading a long answer as it is written.
    user_context = ui.context(user=added)
    made = user_context.request.post(
        server.base_url + "/api/conversations", data={"model": "fake-tokens-3000@20"}
    )
    assert made.status == 201, made.text()
    user_page = user_context.new_page()
    ui.watch_page(user_page)
    user_page.goto(f"{server.base_url}/c/{made.json()['id']}")
    send(user_page, "a long answer, please")
    expect(user_page.get_by_role("button", name="Stop")).to_be_visible()

    disable.click()
    expect(admin.get_by_role("button", name=f"Enable {added.email}")).to_be_visible()
    # Their open page is sent back to sign-in; their credentials are worth nothing now.
    expect(h1(user_page, "Sign in")).to_be_visible(timeout=20_000)
    expect(user_page).to_have_url(re.compile(r"/login"))
    assert me(user_page, server).status == 401
    assert server.user_by_email(added.email)["status"] == "disabled"
    assert (
        server.call(
            "POST", "/api/auth/login", {"email": added.email, "password": added.password}
        ).status
        == 403
    )

    admin.get_by_role("button", name=f"Enable {added.email}").click()
    expect(disable).to_be_visible()
    server.login(added)


def test_approve_a_pending_user(ui: Browser, start_server: Callable[..., Server]) -> None:
    approval = start_server(SSECHAT_SIGNUP="approval")
    page = ui.page("/login", server=approval, user=None)
    page.get_by_role("link", name="Create an account", exact=True).click()
    expect(h1(page, "Create an account")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/signup$"))
    pending = Account(f"waiting-{uuid.uuid4().hex[:8]}@e2e.example", "a password that waits")
    page.get_by_label("Name").fill("Waiting Person")
    page.get_by_label("Email", exact=True).fill(pending.email)
    page.get_by_label(PASSWORD_FIELD, exact=True).fill(pending.password)
    page.get_by_role("button", name="Create account", exact=True).click()
    expect(page.get_by_text("Your account is waiting for an admin's approval.")).to_be_visible()
    assert approval.user_by_email(pending.email)["status"] == "pending"
    assert (
        approval.call(
            "POST", "/api/auth/login", {"email": pending.email, "password": pending.password}
        ).status
        == 403
    )

    admin = ui.page("/admin/users", server=approval)
    approve = admin.get_by_role("button", name=f"Approve {pending.email}")
    approve.click()
    expect(approve).to_have_count(0)
    expect(admin.get_by_role("button", name=f"Disable {pending.email}")).to_be_visible()
    assert approval.user_by_email(pending.email)["status"] == "active"

    # Now they sign in through the page.
    again = ui.page("/login", server=approval, user=None)
    fill_sign_in(again, pending.email, pending.password)
    in_the_chat(again)


def test_users_page_changes_role_resets_password_and_deletes(ui: Browser, server: Server) -> None:
    account, info = server.add_user(name="Managed")
    admin = ui.page("/admin/users")
    email = account.email

    admin.get_by_label(f"Role of {email}").select_option("admin")
    expect(admin.get_by_label(f"Role of {email}")).to_have_value("admin")
    assert server.user_by_email(email)["role"] == "admin"

    admin.get_by_role("button", name=f"Reset password of {email}").click()
    new_password = "reset by the admin"
    admin.get_by_label(f"New password for {email}").fill(new_password)
    accessible(admin)
    admin.get_by_role("button", name="Set password", exact=True).click()
    expect(admin.get_by_label(f"New password for {email}")).to_have_count(0)
    assert (
        server.call("POST", "/api/auth/login", {"email": email, "password": account.password})
    ).status == 401
    server.login(Account(email, new_password))

    # Delete asks first, inline (the ui fixture fails the test on any browser dialog).
    admin.get_by_role("button", name=f"Delete {email}").click()
    confirm = admin.get_by_role("button", name=f"Confirm delete {email}")
    expect(confirm).to_be_visible()
    assert server.user_by_email(email) is not None
    confirm.click()
    expect(admin.get_by_role("button", name=f"Disable {email}")).to_have_count(0)
    assert server.user_by_email(email) is None
    assert (
        server.call(
            "PATCH", f"/api/admin/users/{info['id']}", {"role": "user"}, key=server.key
        ).status
        == 404
    )
