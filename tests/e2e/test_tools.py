"""Tool calls in a real browser: a real ``ssechat serve`` whose ``SSECHAT_MCP_CONFIG`` runs the
MCP test server (``tests/mcp_test_server.py``, over stdio), the fake upstream's scripted tool
turns (``fake-agent``), and Chromium.

One test walks the whole loop as a user sees it: ask, the call's card appears waiting, a reload
while it waits shows it waiting still, Approve, its result, the answer that uses it; then a
second question whose call is denied. Another feeds every XSS payload list through a tool's
result: rendered in the card (and in the answer that quotes it), nothing runs, loads or leaves.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from tests.e2e import harness
from tests.e2e.harness import Browser, Server, eventually
from tests.e2e.test_a11y import audit_everywhere
from tests.e2e.test_chat import answers, send, wait_idle
from tests.e2e.test_xss import FIXTURES, PAYLOAD_FILES, assert_inert
from tests.mcp_support import stdio_entry

pytest.importorskip("playwright.sync_api", reason="the end-to-end tests need playwright")

from playwright.sync_api import Locator, Page, expect

DENIED = "The user denied this tool call; it was not run."


@pytest.fixture(scope="module")
def tools_server(upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("tools-server")
    marks = workdir / "marks"
    marks.mkdir()
    entry = stdio_entry(marks)
    entry["env"] = {**entry["env"], "SSECHAT_TEST_XSS_DIR": str(FIXTURES)}
    config = workdir / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {"test": entry}}))
    try:
        with harness.ssechat_serve(
            workdir, upstream, env={"SSECHAT_MCP_CONFIG": str(config)}
        ) as running:
            eventually(
                lambda: (
                    all(t["available"] for t in running.api("GET", "/api/tools")["tools"])
                    and len(running.api("GET", "/api/tools")["tools"]) == 5
                ),
                "the MCP test server is up and lists its five tools",
                timeout=30,
            )
            yield running
    except RuntimeError as exc:
        pytest.fail(str(exc))


def card(page: Page, key: str) -> Locator:
    return page.get_by_role("group", name=f"Tool call {key}")


def test_ask_approve_reload_and_deny(ui: Browser, tools_server: Server) -> None:
    conversation = tools_server.api(
        "POST", "/api/conversations", {"model": "fake-agent", "tools": ["test/echo"]}
    )
    page = ui.page(f"/c/{conversation['id']}", server=tools_server)
    # The picker shows the conversation's choice.
    expect(page.get_by_role("button", name=re.compile(r"^Tools \(1\)"))).to_be_visible()

    send(page, "hello from the browser")
    first = card(page, "test/echo").first
    expect(first).to_be_visible()
    expect(first.get_by_role("status")).to_have_text("Waiting for your approval")
    expect(first).to_contain_text("hello from the browser")  # its arguments
    expect(first.get_by_role("button", name="Approve")).to_be_enabled()

    # A reload while the call waits: the same card, still waiting, still answerable.
    page.reload()
    first = card(page, "test/echo").first
    expect(first.get_by_role("status")).to_have_text("Waiting for your approval")
    first.get_by_role("button", name="Approve").click()
    expect(first.get_by_role("status")).to_have_text("Done")
    wait_idle(page)
    expect(answers(page).last).to_contain_text("Tool said: hello from the browser")
    expect(first.get_by_role("button", name="Approve")).to_have_count(0)
    toggle = first.get_by_role("button", name="test › echo")
    if toggle.get_attribute("aria-expanded") == "false":
        toggle.click()
    expect(first).to_contain_text("hello from the browser")  # the result, shown

    # A second question: its call is denied, and the model is told so.
    send(page, "do not run this")
    second = card(page, "test/echo").nth(1)
    expect(second.get_by_role("status")).to_have_text("Waiting for your approval")
    second.get_by_role("button", name="Deny").click()
    expect(second.get_by_role("status")).to_have_text("Denied")
    wait_idle(page)
    expect(answers(page).last).to_contain_text(f"Tool said: {DENIED}")

    # As stored: both calls, decided, the first with its result.
    stored = tools_server.api("GET", f"/api/conversations/{conversation['id']}")
    calls = [c for m in stored["messages"] for c in (m["tool_calls"] or [])]
    assert [c["decision"] for c in calls] == ["approved", "denied"]
    assert calls[0]["result"] == {"content": "hello from the browser", "is_error": False}


@pytest.mark.parametrize("name", [p.stem for p in PAYLOAD_FILES], ids=lambda n: n)
def test_hostile_tool_results_stay_inert(ui: Browser, tools_server: Server, name: str) -> None:
    tools_server.api("PATCH", "/api/admin/mcp/test", {"approvals": {"xss": "always"}})
    conversation = tools_server.api(
        "POST", "/api/conversations", {"model": "fake-agent@0", "tools": ["test/xss"]}
    )
    page = ui.page(f"/c/{conversation['id']}", server=tools_server)
    start_url = page.url
    send(page, json.dumps({"calls": [{"name": "xss", "arguments": {"list": name}}]}))
    result = card(page, "test/xss").first
    expect(result.get_by_role("status")).to_have_text("Done", timeout=30_000)
    wait_idle(page)
    toggle = result.get_by_role("button", name="test › xss")
    if toggle.get_attribute("aria-expanded") == "false":
        toggle.click()
    expect(result.locator(".markdown")).not_to_be_empty()
    # The check below walks the thread: the card's rendered result is inside it.
    expect(page.locator(".thread [role=group] .markdown")).not_to_have_count(0)
    assert_inert(page, start_url)
    # Reopened from the server (the stored result, rendered whole): still inert.
    page.reload()
    result = card(page, "test/xss").first
    toggle = result.get_by_role("button", name="test › xss")
    if toggle.get_attribute("aria-expanded") == "false":
        toggle.click()
    expect(result.locator(".markdown")).not_to_be_empty()
    assert_inert(page, page.url)


def test_tools_pages_pass_the_audit(ui: Browser, tools_server: Server) -> None:
    """The admins' Tools page, and a chat whose tool call waits (its card, Approve and Deny),
    pass the axe audit in every variant (tests/e2e/test_a11y.py)."""

    def admin_ready(page: Page) -> None:
        expect(page.get_by_role("heading", level=1, name="Tools")).to_be_visible()
        expect(page.get_by_role("switch", name="test enabled")).to_be_visible()

    audit_everywhere(ui, "tools admin", "/admin/tools", admin_ready, server=tools_server)

    conversation = tools_server.api(
        "POST", "/api/conversations", {"model": "fake-agent", "tools": ["test/slow"]}
    )
    tools_server.api(
        "POST", f"/api/conversations/{conversation['id']}/messages", {"content": "wait"}
    )

    def card_ready(page: Page) -> None:
        waiting = card(page, "test/slow").first
        expect(waiting.get_by_role("status")).to_have_text("Waiting for your approval")
        expect(waiting.get_by_role("button", name="Deny")).to_be_visible()

    audit_everywhere(ui, "tool card", f"/c/{conversation['id']}", card_ready, server=tools_server)
    run_id = next(
        m["run_id"]
        for m in tools_server.api("GET", f"/api/conversations/{conversation['id']}")["messages"]
        if m["run_id"]
    )
    tools_server.api("POST", f"/api/runs/{run_id}/cancel")
