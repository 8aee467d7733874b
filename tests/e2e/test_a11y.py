"""Every page passes an axe-core audit (WCAG 2.1 A and AA) and fits a 375 px wide window.

Each page is audited four times: light and dark colour scheme (``prefers-color-scheme``), at
1280 px and at 375 px wide; at 375 px the page must not scroll sideways either. A test collects
every problem of its page before failing, so one run shows them all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.axe import describe, overflow, violations
from tests.e2e.harness import Browser, Server
from tests.e2e.test_chat import TABLE_AND_CODE, answers, wait_idle

pytest.importorskip("playwright.sync_api", reason="the end-to-end tests need playwright")

from playwright.sync_api import Page, expect

VARIANTS = [
    (scheme, width, height)
    for scheme in ("light", "dark")
    for width, height in ((1280, 800), (375, 740))
]


def heading(name: str) -> Callable[[Page], None]:
    def ready(page: Page) -> None:
        expect(page.get_by_role("heading", level=1, name=name)).to_be_visible()

    return ready


def audit_everywhere(
    ui: Browser, what: str, path: str, ready: Callable[[Page], None], **context: Any
) -> None:
    """Open ``path`` in every variant, wait for ``ready``, audit; fail once with everything."""
    problems = []
    for scheme, width, height in VARIANTS:
        page = ui.page(path, width=width, height=height, color_scheme=scheme, **context)
        ready(page)
        page.evaluate("document.fonts.ready")
        found = violations(page)
        where = f"{what}, {scheme}, {width} px"
        if found:
            problems.append(f"{where}:\n{describe(found)}")
        if width == 375 and (wider := overflow(page)):
            problems.append(f"{where}: {wider} px wider than the window (horizontal scrolling)")
        page.context.close()
    assert not problems, "\n\n".join(problems)


def test_chat_empty(ui: Browser) -> None:
    def ready(page: Page) -> None:
        expect(page.get_by_role("textbox", name="Message")).to_be_visible()
        expect(page.get_by_role("heading", level=1, name="New chat")).to_be_visible()

    audit_everywhere(ui, "the empty chat", "/", ready)


def test_chat_with_an_answer(ui: Browser, server: Server) -> None:
    conversation_id = server.new_conversation("fake-echo@0", title="Audited")
    server.api(
        "POST", f"/api/conversations/{conversation_id}/messages", {"content": TABLE_AND_CODE}
    )
    assert server.wait_for_answer(conversation_id)["status"] == "complete"

    def ready(page: Page) -> None:
        expect(answers(page).last.locator("table")).to_be_visible()
        expect(answers(page).last.locator(".katex")).to_be_visible()
        wait_idle(page)

    audit_everywhere(ui, "a conversation", f"/c/{conversation_id}", ready)


def test_chat_with_a_reasoning_answer(ui: Browser, server: Server) -> None:
    """The Thinking disclosure, closed and then opened, passes too (a labelled button)."""
    conversation_id = server.new_conversation("fake-reason-tag-30-20", title="Reasoned")
    server.api("POST", f"/api/conversations/{conversation_id}/messages", {"content": "Why?"})
    assert server.wait_for_answer(conversation_id)["reasoning"]

    def ready(page: Page) -> None:
        toggle = answers(page).last.locator("button.reasoning-toggle")
        expect(toggle).to_have_attribute("aria-expanded", "false")
        wait_idle(page)

    audit_everywhere(ui, "a reasoned answer, its thinking closed", f"/c/{conversation_id}", ready)

    def opened(page: Page) -> None:
        ready(page)
        answers(page).last.locator("button.reasoning-toggle").click()
        expect(answers(page).last.locator(".reasoning-body .markdown")).not_to_be_empty()

    audit_everywhere(ui, "a reasoned answer, its thinking open", f"/c/{conversation_id}", opened)


def test_sign_in_page(ui: Browser) -> None:
    audit_everywhere(ui, "sign-in", "/login", heading("Sign in"), user=None)


def test_setup_page(ui: Browser, fresh_server: Server) -> None:
    link = fresh_server.setup_link()
    path = link.removeprefix(fresh_server.base_url)
    assert path.startswith("/setup#token="), link
    # Opening the page does not use the token up: every variant shows the form.
    audit_everywhere(ui, "setup", path, heading("Set up ssechat"), server=fresh_server)


def test_sign_up_page(ui: Browser, start_server: Callable[..., Server]) -> None:
    approval = start_server(SSECHAT_SIGNUP="approval")
    audit_everywhere(
        ui, "sign-up", "/signup", heading("Create an account"), server=approval, user=None
    )


def test_settings_page(ui: Browser, server: Server) -> None:
    # The admin's key list holds at least the harness's key, so the table is audited too.
    def ready(page: Page) -> None:
        heading("Settings")(page)
        expect(page.get_by_role("button", name="Revoke e2e harness")).to_be_visible()

    audit_everywhere(ui, "settings", "/settings", ready)


def test_users_page(ui: Browser, server: Server) -> None:
    account, _ = server.add_user(name="Audited User")

    def ready(page: Page) -> None:
        heading("Users")(page)
        expect(page.get_by_role("button", name=f"Disable {account.email}")).to_be_visible()

    audit_everywhere(ui, "users", "/admin/users", ready)
