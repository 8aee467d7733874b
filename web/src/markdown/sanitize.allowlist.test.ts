// @vitest-environment jsdom
/**
 * The sanitizer's allow-list against what our renderer really makes. A broad corpus (prose,
 * lists, tables, links, image placeholders, code in every language highlight.js bundles, and
 * KaTeX: stretchy arrows, braces, wide accents, roots, tall delimiters, \cancel, environments,
 * errors) is rendered by markdown-it, parsed as a page would parse it, and compared node by node
 * with what the sanitizer hands back: nothing of ours may be dropped or changed, and the
 * allow-list may name nothing the corpus does not use.
 */

import katex from "katex";
import { describe, expect, it } from "vitest";

import { createMarkdown } from "./md";
import { ALLOWED_ATTR, ALLOWED_TAGS, sanitizeHtml, sanitizeInto } from "./sanitize";

const md = createMarkdown();
const HTML_NS = "http://www.w3.org/1999/xhtml";
const MATHML_NS = "http://www.w3.org/1998/Math/MathML";

/** A few lines in each language of highlight.js/lib/common, to bring out its span classes. */
const CODE: Record<string, string> = {
  bash: 'for f in *.txt; do\n  echo "$f" | grep -c "x" > /dev/null 2>&1 && exit 1\ndone # done',
  c: '#include <stdio.h>\nint main(void) { printf("%d\\n", 42); return 0; }',
  cpp: "template <typename T> auto f(T x) -> T { return x * 2; }\nstd::vector<int> v{1, 2};",
  csharp: 'public class A : B { [Obsolete] public async Task<int> F() => await G("s"); }',
  css: '@media (max-width: 600px) { .a > b::before { content: "x"; color: #fff !important; } }',
  diff: "--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n-old\n+new\n context",
  go: 'package main\nimport "fmt"\nfunc main() { ch := make(chan int); go func() { ch <- 1 }(); fmt.Println(<-ch) }',
  graphql: "query Q($id: ID!) { user(id: $id) { name ...F @include(if: true) } }",
  ini: "[section]\nkey = value ; comment\nnumber=42\n",
  java: '@Override\npublic static void main(String[] args) { var x = new ArrayList<String>(); System.out.println("x"); }',
  javascript:
    "const f = async ({ a, ...rest }) => { await import('x'); return `t${a}` /* c */; };\nclass A extends B {}",
  json: '{"a": [1, 2.5e3, true, null], "b": {"c": "d"}}',
  kotlin: 'data class P(val x: Int) { fun f() = listOf(1).map { it * 2 } }\nval s = "v=${1}"',
  less: "@c: #333;\n.mixin(@a) { color: darken(@c, 10%); }\n.b { .mixin(1); &:hover { x: y } }",
  lua: 'local t = { a = 1 }\nfunction f(...) return #t end -- comment\nprint(string.format("%d", 1))',
  makefile: "CC ?= gcc\nall: main.o\n\t$(CC) -o $@ $^\n.PHONY: all",
  markdown: "# Title\n\n*em* **strong** `code` [link](http://x) \n\n- item\n> quote",
  objectivec: '@interface A : NSObject\n@property (nonatomic) int x;\n- (void)f { NSLog(@"%d", self.x); }\n@end',
  perl: 'my @a = (1, 2); foreach my $x (@a) { print "$x\\n" if $x =~ /\\d+/; }',
  php: '<?php\nnamespace A;\nfunction f(array $a): ?int { return $a["k"] ?? null; }\n$x = new B();\n?>',
  "php-template": '<p><?php echo $x; ?></p>\n<?= "y" ?>',
  plaintext: "just text <not> & markup",
  python:
    '@dataclass\nclass A(B):\n    def f(self, x: int = 1) -> str:\n        """Doc."""\n        return f"{x!r}"  # c',
  "python-repl": ">>> 1 + 1\n2\n>>> print('x')\nx",
  r: "f <- function(x, ...) { x %>% filter(y > 1L) }\nlibrary(dplyr); NULL; TRUE",
  ruby: 'class A < B\n  def f(x = 1, *rest, &blk) = puts "#{x}"\nend\n:sym; @ivar; %w[a b]',
  rust: '#[derive(Debug)]\npub fn f<\'a>(x: &\'a str) -> Result<u8, E> { let m = r"raw"; println!("{}", x); Ok(1) }',
  scss: "$c: #333;\n@mixin m($a) { color: $c; }\n.b { @include m(1); &:hover { x: y } }",
  shell: "$ ls -la\ntotal 0\n$ echo hi\nhi",
  sql: "SELECT a, COUNT(*) FROM t WHERE b = 'x' AND c IS NOT NULL GROUP BY a; -- c",
  swift: 'struct A: P { var x: Int = 1\n  func f() async throws -> String { return "\\(x)" } }',
  typescript:
    "interface A<T> { x?: T }\ntype B = keyof A<number>;\nexport enum E { X = 1 }\nconst y = z as unknown as B;",
  vbnet: 'Public Sub F(ByVal x As Integer)\n  Dim s As String = "x" \' comment\nEnd Sub',
  wasm: '(module (func $f (param i32) (result i32) local.get 0 i32.const 1 i32.add) (export "f" (func $f)))',
  xml: '<?xml version="1.0"?>\n<!DOCTYPE x>\n<a href="x" onclick="y"><![CDATA[z]]><!-- c --></a>',
  yaml: "key: value\nlist:\n  - 1\n  - &anchor {a: b}\nref: *anchor # c\nmulti: |\n  text",
};

/** TeX that brings out every kind of node KaTeX makes: one formula per entry. */
const TEX = [
  "x^2 + y_1 + z_a^b",
  "a, b; c",
  String.raw`\frac{a}{b} \dfrac{a}{b} \tfrac12 \cfrac{a}{b} \binom{n}{k} \genfrac(]{0pt}{2}{a}{b}`,
  String.raw`\sqrt{x} \sqrt[3]{y} \sqrt{\frac{\frac{a}{b}}{\frac{c}{d}}}`,
  String.raw`\left( \frac{a}{b} \right) \Bigg( x \Bigg] \big\langle x \big\rangle \lvert x \rvert \lceil x \rfloor`,
  String.raw`\left\{ \begin{matrix} a \\ b \\ c \\ d \\ e \end{matrix} \right.`,
  String.raw`\left\| \begin{matrix} a\\b\\c\\d\\e\\f \end{matrix} \right\| \left\uparrow \begin{matrix} a\\b\\c\\d\\e\\f \end{matrix}\right\updownarrow`,
  String.raw`\left\lgroup x \right\rgroup \left\lmoustache x \right\rmoustache`,
  String.raw`\overrightarrow{AB} \overleftarrow{AB} \underrightarrow{AB} \overleftrightarrow{AB}`,
  String.raw`\xrightarrow[under]{over} \xleftarrow{x} \xRightarrow{x} \xLeftarrow{x} \xleftrightarrow{x} \xLeftrightarrow{x}`,
  String.raw`\xhookleftarrow{x} \xhookrightarrow{x} \xmapsto{x} \xrightharpoondown{x} \xleftharpoonup{x}`,
  String.raw`\xrightleftharpoons{x} \xleftrightharpoons{x} \xtwoheadrightarrow{x} \xlongequal{x} \xtofrom{x}`,
  String.raw`\overgroup{AB} \undergroup{AB} \overlinesegment{AB} \underlinesegment{AB}`,
  String.raw`\overbrace{a+b}^{n} \underbrace{a+b}_{n}`,
  String.raw`\widehat{abc} \widecheck{abc} \widetilde{abcdef} \utilde{AB} \vec{v} \hat{x} \tilde x \bar x \dot x \ddot x`,
  String.raw`\cancel{x} \bcancel{x} \xcancel{x} \sout{abc} \boxed{x} \fbox{x}`,
  String.raw`\colorbox{red}{x} \fcolorbox{red}{blue}{x} \color{red} x \textcolor{#0a0}{y}`,
  String.raw`\phase{-78^\circ} \angl{n} \oiint \oiiint \oint \iint \smallint`,
  String.raw`\sum_{i=0}^n \prod_i \int_0^1 \lim_{x\to 0} \max_k \operatorname{foo}`,
  String.raw`\phantom{x} \hphantom{x} \vphantom{x} \smash{x} \raisebox{0.25em}{x} \rule{1em}{2pt} \kern1em`,
  String.raw`\mathrlap{x} \mathllap{x} \mathclap{x} \stackrel{!}{=} \overset{a}{b} \underset{a}{b}`,
  String.raw`\mathbb{R} \mathcal{L} \mathfrak{g} \mathsf{x} \mathtt{x} \mathbf{x} \boldsymbol{\alpha} \pmb{x}`,
  String.raw`\text{text é} \textbf{b} \textit{i} \underline{x} \overline{x} \not= \neq \notin \cdots \vdots \ddots`,
  String.raw`\tiny x \small x \large x \Huge x \displaystyle x \scriptstyle x \quad \qquad \, \! \verb|v|`,
  String.raw`\begin{pmatrix} a & b \\ c & d \end{pmatrix} \begin{bmatrix} 1 \end{bmatrix} \begin{vmatrix} 1 \end{vmatrix}`,
  String.raw`\begin{array}{c|c:c} a & b & c \\ \hline d & e & f \\ \hdashline g & h & i \end{array}`,
  String.raw`\begin{cases} a & b \\ c & d \end{cases} \begin{rcases} a \\ b \end{rcases} \substack{a \\ b}`,
  String.raw`a \\ b \newline c`,
  String.raw`\href{https://example.com}{x} \url{https://example.com} \includegraphics{https://example.com/i.png}`,
  String.raw`\htmlClass{x}{y} \htmlId{x}{y} \htmlStyle{color:red}{y} \htmlData{a=b}{y}`,
  String.raw`\undefinedmacro{x}`,
  String.raw`\frac{1}{`,
];

/** Display-only TeX: environments, equation numbers. */
const DISPLAY_TEX = [
  String.raw`\begin{aligned} a &= b \\ c &= d \end{aligned}`,
  String.raw`\begin{gathered} a \\ b \end{gathered} \begin{alignedat}{2} a &= b & c &= d \end{alignedat}`,
  String.raw`\begin{CD} A @>a>> B \\ @VbVV @AAcA \\ C @= D \end{CD}`,
  String.raw`x = y \tag{1}`,
  String.raw`\begin{equation} a \end{equation} \begin{align} a &= b \\ c &= d \end{align}`,
  String.raw`\sqrt{\sqrt{\sqrt{\frac{\frac{\frac{a}{b}}{c}}{d}}}}`,
  String.raw`\left( \begin{array}{c} 1\\2\\3\\4\\5\\6\\7\\8\\9\\10 \end{array} \right)`,
];

const PROSE = [
  "# One",
  "## Two",
  "### Three",
  "#### Four",
  "##### Five",
  "###### Six",
  "",
  "Setext",
  "======",
  "",
  "Some **bold**, _emphasis_, ***both***, `code`, ~~strike~~, a hard  ",
  "break and another\\",
  "one. Entities: &amp; &copy; &#x1F600; <b>raw html is text</b> <!-- so is this -->",
  "",
  "> quoted",
  '> > nested, with a [link](https://example.com/a?b=c&d=e "its title")',
  "",
  "***",
  "",
  "    indented code <x>",
  "",
  "```",
  "fenced, no language",
  "```",
  "",
  "```nope",
  "unknown language",
  "```",
  "",
  "~~~math",
  "E = mc^2",
  "~~~",
  "",
  "Links: [mail](mailto:a@example.com), [relative](/docs#x), [fragment](#top), [ref][r], <https://auto.example/x>,",
  "https://linkify.example/path?q=1 and www.example.org, and [refused](javascript:alert(1)).",
  "",
  "[r]: https://ref.example/ 'ref title'",
].join("\n");

const LISTS = [
  "- one",
  "- two",
  "  - nested",
  "    1. deep",
  "",
  "3. three",
  "4. four",
  "",
  "- [x] done",
  "- [ ] to do",
  "  - [X] nested done",
  "",
  "1. [ ] numbered task",
  "",
  "* loose",
  "",
  "* list",
].join("\n");

const TABLES = [
  "| left | center | right | none |",
  "| :--- | :----: | ----: | ---- |",
  "| `a` | **b** | [c](https://c.example) | $x^2$ |",
  "| 1 | 2 | 3 |",
].join("\n");

const IMAGES = [
  "![a cat](https://images.example/cat.png)",
  "![](https://images.example/no-alt.png)",
  '![alt *with* marks](https://images.example/t.png "a title")',
  "![relative](/local.png) ![http](http://insecure.example/i.gif)",
  "[![linked image](https://images.example/a.png)](https://images.example/)",
  "![by reference][img]",
  "",
  "[img]: https://images.example/ref.png",
].join("\n");

const DOCUMENTS: Record<string, string> = {
  prose: PROSE,
  lists: LISTS,
  tables: TABLES,
  images: IMAGES,
  code: Object.entries(CODE)
    .map(([language, code]) => "```" + language + "\n" + code + "\n```")
    .join("\n\n"),
  "inline math": TEX.map((tex) => `Inline $${tex}$ here.`).join("\n\n"),
  "display math": [...TEX, ...DISPLAY_TEX].map((tex) => `$$\n${tex}\n$$`).join("\n\n"),
};

/** `html` as a page gets it from innerHTML: what the browser parses our renderer's output into. */
function parsed(html: string): HTMLElement {
  const container = document.createElement("div");
  container.innerHTML = html;
  return container;
}

/**
 * KaTeX nests token elements in token elements for some commands (\overset, \stackrel,
 * \mathop{}, \ulcorner: `<mo><mi>b</mi></mo>`). A token element is a MathML text integration
 * point, so an HTML parser makes what is inside it an HTML element named `mi`, and DOMPurify's
 * namespace check removes such an element (a mutation-XSS guard we keep, whatever the
 * allow-list says). Only the MathML copy meant for screen readers loses these nodes; the
 * visible rendering (.katex-html) is whole.
 */
function isTokenNestingQuirk(element: Element): boolean {
  return (
    element.namespaceURI === HTML_NS &&
    element.parentElement?.namespaceURI === MATHML_NS &&
    /^m[a-z]+$/.test(element.localName)
  );
}

/** The quirk nodes removed from `root` (in place); returns how many there were. */
function withoutQuirks(root: Element): number {
  const quirks = [...root.querySelectorAll("*")].filter(isTokenNestingQuirk);
  for (const element of quirks) element.remove();
  return quirks.length;
}

/** What the hook adds to a kept link, and nothing else may be added. */
const ADDED_TO_LINKS = new Set(["target", "rel", "referrerpolicy"]);

function describeNode(node: Node): string {
  if (node.nodeType === Node.TEXT_NODE) return `text ${JSON.stringify((node.textContent ?? "").slice(0, 40))}`;
  const element = node as Element;
  const cls = element.getAttribute?.("class");
  return `<${element.localName}${cls ? `.${cls.split(" ").join(".")}` : ""}>`;
}

/** How `clean` differs from `raw`, as readable lines; [] when the sanitizer kept everything. */
function differences(raw: Node, clean: Node, path = ""): string[] {
  const here = `${path} > ${describeNode(raw)}`;
  if (raw.nodeType !== clean.nodeType || raw.nodeName !== clean.nodeName) {
    return [`${here}: became ${describeNode(clean)}`];
  }
  if (raw.nodeType === Node.TEXT_NODE) {
    return raw.textContent === clean.textContent ? [] : [`${here}: text became ${describeNode(clean)}`];
  }
  const found: string[] = [];
  if (raw instanceof Element && clean instanceof Element) {
    if (raw.namespaceURI !== clean.namespaceURI) found.push(`${here}: namespace ${clean.namespaceURI}`);
    for (const attribute of raw.attributes) {
      const kept = clean.getAttribute(attribute.name);
      // DOMPurify trims every attribute value (a KaTeX error's title can end in a newline).
      if (kept === null) found.push(`${here}: lost attribute ${attribute.name}="${attribute.value.slice(0, 40)}"`);
      else if (kept !== attribute.value.trim())
        found.push(`${here}: ${attribute.name}="${attribute.value}" became "${kept}"`);
    }
    for (const attribute of clean.attributes) {
      const allowed = clean.localName === "a" && ADDED_TO_LINKS.has(attribute.name);
      if (!raw.hasAttribute(attribute.name) && !allowed) found.push(`${here}: gained attribute ${attribute.name}`);
    }
  }
  const rawChildren = [...raw.childNodes];
  const cleanChildren = [...clean.childNodes];
  if (rawChildren.length !== cleanChildren.length) {
    const names = (nodes: Node[]): string => nodes.map(describeNode).join(" ");
    return [...found, `${here}: children [${names(rawChildren)}] became [${names(cleanChildren)}]`];
  }
  rawChildren.forEach((child, i) => found.push(...differences(child, cleanChildren[i] as Node, here)));
  return found;
}

/** Differences through both sanitizer paths: the fragment (streaming) and the string. */
function lossesOf(html: string): string[] {
  const raw = parsed(html);
  withoutQuirks(raw);
  const viaFragment = document.createElement("div");
  sanitizeInto(viaFragment, html);
  const viaString = parsed(sanitizeHtml(html));
  return [...differences(raw, viaFragment), ...differences(raw, viaString).map((line) => `string path: ${line}`)];
}

/** Every element name and attribute name in the rendered corpus. */
function inventory(): { tags: Set<string>; attributes: Set<string> } {
  const tags = new Set<string>();
  const attributes = new Set<string>();
  for (const source of Object.values(DOCUMENTS)) {
    for (const element of parsed(md.render(source)).querySelectorAll("*")) {
      if (isTokenNestingQuirk(element)) continue;
      tags.add(element.localName);
      for (const attribute of element.attributes) attributes.add(attribute.name);
    }
  }
  return { tags, attributes };
}

describe("the allow-list and the renderer", () => {
  it.each(Object.entries(DOCUMENTS))("keeps everything the renderer makes of %s", (_name, source) => {
    const html = md.render(source);
    expect(html.length).toBeGreaterThan(source.length); // it did render
    expect(lossesOf(html)).toEqual([]);
  });

  it("keeps every block as the streaming renderer inserts it", () => {
    // Blocks are sanitized one at a time while an answer streams: each must survive on its own.
    const losses = Object.values(DOCUMENTS).flatMap((source) =>
      source.split("\n\n").flatMap((block) => lossesOf(md.render(block))),
    );
    expect(losses).toEqual([]);
  });

  it("names exactly what the corpus uses, no more and no less", () => {
    const { tags, attributes } = inventory();
    // body is the root DOMPurify parses into (see sanitize.ts), never in our output.
    expect([...tags, "body"].sort()).toEqual([...ALLOWED_TAGS].sort());
    expect([...attributes].sort()).toEqual([...ALLOWED_ATTR].sort());
  });

  it("exercises KaTeX's SVG, MathML and error output", () => {
    const root = parsed(md.render(DOCUMENTS["display math"] as string));
    // Stretchy glyphs, roots and tall delimiters are SVG paths; \cancel draws lines.
    expect(root.querySelectorAll(".katex svg path").length).toBeGreaterThan(50);
    expect(root.querySelectorAll(".katex svg line").length).toBeGreaterThan(0);
    expect(root.querySelector("math semantics annotation")?.getAttribute("encoding")).toBe("application/x-tex");
    // Untrusted commands stay text and invalid TeX is shown as an error, not thrown.
    expect(root.querySelectorAll(".katex-error").length).toBeGreaterThan(0);
    expect(root.querySelector("a, img, [id], [data-a]")).toBeNull();
  });

  it("sees a loss (the comparison is not blind)", () => {
    const clean = document.createElement("div");
    const html = '<p class="x"><del>gone</del><span data-x="1" style="color: red">kept</span></p>';
    sanitizeInto(clean, html);
    expect(differences(parsed(html), clean)).toEqual([
      ' > <div> > <p.x> > <del>: became text "gone"',
      ' > <div> > <p.x> > <span>: lost attribute data-x="1"',
    ]);
    const nested = "<p>a<sup>b<em>c</em></sup></p>";
    sanitizeInto(clean, nested);
    expect(differences(parsed(nested), clean)).toEqual([
      ' > <div> > <p>: children [text "a" <sup>] became [text "a" text "b" <em>]',
    ]);
  });
});

describe("KaTeX's token-in-token nesting", () => {
  it("is the only thing the comparison leaves out, and only from the MathML copy", () => {
    const html = katex.renderToString(String.raw`\overset{a}{b} + \mathop{x}`, { throwOnError: false });
    const raw = parsed(html);
    expect(withoutQuirks(raw)).toBeGreaterThan(0);
    const clean = document.createElement("div");
    sanitizeInto(clean, html);
    expect(differences(raw, clean)).toEqual([]);
    // The visible rendering is untouched.
    expect(clean.querySelector(".katex-html")?.outerHTML).toBe(parsed(html).querySelector(".katex-html")?.outerHTML);
  });
});
