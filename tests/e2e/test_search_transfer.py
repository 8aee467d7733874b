"""Search, export and import in a real browser against the real server.

- Ctrl+K goes to the sidebar's search box; a hit opens its conversation on the branch holding
  the match (not the one shown before), scrolled to it, and a reload comes back there.
- Snippets are untrusted (users' messages, model output, imported files): each holding a payload
  of fixtures/xss, or markup of our own, shows as literal text, with no element, handler or CSP
  violation in the results, and no script run.
- The header's export menu and Settings' "Export all conversations" download the conversation.
- Importing a ChatGPT export from Settings shows its progress, then what was imported; the
  conversation opens on ChatGPT's current branch; a malformed file shows the server's refusal.
- The search results and Settings' "Your data" pass the axe audit.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.harness import Browser, Server
from tests.e2e.test_a11y import audit_everywhere
from tests.e2e.test_chat import answers, user_messages, wait_idle
from tests.e2e.test_xss import PAYLOAD_FILES

pytest.importorskip("playwright.sync_api", reason="the end-to-end tests need playwright")

from playwright.sync_api import Locator, Page, Route, expect

CHAT_EXPORTS = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "chat-exports"
CHATGPT_TREE = CHAT_EXPORTS / "chatgpt-librechat-tree.json"

# What the search box must never hold: markup taken as markup, a handler, a fetching attribute.
RESULTS_CHECK = """
() => {
  const problems = [];
  const root = document.querySelector('.search-results');
  if (!root) return ['no results'];
  const allowed = new Set(['DIV', 'P', 'UL', 'LI', 'SPAN', 'MARK', 'TIME', 'BUTTON']);
  for (const el of root.querySelectorAll('*')) {
    if (!allowed.has(el.tagName)) problems.push('element ' + el.outerHTML.slice(0, 120));
    for (const attr of el.attributes) {
      const name = attr.name.toLowerCase();
      if (name.startsWith('on') || ['src', 'href', 'srcset', 'style', 'action'].includes(name))
        problems.push('attribute ' + name + ' on ' + el.tagName);
    }
  }
  return problems;
}
"""

# Each hit as shown: the snippet's text (the title's, for a title hit) and its marked words.
SHOWN_HITS = """
() => [...document.querySelectorAll('.search-results [role=option]')].map((option) => {
  const snippet =
    option.querySelector('.search-snippet') || option.querySelector('.search-hit-title');
  return [snippet.textContent, [...snippet.querySelectorAll('mark')].map((m) => m.textContent)];
})
"""


def search_box(page: Page) -> Locator:
    return page.get_by_role("combobox", name="Search conversations")


def hits(page: Page) -> Locator:
    return page.get_by_role("listbox", name="Search results").get_by_role("option")


def message(page: Page, message_id: str) -> Locator:
    return page.locator(f'[data-message-id="{message_id}"]')


def ask(server: Server, conversation_id: str, content: str, **fields: Any) -> Any:
    """Send a question through the API and wait for its answer (the fake model echoes it)."""
    server.api(
        "POST", f"/api/conversations/{conversation_id}/messages", {"content": content, **fields}
    )
    return server.wait_for_answer(conversation_id)


def api_hits(server: Server, query: str) -> list[Any]:
    """Every hit of ``query``, as the API gives them, page after page."""
    found: list[Any] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"q": query, "limit": 50}
        if cursor:
            params["cursor"] = cursor
        page = server.api("GET", "/api/search?" + str(httpx.QueryParams(params)))
        found += page["results"]
        cursor = page["next_cursor"]
        if cursor is None:
            return found


def post_file(server: Server, body: bytes) -> httpx.Response:
    with httpx.Client(base_url=server.base_url, timeout=20) as client:
        return client.post(
            "/api/import",
            content=body,
            headers={"Authorization": f"Bearer {server.key}", "Content-Type": "application/json"},
        )


def export_document(conversations: list[dict[str, Any]]) -> bytes:
    """Our export format, version 1, holding ``conversations`` (each: id, title, messages as
    (id, parent id, role, text)); the leaf is the last message."""
    now = time.time()
    document = {
        "format": "ssechat-export",
        "version": 1,
        "exported_at": now,
        "conversations": [
            {
                "id": conversation["id"],
                "title": conversation["title"],
                "model": None,
                "system_prompt": None,
                "tools": [],
                "created_at": now,
                "updated_at": now,
                "current_leaf_id": conversation["messages"][-1][0],
                "messages": [
                    {
                        "id": mid,
                        "parent_id": parent,
                        "role": role,
                        "content": text,
                        "status": "complete",
                        "model": None,
                        "finish_reason": None,
                        "usage": None,
                        "error": None,
                        "reasoning": None,
                        "reasoning_seconds": None,
                        "tool_calls": None,
                        "created_at": now + i,
                        "updated_at": now + i,
                    }
                    for i, (mid, parent, role, text) in enumerate(conversation["messages"])
                ],
            }
            for conversation in conversations
        ],
    }
    return json.dumps(document).encode()


def test_search_opens_the_hit_on_its_branch(ui: Browser, server: Server) -> None:
    word = f"zephyr{uuid.uuid4().hex[:8]}"
    conversation_id = server.new_conversation("fake-echo@0")
    ask(server, conversation_id, f"Where does the {word} live?")
    filler = "\n\n".join(f"Line {n} of a long question that fills the screen." for n in range(30))
    for _ in range(4):
        ask(server, conversation_id, filler)
    branch_a_leaf = server.conversation(conversation_id)["current_leaf_id"]
    # The first question edited: a second root, now the branch shown.
    ask(server, conversation_id, "Something else entirely", parent_id=None)
    assert server.conversation(conversation_id)["current_leaf_id"] != branch_a_leaf
    first_hit = api_hits(server, word)[0]
    assert first_hit["conversation_id"] == conversation_id

    page = ui.page(f"/c/{conversation_id}")
    expect(user_messages(page).first.locator(".bubble")).to_have_text("Something else entirely")
    composer = page.get_by_role("textbox", name="Message")
    composer.click()

    # Ctrl+K from the composer; Escape clears and gives the focus back.
    page.keyboard.press("Control+k")
    expect(search_box(page)).to_be_focused()
    search_box(page).fill(word)
    expect(hits(page).first).to_be_visible()
    expect(hits(page).first.locator("mark").first).to_have_text(word)
    search_box(page).press("Escape")
    expect(search_box(page)).to_have_value("")
    expect(composer).to_be_focused()
    expect(hits(page)).to_have_count(0)

    page.keyboard.press("Control+k")
    search_box(page).fill(word)
    expect(hits(page).first).to_be_visible()
    search_box(page).press("ArrowDown")
    expect(hits(page).first).to_have_attribute("aria-selected", "true")
    expect(search_box(page)).to_have_attribute(
        "aria-activedescendant", hits(page).first.get_attribute("id") or "?"
    )
    search_box(page).press("Enter")

    expect(page).to_have_url(f"{server.base_url}/c/{conversation_id}?m={first_hit['message_id']}")
    found = message(page, first_hit["message_id"])
    expect(found).to_be_in_viewport()
    expect(found).to_be_focused()
    expect(found).to_contain_text(word)
    expect(user_messages(page).first).to_contain_text(word)
    expect(page.get_by_text("Something else entirely")).to_have_count(0)
    # It was scrolled to: the end of the conversation, where it opens otherwise, is out of view.
    expect(answers(page).last).not_to_be_in_viewport()
    server.wait_for_leaf(conversation_id, branch_a_leaf)

    # The URL carries the hit: a reload comes back to it.
    page.reload()
    expect(message(page, first_hit["message_id"])).to_be_in_viewport()
    expect(answers(page).last).not_to_be_in_viewport()

    # Another hit, by mouse: the question's echo, further down the same branch.
    every_hit = api_hits(server, word)
    second_hit = every_hit[1]
    assert second_hit["message_id"] is not None
    page.keyboard.press("Control+k")
    search_box(page).fill(word)
    expect(hits(page)).to_have_count(len(every_hit))
    hits(page).nth(1).click()
    expect(page).to_have_url(f"{server.base_url}/c/{conversation_id}?m={second_hit['message_id']}")
    expect(message(page, second_hit["message_id"])).to_be_in_viewport()
    expect(message(page, second_hit["message_id"])).to_be_focused()


def test_snippets_holding_markup_render_inert(ui: Browser, server: Server) -> None:
    token = f"xss{uuid.uuid4().hex[:8]}"
    ours = f'{token} <script>window.__pwned=1</script> <img src=x onerror="window.__pwned=2">'
    payloads = [ours]
    for path in PAYLOAD_FILES:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        payloads += [f"{token} {line.strip()}" for line in lines if line.strip()][:6]
    messages: list[tuple[str, str | None, str, str]] = []
    parent = None
    for n, text in enumerate(payloads):
        for role in ("user", "assistant"):
            mid = f"{token}-{n}-{role}"
            messages.append((mid, parent, role, text))
            parent = mid
    title = f"{token} <script>window.__pwned=3</script><b onmouseover=alert(1)>bold</b>"
    imported = post_file(
        server,
        export_document([{"id": f"{token}-conversation", "title": title, "messages": messages}]),
    )
    assert imported.status_code == 200, imported.text
    expected = api_hits(server, token)
    assert len(expected) > 40

    page = ui.page("/")
    start_url = page.url
    page.keyboard.press("Control+k")
    search_box(page).fill(token)
    expect(hits(page).first).to_be_visible()
    load_more = page.get_by_role("button", name="Load more")
    for page_end in range(20, len(expected), 20):  # the UI asks for 20 hits at a time
        expect(hits(page)).to_have_count(page_end)
        load_more.click()
    expect(hits(page)).to_have_count(len(expected))
    expect(load_more).to_have_count(0)

    shown = page.evaluate(SHOWN_HITS)
    wanted = [
        [
            "".join(p["text"] for p in hit["snippet"]),
            [p["text"] for p in hit["snippet"] if p["match"]],
        ]
        for hit in expected
    ]
    assert sorted(map(json.dumps, shown)) == sorted(map(json.dumps, wanted))
    texts = [text for text, _ in shown]
    assert any("<script>window.__pwned=1</script>" in text for text in texts)
    assert any('<img src=x onerror="window.__pwned=2">' in text for text in texts)
    assert any("<b onmouseover=alert(1)>" in text for text in texts)

    assert page.evaluate(RESULTS_CHECK) == []
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.evaluate("window.__cspViolations") == []
    # Hovering and choosing hits runs nothing either.
    hits(page).first.hover()
    search_box(page).press("ArrowDown")
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.url == start_url


def test_export_downloads(ui: Browser, server: Server) -> None:
    word = f"export{uuid.uuid4().hex[:8]}"
    conversation_id = server.new_conversation("fake-echo@0")
    ask(server, conversation_id, f"Keep the {word} safe")
    page = ui.page(f"/c/{conversation_id}")
    wait_idle(page)

    page.get_by_role("button", name="Export conversation").click()
    with page.expect_download() as markdown:
        page.get_by_role("link", name="Export as Markdown").click()
    text = Path(markdown.value.path()).read_text(encoding="utf-8")
    assert f"Keep the {word} safe" in text
    assert markdown.value.suggested_filename.endswith(".md")

    page.get_by_role("button", name="Export conversation").click()
    with page.expect_download() as as_json:
        page.get_by_role("link", name="Export as JSON").click()
    document = json.loads(Path(as_json.value.path()).read_text(encoding="utf-8"))
    assert [c["id"] for c in document["conversations"]] == [conversation_id]

    settings = ui.page("/settings")
    with settings.expect_download() as everything:
        settings.get_by_role("link", name="Export all conversations").click()
    document = json.loads(Path(everything.value.path()).read_text(encoding="utf-8"))
    assert document["format"] == "ssechat-export"
    ours = [c for c in document["conversations"] if c["id"] == conversation_id]
    assert ours
    assert any(f"Keep the {word} safe" == m["content"] for m in ours[0]["messages"])


def current_branch_questions(path: Path) -> list[str]:
    """The user messages on ChatGPT's current branch, read from the file itself."""
    conversation = json.loads(path.read_text(encoding="utf-8"))[0]
    mapping = conversation["mapping"]
    questions = []
    node_id = conversation["current_node"]
    while node_id is not None:
        node = mapping[node_id]
        item = node.get("message")
        if item and item["author"]["role"] == "user":
            questions.append("".join(p for p in item["content"]["parts"] if isinstance(p, str)))
        node_id = node.get("parent")
    return questions[::-1]


def test_import_from_settings(ui: Browser, start_server: Any) -> None:
    server = start_server()
    context = ui.context(server=server)
    page = context.new_page()
    ui.watch_page(page)

    # The request is held back, so that the page shows it under way.
    held: list[Route] = []
    page.route("**/api/import", lambda route: held.append(route))
    page.goto(server.base_url + "/settings")
    chooser = page.get_by_label("Import conversations")
    chooser.set_input_files(str(CHATGPT_TREE))
    # (Held by the test's route, the upload reports no progress: the bar shows where it is.)
    status = page.get_by_role("region", name="Your data").locator("[aria-live=polite]")
    expect(status).to_contain_text(f"{CHATGPT_TREE.name}…")
    progress = page.get_by_role("progressbar", name=f"Importing {CHATGPT_TREE.name}")
    expect(progress).to_be_visible()
    expect(page.get_by_role("button", name="Cancel")).to_be_visible()
    assert len(held) == 1
    held[0].continue_()
    expect(page.get_by_text("Imported 1 conversation.")).to_be_visible()
    expect(progress).to_have_count(0)

    # The same file again: nothing new, and Cancel while it is held ends it.
    chooser.set_input_files(str(CHATGPT_TREE))
    expect(page.get_by_role("button", name="Cancel")).to_be_visible()
    page.get_by_role("button", name="Cancel").click()
    expect(page.get_by_text("Import cancelled: nothing was imported.")).to_be_visible()
    for route in held[1:]:
        with contextlib.suppress(Exception):
            route.abort()
    page.unroute("**/api/import")
    chooser.set_input_files(str(CHATGPT_TREE))
    expect(page.get_by_text("Imported 0 conversations (1 was already here).")).to_be_visible()

    # A malformed file: the server's refusal, saying what and where.
    broken = b'[{"title": "x", "mapping": {"a": {"id": "a", "parent": "b", "children": []}}'
    refusal = post_file(server, broken)
    assert refusal.status_code == 400
    chooser.set_input_files(
        files=[{"name": "broken.json", "mimeType": "application/json", "buffer": broken}]
    )
    expect(page.get_by_role("alert")).to_contain_text(refusal.json()["error"]["message"])

    # The conversation is in the sidebar and opens on ChatGPT's current branch.
    title = json.loads(CHATGPT_TREE.read_text(encoding="utf-8"))[0]["title"]
    page.get_by_role("link", name="Back to chat").click()
    sidebar = page.get_by_role("navigation", name="Conversations")
    sidebar.get_by_role("link", name=title).click()
    questions = current_branch_questions(CHATGPT_TREE)
    assert len(questions) >= 2
    expect(user_messages(page).locator(".bubble")).to_have_text(questions)


def test_search_and_your_data_pass_the_audit(ui: Browser, server: Server) -> None:
    word = f"audit{uuid.uuid4().hex[:8]}"
    conversation_id = server.new_conversation("fake-echo@0", title=f"Audited {word}")
    ask(server, conversation_id, f"Is the {word} accessible?")

    def results_ready(page: Page) -> None:
        expect(page.get_by_role("textbox", name="Message")).to_be_visible()
        page.keyboard.press("Control+k")
        expect(search_box(page)).to_be_focused()
        search_box(page).fill(word)
        expect(hits(page).first).to_be_visible()
        search_box(page).press("ArrowDown")
        expect(hits(page).first).to_have_attribute("aria-selected", "true")

    audit_everywhere(ui, "search results", f"/c/{conversation_id}", results_ready)

    def no_results_ready(page: Page) -> None:
        expect(page.get_by_role("textbox", name="Message")).to_be_visible()
        page.keyboard.press("Control+k")
        search_box(page).fill(f"nothing{uuid.uuid4().hex}")
        expect(page.get_by_text("No conversations match")).to_be_visible()

    audit_everywhere(ui, "no search results", "/", no_results_ready)

    def data_ready(page: Page) -> None:
        expect(page.get_by_role("heading", level=2, name="Your data")).to_be_visible()
        expect(page.get_by_label("Import conversations")).to_be_visible()

    audit_everywhere(ui, "your data", "/settings", data_ready)


def test_your_data_with_accounts_off(ui: Browser, start_server: Any) -> None:
    """With accounts off (no Settings of an account), the sidebar still leads to the data:
    export everything, import a file."""
    server = start_server(admin=None, SSECHAT_AUTH="off")
    page = ui.page("/", server=server, user=None)
    page.get_by_role("navigation", name="Conversations").get_by_role(
        "link", name="Settings"
    ).click()
    expect(page.get_by_role("heading", level=2, name="Your data")).to_be_visible()
    expect(page.get_by_role("heading", name="API keys")).to_have_count(0)
    page.get_by_label("Import conversations").set_input_files(str(CHATGPT_TREE))
    expect(page.get_by_text("Imported 1 conversation.")).to_be_visible()
    with page.expect_download() as everything:
        page.get_by_role("link", name="Export all conversations").click()
    document = json.loads(Path(everything.value.path()).read_text(encoding="utf-8"))
    assert len(document["conversations"]) == 1
