"""Answers survive a reload, a second tab and a cut connection: no text lost, none twice."""

from __future__ import annotations

import pytest

from tests.e2e.harness import Browser, Server
from tests.e2e.proxy import CuttableProxy
from tests.e2e.test_chat import answers, send, wait_idle, words

pytest.importorskip("playwright.sync_api", reason="the end-to-end tests need playwright")

from playwright.sync_api import Page, expect

STREAMING_TEXT = (
    "() => (document.querySelector('article[aria-busy=true] .markdown')?.innerText ?? '').length"
)


def wait_for_streamed(page: Page, chars: int) -> None:
    """Until the answer being written shows more than ``chars`` characters."""
    page.wait_for_function(f"n => ({STREAMING_TEXT})() > n", arg=chars)


def shown_answer(page: Page) -> str:
    return words(answers(page).last.locator(".markdown").inner_text())


def test_reload_mid_answer_resumes(ui: Browser, server: Server) -> None:
    conversation_id = server.new_conversation("fake-tokens-240@40")
    page = ui.page(f"/c/{conversation_id}")
    send(page, "A long answer, please")
    wait_for_streamed(page, 100)
    page.reload()
    # The answer is still being written after the reload, and goes on from where it was.
    expect(page.get_by_role("button", name="Stop")).to_be_visible()
    expect(answers(page).last).to_have_attribute("aria-busy", "true")
    before = len(answers(page).last.inner_text())
    wait_for_streamed(page, before + 20)
    wait_idle(page)
    saved = server.wait_for_answer(conversation_id)
    assert saved["status"] == "complete"
    assert saved["usage"]["completion_tokens"] == 240
    assert shown_answer(page) == words(saved["content"])


def test_second_tab_shows_the_same_live_answer(ui: Browser, server: Server) -> None:
    conversation_id = server.new_conversation("fake-tokens-200@40")
    first = ui.page(f"/c/{conversation_id}")
    send(first, "Tell both tabs")
    wait_for_streamed(first, 60)
    second = ui.page(f"/c/{conversation_id}")
    expect(second.get_by_role("button", name="Stop")).to_be_visible()
    wait_for_streamed(second, len(answers(second).last.inner_text()) + 20)
    wait_idle(first)
    wait_idle(second)
    saved = server.wait_for_answer(conversation_id)
    assert shown_answer(first) == words(saved["content"])
    assert shown_answer(second) == words(saved["content"])


def test_cut_connection_resumes_without_loss_or_duplicates(ui: Browser, server: Server) -> None:
    conversation_id = server.new_conversation("fake-tokens-240@40")
    with CuttableProxy(int(server.base_url.rsplit(":", 1)[1])) as proxy:
        page = ui.page(f"/c/{conversation_id}", base=proxy.base_url)
        send(page, "Keep going through the outage")
        wait_for_streamed(page, 80)
        proxy.cut()
        answer = answers(page).last
        expect(answer.get_by_role("status")).to_contain_text("reconnecting")
        cut_at = len(answer.inner_text())
        proxy.wait_refused(2)  # the outage lasts until the page has tried to reconnect twice
        proxy.restore()
        expect(answer.get_by_role("status")).to_have_count(0, timeout=15_000)
        wait_idle(page)
        saved = server.wait_for_answer(conversation_id)
        assert saved["status"] == "complete"
        assert len(saved["content"]) > cut_at
        assert shown_answer(page) == words(saved["content"])


def test_send_during_an_outage_keeps_the_text(ui: Browser, server: Server) -> None:
    conversation_id = server.new_conversation()
    with CuttableProxy(int(server.base_url.rsplit(":", 1)[1])) as proxy:
        page = ui.page(f"/c/{conversation_id}", base=proxy.base_url)
        expect(page.get_by_role("textbox", name="Message")).to_be_visible()
        proxy.cut()
        send(page, "words I do not want to lose")
        expect(page.get_by_role("alert").first).to_contain_text("could not be reached")
        expect(page.get_by_role("textbox", name="Message")).to_have_value(
            "words I do not want to lose"
        )
        expect(answers(page)).to_have_count(0)
        proxy.restore()
        page.get_by_role("button", name="Send").click()
        wait_idle(page)
        expect(answers(page).last).to_contain_text("words I do not want to lose")
