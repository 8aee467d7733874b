"""A reasoning model's thinking in the page: the live Thinking block, its collapse when the
answer starts, a reload mid-reasoning, and hostile reasoning rendered inert (issue 11).

The live tests use the fake upstream's ``fake-reason-tag-{R}-{A}@{rate}`` models (a leading
``<think>`` in the content, which the provider splits off). The XSS test's run stream and stored
conversation are served by Playwright routes holding the payloads as reasoning.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.e2e.harness import Browser, Server
from tests.e2e.test_chat import answers, send, wait_idle
from tests.e2e.test_xss import FIXTURES, MARKDOWN_VECTORS, PAYLOAD_FILES, assert_inert

pytest.importorskip("playwright.sync_api", reason="the end-to-end tests need playwright")

from playwright.sync_api import Route, expect

MODEL = "fake-reason-tag-40-20@20"


def test_live_thinking_block_then_its_collapse(ui: Browser, server: Server) -> None:
    conversation_id = server.new_conversation(MODEL)
    page = ui.page(f"/c/{conversation_id}")
    send(page, "Think first, please")
    button = answers(page).last.locator("button.reasoning-toggle")
    # While the model reasons: open, counting, its text streaming in.
    expect(button).to_have_attribute("aria-expanded", "true", timeout=15_000)
    expect(button).to_have_text(re.compile(r"^Thinking \(\d+ s\)$"))
    body = answers(page).last.locator(".reasoning-body .markdown")
    expect(body).not_to_be_empty()
    # The answer starts: closed, with how long it thought; a key opens it again.
    expect(button).to_have_attribute("aria-expanded", "false", timeout=30_000)
    expect(button).to_have_text(re.compile(r"^Thought for (\d+|under 1) s$"))
    wait_idle(page)
    saved = server.wait_for_answer(conversation_id)
    assert saved["reasoning"]
    button.focus()
    page.keyboard.press("Enter")
    expect(button).to_have_attribute("aria-expanded", "true")
    assert " ".join(body.inner_text().split()) == " ".join(saved["reasoning"].split())
    page.keyboard.press("Space")
    expect(button).to_have_attribute("aria-expanded", "false")


def test_reload_mid_reasoning_resumes_it(ui: Browser, server: Server) -> None:
    conversation_id = server.new_conversation(MODEL)
    page = ui.page(f"/c/{conversation_id}")
    send(page, "Think, then answer")
    body = answers(page).last.locator(".reasoning-body .markdown")
    expect(body).not_to_be_empty(timeout=15_000)
    page.reload()
    button = answers(page).last.locator("button.reasoning-toggle")
    expect(button).to_have_attribute("aria-expanded", "true")
    expect(button).to_have_text(re.compile(r"^Thinking \(\d+ s\)$"))
    wait_idle(page)
    saved = server.wait_for_answer(conversation_id)
    # Stored: shown closed, and once opened it is exactly the saved thinking, nothing twice.
    expect(button).to_have_attribute("aria-expanded", "false")
    button.click()
    assert " ".join(body.inner_text().split()) == " ".join(saved["reasoning"].split())


def _sse(events: list[tuple[str, dict[str, object]]]) -> str:
    return "retry: 3000\n\n" + "".join(
        f"id: {i}\nevent: {kind}\ndata: {json.dumps(data)}\n\n"
        for i, (kind, data) in enumerate(events)
    )


@pytest.mark.parametrize(
    "name", [p.name for p in PAYLOAD_FILES] + ["markdown-vectors"], ids=lambda n: n
)
def test_hostile_reasoning_renders_inert(ui: Browser, server: Server, name: str) -> None:
    if name == "markdown-vectors":
        text = MARKDOWN_VECTORS
    else:
        lines = (Path(FIXTURES) / name).read_text(encoding="utf-8", errors="replace").splitlines()
        text = "\n\n".join(line for line in lines if line.strip())
    conversation_id = server.new_conversation("fake-echo@0")
    detail = server.conversation(conversation_id)
    ids = {"user": "u-hostile", "assistant": "a-hostile"}
    stamp = detail["created_at"]
    message = {
        "conversation_id": conversation_id,
        "model": "fake-echo@0",
        "finish_reason": "stop",
        "usage": None,
        "error": None,
        "created_at": stamp,
        "updated_at": stamp,
        "run_id": None,
        "reasoning_seconds": 3.0,
        "tool_calls": None,
    }
    user = {**message, "id": ids["user"], "parent_id": None, "role": "user", "content": "Hi"}
    user.update(status="complete", reasoning=None, model=None, reasoning_seconds=None)
    answer = {**message, "id": ids["assistant"], "parent_id": ids["user"], "role": "assistant"}
    answer.update(content="Done.", status="complete", reasoning=text)
    stored = {**detail, "current_leaf_id": ids["assistant"], "messages": [user, answer]}
    run = {
        "run_id": "r-hostile",
        "conversation_id": conversation_id,
        "user_message_id": ids["user"],
        "message_id": ids["assistant"],
        "model": "fake-echo@0",
    }
    # The payloads as the thinking of a streamed answer, in pieces, then as a stored one.
    pieces = [text[i : i + 40] for i in range(0, len(text), 40)]
    events: list[tuple[str, dict[str, object]]] = [("run", run)]
    events += [("reasoning", {"text": piece}) for piece in pieces]
    events += [("delta", {"text": "Done."})]
    stream = _sse(events)  # no done yet: the page stays on the streamed view

    def serve_stream(route: Route) -> None:
        route.fulfill(status=200, content_type="text/event-stream", body=stream)

    def serve_detail(route: Route) -> None:
        if route.request.method != "GET":
            route.continue_()
            return
        route.fulfill(status=200, content_type="application/json", body=json.dumps(stored))

    context = ui.context()
    context.route(f"**/api/conversations/{conversation_id}/messages", serve_stream)
    page = context.new_page()
    ui.watch_page(page)
    page.goto(f"{server.base_url}/c/{conversation_id}")
    start_url = page.url
    context.route("**/api/runs/r-hostile/**", lambda route: route.abort())
    send(page, "Hi")
    button = answers(page).last.locator("button.reasoning-toggle")
    expect(button).to_be_visible()
    if button.get_attribute("aria-expanded") == "false":
        button.click()
    expect(answers(page).last.locator(".reasoning-body .markdown")).not_to_be_empty()
    assert_inert(page, start_url)
    # Stored, reopened from the server, opened by a click: still inert.
    context.route(f"**/api/conversations/{conversation_id}", serve_detail)
    page.reload()
    button = answers(page).last.locator("button.reasoning-toggle")
    expect(button).to_have_attribute("aria-expanded", "false")
    button.click()
    expect(answers(page).last.locator(".reasoning-body .markdown")).not_to_be_empty()
    assert_inert(page, page.url)
    wait_idle(page)
