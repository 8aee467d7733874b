import { describe, expect, it } from "vitest";

import { BlockCache, type Rendered, renderAll, StreamingMarkdown } from "./incremental";
import { createMarkdown } from "./md";

const md = createMarkdown();
const same = (html: string): string => html;
const all = (r: Rendered) => [...r.done, ...r.open];
const join = (r: Rendered): string =>
  all(r)
    .map((b) => b.html)
    .join("");
const sources = (r: Rendered): string =>
  all(r)
    .map((b) => b.source)
    .join("");

const DOCS: Record<string, string> = {
  mixed: [
    "# Title",
    "",
    "Some *text* with `code` and a [link](https://example.com).",
    "Second line of the paragraph.",
    "",
    "- one",
    "- two",
    "",
    "  continued in two",
    "- three",
    "",
    "1. first",
    "2. second",
    "",
    "```python",
    "def f(x):",
    "",
    "    return x  # a blank line above",
    "```",
    "",
    "| a | b |",
    "|---|:-:|",
    "| 1 | 2 |",
    "| 3 | 4 |",
    "",
    "> quoted",
    "lazy continuation",
    "",
    "Setext heading",
    "---",
    "",
    "- [x] done",
    "- [ ] todo",
    "",
    "$$",
    "x^2 + y^2",
    "$$",
    "",
    "Inline $e^{i\\pi}$ math and ~~struck~~ text.",
    "",
    "***",
    "    indented code",
    "",
    "text\n#\n#x and more",
    "",
    "final paragraph",
  ].join("\n"),
  headingOrNot: "para\n#x\n# real heading\nafter\n",
  fenceNeverClosed: "intro\n\n```js\nconst a = 1;\n\nconst b = 2;\n",
  crlf: "a\r\n\r\nb\r\n- c\r\n- d\r\n",
  references: "see [the docs][d]\n\n[d]: https://example.com/docs\n\nand [again][d]\n",
  tildeFence: "~~~\ncode\n~~~\ntext\n",
  htmlIsText: "<script>alert(1)</script>\n\n<b>bold?</b>\n",
};

describe("StreamingMarkdown", () => {
  for (const [name, doc] of Object.entries(DOCS)) {
    it(`renders every prefix of "${name}" as if it were rendered whole`, () => {
      const streaming = new StreamingMarkdown(md, same);
      for (let end = 0; end <= doc.length; end++) {
        const prefix = doc.slice(0, end);
        const got = streaming.update(prefix);
        const whole = renderAll(md, same, prefix);
        expect(join(got), `prefix ${JSON.stringify(prefix.slice(-20))}`).toBe(join(whole));
        expect(sources(got)).toBe(prefix.replace(/\r\n?/g, "\n"));
      }
    });
  }

  it("matches markdown-it rendering the whole document", () => {
    for (const [name, doc] of Object.entries(DOCS)) {
      expect(join(renderAll(md, same, doc)), name).toBe(md.render(doc));
    }
  });

  it("resolves a reference defined in an earlier block", () => {
    const html = join(renderAll(md, same, "[d]: https://example.com/docs\n\nsee [the docs][d]\n"));
    expect(html).toContain('href="https://example.com/docs"');
  });

  it("keeps each block's key from when it opens until the end", () => {
    const doc = DOCS.mixed as string;
    const streaming = new StreamingMarkdown(md, same);
    const sourceByKey = new Map<string, string>();
    for (let end = 0; end <= doc.length; end++) {
      const r = streaming.update(doc.slice(0, end));
      for (const block of all(r)) {
        const before = sourceByKey.get(block.key);
        // a key always names the same block: its source only grows
        if (before !== undefined) expect(block.source.startsWith(before.trimEnd())).toBe(true);
        sourceByKey.set(block.key, block.source);
      }
    }
  });

  it("renders each block only while it is written", () => {
    const doc = DOCS.mixed as string;
    let renders = 0;
    const counting = (html: string): string => {
      renders++;
      return html;
    };
    const streaming = new StreamingMarkdown(md, counting);
    for (let end = 0; end <= doc.length; end++) streaming.update(doc.slice(0, end));
    // about one render per update (the block being written), not one per block per update
    expect(renders).toBeLessThan(doc.length * 1.2);
  });

  it("never re-renders a finished block", () => {
    const doc = DOCS.mixed as string;
    const streaming = new StreamingMarkdown(md, same);
    const seen = new Map<string, object>();
    for (let end = 0; end <= doc.length; end += 3) {
      const r = streaming.update(doc.slice(0, end));
      for (const block of r.done) {
        const before = seen.get(block.key);
        if (before) expect(block).toBe(before); // the very same object
        seen.set(block.key, block);
      }
    }
    expect(seen.size).toBeGreaterThan(10);
  });

  it("parses only the open tail on each update", () => {
    const paragraph = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. ".repeat(4);
    const doc = Array.from({ length: 200 }, (_, i) => `${paragraph}${i}\n`).join("\n");
    const streaming = new StreamingMarkdown(md, same);
    let longestTail = 0;
    for (let end = 0; end <= doc.length; end += 7) {
      const r = streaming.update(doc.slice(0, end));
      longestTail = Math.max(longestTail, r.open.map((b) => b.source).join("").length);
    }
    // the open paragraph, plus the one before it until the next one has a complete line
    expect(longestTail).toBeLessThan(paragraph.length * 2 + 16);
  });

  it("starts over when the text is replaced rather than extended", () => {
    const streaming = new StreamingMarkdown(md, same);
    streaming.update("# one\n\ntwo\n\nthree");
    const r = streaming.update("# other\n\nx");
    expect(join(r)).toBe(md.render("# other\n\nx"));
  });

  it("does not mix up blocks that read different reference definitions", () => {
    const cache = new BlockCache();
    const a = join(renderAll(md, same, "[d]: https://a.example/\n\nsee [x][d]\n\nend", cache));
    const b = join(renderAll(md, same, "[d]: https://b.example/\n\nsee [x][d]\n\nend", cache));
    expect(a).toContain("https://a.example/");
    expect(b).toContain("https://b.example/");
  });

  it("reuses cached blocks across instances", () => {
    const cache = new BlockCache();
    let sanitized = 0;
    const counting = (html: string): string => {
      sanitized++;
      return html;
    };
    renderAll(md, counting, "# a\n\nb\n\nc\n", cache);
    const first = sanitized;
    renderAll(md, counting, "# a\n\nb\n\nc\n", cache);
    expect(sanitized - first).toBe(1); // only the tail block again
  });
});
