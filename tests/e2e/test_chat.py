"""The chat page in a real browser: sending, streaming, stopping, branches, drafts, errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.harness import Browser, Server, eventually

pytest.importorskip("playwright.sync_api", reason="the end-to-end tests need playwright")

from playwright.sync_api import Locator, Page, expect

TABLE_AND_CODE = """\
Here is a **table**:

| Language | Typing | Since |
|---|---|--:|
| Python | dynamic | 1991 |
| TypeScript | static | 2012 |

And some code:

```python
def greet(name: str) -> str:
    return f"Hello, {name}!"
```

- [x] tables
- [ ] ~~nothing else~~

Math too: $e^{i\\pi} + 1 = 0$
"""


def words(text: str) -> str:
    return " ".join(text.split())


def answers(page: Page) -> Locator:
    return page.get_by_role("article", name="Answer")


def user_messages(page: Page) -> Locator:
    return page.get_by_role("article", name="Your message")


def answer_ids(server: Server, conversation_id: str) -> list[str]:
    """The ids of the conversation's answers, oldest first."""
    messages = server.conversation(conversation_id)["messages"]
    answers = sorted(
        (m for m in messages if m["role"] == "assistant"), key=lambda m: m["created_at"]
    )
    return [m["id"] for m in answers]


def send(page: Page, text: str) -> None:
    box = page.get_by_role("textbox", name="Message")
    box.fill(text)
    box.press("Enter")


def wait_idle(page: Page) -> None:
    """The answer is over: Send is back and no answer is marked busy."""
    expect(page.get_by_role("button", name="Stop")).to_have_count(0, timeout=30_000)
    expect(page.locator("article[aria-busy=true]")).to_have_count(0)


def test_send_renders_markdown(ui: Browser, server: Server, artifacts: Path) -> None:
    page = ui.page("/")
    box = page.get_by_role("textbox", name="Message")
    send_button = page.get_by_role("button", name="Send")
    expect(send_button).to_be_disabled()
    box.fill("   \n ")
    expect(send_button).to_be_disabled()

    # Shift+Enter is a new line, Enter sends.
    box.fill("Here is a **table**:")
    box.press("Shift+Enter")
    expect(box).to_have_value("Here is a **table**:\n")
    box.fill(TABLE_AND_CODE)
    expect(send_button).to_be_enabled()
    box.press("Enter")
    expect(box).to_have_value("")
    expect(page).to_have_url(re.compile(r"/c/[0-9a-z]+$"))

    answer = answers(page).last
    wait_idle(page)
    table = answer.locator("table")
    expect(table).to_be_visible()
    expect(table.locator("th")).to_have_text(["Language", "Typing", "Since"])
    expect(table.locator("td").nth(2)).to_have_text("1991")
    code = answer.locator(".code-block code")
    expect(code).to_contain_text('return f"Hello, {name}!"')
    expect(code.locator(".hljs-keyword").first).to_have_text("def")
    expect(answer.get_by_role("button", name="Copy code")).to_be_visible()
    expect(answer.locator("input[type=checkbox][disabled]")).to_have_count(2)
    expect(answer.locator("s")).to_have_text("nothing else")
    expect(answer.locator(".katex")).to_be_visible()
    # the question itself is shown as typed, not rendered
    expect(user_messages(page).last).to_contain_text("| Python | dynamic | 1991 |")
    # usage under the answer, and a title in the sidebar once the first answer is done
    expect(answer.locator(".usage")).to_contain_text("out")
    conversation_id = page.url.rsplit("/c/", 1)[1]
    title = server.conversation(conversation_id)["title"]
    assert title
    expect(
        page.get_by_role("navigation", name="Conversations").get_by_role("link")
    ).to_contain_text([title])

    # Copy on a code block puts the code on the clipboard.
    answer.get_by_role("button", name="Copy code").click()
    expect(answer.get_by_role("button", name="Copy code")).to_have_text("Copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.startswith("def greet(name: str) -> str:")

    # The same conversation, light and dark, desktop and 375 px wide: kept as artefacts.
    for scheme in ("light", "dark"):
        for width, height, label in ((1280, 860, "desktop"), (375, 812, "375px")):
            shot = ui.page(f"/c/{conversation_id}", width=width, height=height, color_scheme=scheme)
            expect(answers(shot).last.locator("table")).to_be_visible()
            expect(answers(shot).last.locator(".katex")).to_be_visible()
            if label == "desktop":
                links = shot.get_by_role("navigation", name="Conversations").get_by_role("link")
                expect(links.first).to_be_visible()
            shot.evaluate("document.fonts.ready")
            path = artifacts / f"conversation-{scheme}-{label}.png"
            shot.screenshot(path=str(path))
            assert path.stat().st_size > 10_000


def test_answer_streams_in(ui: Browser, server: Server) -> None:
    conversation_id = server.new_conversation("fake-tokens-120@30")
    page = ui.page(f"/c/{conversation_id}")
    send(page, "Tell me a long story")
    answer = answers(page).last
    expect(page.get_by_role("button", name="Stop")).to_be_visible()
    expect(answer).to_have_attribute("aria-busy", "true")
    # Text appears while the answer is still being generated, and keeps growing.
    page.wait_for_function(
        "() => { const a = [...document.querySelectorAll('article[aria-busy=true] .markdown')];"
        " return a.length > 0 && a[0].innerText.length > 30; }"
    )
    first = len(answer.inner_text())
    page.wait_for_function(
        "n => { const a = document.querySelector('article[aria-busy=true] .markdown');"
        " return a !== null && a.innerText.length > n + 30; }",
        arg=first,
    )
    wait_idle(page)
    saved = server.wait_for_answer(conversation_id)
    assert saved["status"] == "complete"
    assert words(answer.locator(".markdown").inner_text()) == words(saved["content"])
    expect(answer.get_by_role("button", name="Regenerate")).to_be_visible()


def test_stop(ui: Browser, server: Server) -> None:
    conversation_id = server.new_conversation("fake-tokens-3000@30")
    page = ui.page(f"/c/{conversation_id}")
    send(page, "Go on forever")
    answer = answers(page).last
    page.wait_for_function(
        "() => (document.querySelector('article[aria-busy=true] .markdown')?.innerText ?? '')"
        ".length > 20"
    )
    page.get_by_role("button", name="Stop").click()
    expect(answer.get_by_role("alert")).to_contain_text("Stopped.")
    expect(answer.get_by_role("button", name="Retry")).to_be_visible()
    expect(page.get_by_role("button", name="Send")).to_be_visible()
    saved = server.wait_for_answer(conversation_id)
    assert saved["status"] == "stopped"
    assert words(answer.locator(".markdown").inner_text()) == words(saved["content"])
    assert 0 < len(saved["content"].split()) < 3000


def test_regenerate_edit_and_branches(ui: Browser, server: Server) -> None:
    conversation_id = server.new_conversation("fake-echo@200")
    page = ui.page(f"/c/{conversation_id}")
    send(page, "first question")
    wait_idle(page)
    expect(answers(page).last).to_contain_text("first question")

    # Regenerate the last answer: a second version beside the first.
    answers(page).last.get_by_role("button", name="Regenerate").click()
    wait_idle(page)
    versions = answers(page).last.get_by_role("group", name="Versions")
    expect(versions).to_contain_text("2/2")
    first_answer, second_answer = answer_ids(server, conversation_id)
    versions.get_by_role("button", name="Previous version").click()
    expect(versions).to_contain_text("1/2")
    server.wait_for_leaf(conversation_id, first_answer)  # the choice is saved
    versions.get_by_role("button", name="Next version").click()
    expect(versions).to_contain_text("2/2")
    server.wait_for_leaf(conversation_id, second_answer)

    # Edit the question: a new branch with its own answer.
    user_messages(page).last.get_by_role("button", name="Edit").click()
    editor = page.get_by_role("textbox", name="Edit message")
    editor.fill("second question")
    page.get_by_role("button", name="Save and send").click()
    wait_idle(page)
    expect(answers(page).last).to_contain_text("second question")
    question_versions = user_messages(page).last.get_by_role("group", name="Versions")
    expect(question_versions).to_contain_text("2/2")

    # Back to the first question: its newest answer (the regenerated one) is shown.
    question_versions.get_by_role("button", name="Previous version").click()
    expect(user_messages(page).last).to_contain_text("first question")
    expect(answers(page).last).to_contain_text("first question")
    expect(answers(page).last.get_by_role("group", name="Versions")).to_contain_text("2/2")
    server.wait_for_leaf(conversation_id, second_answer)

    # The branch shown is remembered by the server: a reload shows the same one.
    page.reload()
    expect(user_messages(page).last).to_contain_text("first question")
    expect(user_messages(page).last.get_by_role("group", name="Versions")).to_contain_text("1/2")


def test_draft_survives_a_reload(ui: Browser, server: Server) -> None:
    conversation_id = server.new_conversation()
    page = ui.page(f"/c/{conversation_id}")
    box = page.get_by_role("textbox", name="Message")
    box.fill("a thought I have not sent yet\nwith two lines")
    page.reload()
    expect(page.get_by_role("textbox", name="Message")).to_have_value(
        "a thought I have not sent yet\nwith two lines"
    )
    # Each conversation has its own draft.
    page.get_by_role("button", name="New chat", exact=True).click()
    expect(page.get_by_role("textbox", name="Message")).to_have_value("")


def test_upstream_error_shows_on_the_answer_with_retry(ui: Browser, server: Server) -> None:
    conversation_id = server.new_conversation("fake-tokens-40@200+error-5")
    page = ui.page(f"/c/{conversation_id}")
    send(page, "this will fail")
    answer = answers(page).last
    problem = answer.get_by_role("alert")
    expect(problem).to_be_visible(timeout=20_000)
    saved = server.wait_for_answer(conversation_id)
    assert saved["status"] == "error"
    assert words(answer.locator(".markdown").inner_text()) == words(saved["content"])
    # Retry asks again: a second version of the answer.
    answer.get_by_role("button", name="Retry").click()
    expect(answers(page).last.get_by_role("group", name="Versions")).to_contain_text(
        "2/2", timeout=20_000
    )


def test_rename_and_delete(ui: Browser, server: Server) -> None:
    conversation_id = server.new_conversation(title="Before")
    page = ui.page(f"/c/{conversation_id}")
    sidebar = page.get_by_role("navigation", name="Conversations")
    sidebar.get_by_role("button", name="Rename Before").click()
    title = sidebar.get_by_role("textbox", name="Conversation title")
    title.fill("After")
    title.press("Enter")
    expect(sidebar.get_by_role("link", name="After")).to_be_visible()
    eventually(lambda: server.conversation(conversation_id)["title"] == "After", "renamed")

    sidebar.get_by_role("button", name="Delete After").click()
    dialog = page.get_by_role("dialog", name="Delete this chat?")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(sidebar.get_by_role("link", name="After")).to_be_visible()

    sidebar.get_by_role("button", name="Delete After").click()
    dialog.get_by_role("button", name="Delete").click()
    expect(sidebar.get_by_role("link", name="After")).to_have_count(0)
    expect(page).to_have_url(f"{server.base_url}/")
    with pytest.raises(Exception, match="404"):
        server.conversation(conversation_id)


def test_model_picker_and_system_prompt(ui: Browser, server: Server) -> None:
    conversation_id = server.new_conversation("fake-echo@200")
    page = ui.page(f"/c/{conversation_id}")
    picker = page.get_by_role("combobox", name="Model")
    expect(picker).to_have_value("fake-echo@200")
    picker.select_option("fake-tokens-20")
    expect(picker).to_have_value("fake-tokens-20")
    page.get_by_role("button", name="System prompt").click()
    page.get_by_role("textbox", name="System prompt").fill("Answer in French.")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("textbox", name="System prompt")).to_have_count(0)
    eventually(
        lambda: server.conversation(conversation_id)["model"] == "fake-tokens-20", "model saved"
    )
    assert server.conversation(conversation_id)["system_prompt"] == "Answer in French."
    send(page, "hello")
    wait_idle(page)
    expect(answers(page).last.locator(".usage-model")).to_have_text("fake-tokens-20")


def test_narrow_screen(ui: Browser, server: Server) -> None:
    conversation_id = server.new_conversation(title="Narrow")
    page = ui.page(f"/c/{conversation_id}", width=375, height=740)
    # The sidebar is a drawer behind the menu button; nothing overflows sideways.
    expect(page.get_by_role("navigation", name="Conversations")).to_be_hidden()
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    send(page, "hello from a phone")
    wait_idle(page)
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    page.get_by_role("button", name="Menu").click()
    sidebar = page.get_by_role("navigation", name="Conversations")
    expect(sidebar).to_be_visible()
    sidebar.get_by_role("button", name="New chat", exact=True).click()
    expect(sidebar).to_be_hidden()
    expect(page.get_by_role("heading", name="New chat")).to_be_visible()


def test_autoscroll_follows_unless_scrolled_up(ui: Browser, server: Server) -> None:
    conversation_id = server.new_conversation("fake-tokens-2000@60")
    page = ui.page(f"/c/{conversation_id}", width=900, height=600)
    scroller = page.locator(".messages")
    send(page, "Write a lot")
    # the answer outgrows the window, and the view follows its end
    page.wait_for_function(
        "() => { const s = document.querySelector('.messages');"
        " return s.scrollHeight > s.clientHeight + 400; }"
    )
    distance = "el => el.scrollHeight - el.scrollTop - el.clientHeight"
    assert scroller.evaluate(distance) < 64

    # scrolled up to read: the view stays where the reader is while text keeps coming
    scroller.hover()
    page.mouse.wheel(0, -300)
    expect(page.get_by_role("button", name="Scroll to latest")).to_be_visible()
    top = scroller.evaluate("el => el.scrollTop")
    height = scroller.evaluate("el => el.scrollHeight")
    page.wait_for_function(
        "h => document.querySelector('.messages').scrollHeight > h + 200", arg=height
    )
    assert abs(scroller.evaluate("el => el.scrollTop") - top) <= 2

    # back to the end: following again
    page.get_by_role("button", name="Scroll to latest").click()
    expect(page.get_by_role("button", name="Scroll to latest")).to_have_count(0)
    height = scroller.evaluate("el => el.scrollHeight")
    page.wait_for_function(
        "h => document.querySelector('.messages').scrollHeight > h + 200", arg=height
    )
    assert scroller.evaluate(distance) < 64
    page.get_by_role("button", name="Stop").click()
    wait_idle(page)
