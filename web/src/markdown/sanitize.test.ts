// @vitest-environment jsdom
/**
 * The sanitizer on its own, in a DOM (jsdom): hostile HTML in, nothing script-capable or
 * fetching out, whatever md.ts lets through. The payload lists are the ones the end-to-end
 * tests stream through the real server into Chromium (tests/e2e/fixtures/xss, see SOURCES.md);
 * here each payload is fed to the sanitizer directly, as raw HTML. That the allow-list keeps
 * everything our own renderer makes is sanitize.allowlist.test.ts.
 */

import { describe, expect, it } from "vitest";

import { createMarkdown } from "./md";
import { sanitizeHtml, sanitizeInto } from "./sanitize";

const PAYLOAD_FILES = import.meta.glob<string>("../../../tests/e2e/fixtures/xss/*.txt", {
  query: "?raw",
  import: "default",
  eager: true,
});

const BANNED_ELEMENTS = [
  "script",
  "style",
  "link",
  "meta",
  "base",
  "iframe",
  "frame",
  "frameset",
  "object",
  "embed",
  "applet",
  "img",
  "image",
  "picture",
  "video",
  "audio",
  "source",
  "track",
  "form",
  "textarea",
  "select",
  "option",
  "template",
  "dialog",
  "portal",
  "use",
  "foreignObject",
  "feImage",
  "animate",
  "set",
].join(",");

/** Attributes that make the browser fetch something as soon as the element exists. */
const FETCHING = [
  "src",
  "srcset",
  "srcdoc",
  "poster",
  "background",
  "lowsrc",
  "dynsrc",
  "ping",
  "action",
  "formaction",
];
const URL_ATTRIBUTES = ["href", "xlink:href", "data", "codebase", "cite", ...FETCHING];
const SCRIPT_URL = /^(javascript|vbscript|data|file|livescript|mocha):/;
const RISKY_STYLE = /url\(|image|@import|expression|javascript|behavior|binding/;

/** What is wrong with the nodes under `root`, as readable lines; [] when it is inert. */
function problems(root: ParentNode): string[] {
  const found: string[] = [];
  for (const element of root.querySelectorAll(BANNED_ELEMENTS)) {
    found.push(`element <${element.tagName.toLowerCase()}>`);
  }
  for (const element of root.querySelectorAll("*")) {
    const tag = element.tagName.toLowerCase();
    for (const attribute of element.attributes) {
      const name = attribute.name.toLowerCase();
      // What a browser ignores in a scheme: whitespace and control characters.
      const value = attribute.value.replace(/[\s\u0000-\u001f]/g, "").toLowerCase();
      if (name.startsWith("on")) found.push(`handler ${name} on <${tag}>`);
      if (FETCHING.includes(name)) found.push(`fetching attribute ${name} on <${tag}>`);
      if (URL_ATTRIBUTES.includes(name) && SCRIPT_URL.test(value)) found.push(`url ${name}=${attribute.value}`);
      if (name === "style" && RISKY_STYLE.test(value)) found.push(`style ${attribute.value}`);
      if (name === "href" && tag !== "a") found.push(`href on <${tag}>`);
    }
    if (tag === "a" && element.hasAttribute("href")) {
      const rel = element.getAttribute("rel") ?? "";
      if (element.getAttribute("target") !== "_blank" || !rel.includes("noopener") || !rel.includes("noreferrer")) {
        found.push(`link without target/rel: ${element.outerHTML.slice(0, 80)}`);
      }
    }
    if (tag === "input" && (element.getAttribute("type") !== "checkbox" || !element.hasAttribute("disabled"))) {
      found.push(`input that is not a disabled checkbox: ${element.outerHTML.slice(0, 80)}`);
    }
  }
  return found;
}

/** A container holding `html` as a page would get it from innerHTML (parsed again). */
function parsed(html: string): HTMLElement {
  const container = document.createElement("div");
  container.innerHTML = html;
  return container;
}

/** The problems of one payload through both paths: the string (re-parsed) and the fragment. */
function check(payload: string): string[] {
  const viaString = problems(parsed(sanitizeHtml(payload)));
  const target = document.createElement("div");
  sanitizeInto(target, payload);
  // The fragment path moves nodes as they are; serializing and re-parsing them must stay inert
  // too (mutation XSS: markup that changes meaning when parsed a second time).
  const viaFragment = [...problems(target), ...problems(parsed(target.innerHTML))];
  return [...new Set([...viaString, ...viaFragment])];
}

/** Vectors aimed at this sanitizer's own rules, which the lists do not single out. */
const TARGETED = [
  '<a href="javascript:alert(1)">x</a>',
  '<a href="java&#x09;script:alert(1)">x</a>',
  '<a href="&#106;avascript:alert(1)">x</a>',
  '<a href=" \u0001javascript:alert(1)">x</a>',
  '<a href="data:text/html,<script>alert(1)</script>">x</a>',
  '<a href="vbscript:msgbox(1)">x</a>',
  '<svg><a xlink:href="javascript:alert(1)"><text x="0" y="10">x</text></a></svg>',
  '<svg><a href="javascript:alert(1)"><text>x</text></a></svg>',
  '<svg><use href="data:image/svg+xml,<svg id=x onload=alert(1)>#x"></use></svg>',
  '<svg><animate attributeName="href" values="javascript:alert(1)"></animate></svg>',
  '<svg><foreignObject><iframe src="javascript:alert(1)"></iframe></foreignObject></svg>',
  '<svg><image href="https://attacker.example/i.png"></image></svg>',
  '<svg><filter><feImage href="https://attacker.example/f.png"></feImage></filter></svg>',
  "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)></style></mglyph></table></mtext></math>",
  '<math><mi xlink:href="javascript:alert(1)">x</mi></math>',
  '<noscript><p title="</noscript><img src=x onerror=alert(1)>"></p></noscript>',
  '<form><math><mtext></form><form><mglyph><svg><mtext><style><path id="</style><img onerror=alert(1) src>">',
  "<img src=x onerror=alert(1)>",
  '<img srcset="https://attacker.example/a.png 1x">',
  '<picture><source srcset="https://attacker.example/b.png"></picture>',
  '<video poster="https://attacker.example/p.png"><source src="x.mp4"></video>',
  '<audio src="https://attacker.example/a.mp3" autoplay></audio>',
  '<iframe srcdoc="<script>alert(1)</script>"></iframe>',
  '<object data="javascript:alert(1)"></object>',
  '<embed src="javascript:alert(1)">',
  '<link rel="stylesheet" href="https://attacker.example/s.css">',
  "<style>@import 'https://attacker.example/s.css';</style>",
  '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
  '<base href="https://attacker.example/">',
  '<form action="https://attacker.example/"><button>go</button></form>',
  '<button formaction="javascript:alert(1)">x</button>',
  '<input type="image" src="https://attacker.example/i.png">',
  '<input type="text" autofocus onfocus="alert(1)">',
  '<details open ontoggle="alert(1)">x</details>',
  '<div style="background:url(https://attacker.example/k)">x</div>',
  "<div style=\"background-image:image-set('https://attacker.example/k.png' 1x)\">x</div>",
  '<div style="background:\\75 rl(https://attacker.example/k)">x</div>',
  '<div style="width:expression(alert(1))">x</div>',
  '<table background="https://attacker.example/t.png"><tr><td background="x">x</td></tr></table>',
  '<a href="https://example.com/" ping="https://attacker.example/ping">x</a>',
  '<area href="javascript:alert(1)">',
  "<template><img src=x onerror=alert(1)></template>",
  '<div id="x" name="y" tabindex="1" contenteditable>x</div><p onmouseover="alert(1)">y</p>',
];

describe("sanitizer: hostile input", () => {
  const files = Object.entries(PAYLOAD_FILES);

  it("finds the payload lists", () => {
    expect(files.map(([path]) => path.split("/").at(-1)).sort()).toEqual([
      "BRUTELOGIC-XSS-STRINGS.txt",
      "IntrudersXSS.txt",
      "MarioXSSVectors.txt",
      "RSNAKE_XSS.txt",
      "XSS_Polyglots.txt",
    ]);
  });

  it.each(files.map(([path, text]) => [path.split("/").at(-1) as string, text]))(
    "leaves nothing script-capable in %s",
    (_name, text) => {
      const payloads = text.split("\n").filter((line) => line.trim() !== "");
      expect(payloads.length).toBeGreaterThan(10);
      const failures = payloads.flatMap((payload) => check(payload).map((problem) => `${problem}  <-  ${payload}`));
      expect(failures).toEqual([]);
    },
  );

  it.each(TARGETED)("leaves nothing script-capable in %s", (payload) => {
    expect(check(payload)).toEqual([]);
  });

  // Hundreds of payloads through the whole renderer: a generous limit, as a loaded CI machine
  // can take several seconds (this is no timing assertion: only a hang fails).
  it("also through the Markdown renderer", { timeout: 60_000 }, () => {
    const md = createMarkdown();
    const payloads = [...TARGETED, ...Object.values(PAYLOAD_FILES).flatMap((text) => text.split("\n"))];
    const failures = payloads.flatMap((payload) => check(md.render(payload)).map((p) => `${p}  <-  ${payload}`));
    expect(failures).toEqual([]);
  });

  it("can see a problem (the check itself is not blind)", () => {
    expect(problems(parsed('<img src=x onerror=alert(1)><a href="javascript:alert(1)">x</a>'))).toEqual([
      "element <img>",
      "fetching attribute src on <img>",
      "handler onerror on <img>",
      "url href=javascript:alert(1)",
      'link without target/rel: <a href="javascript:alert(1)">x</a>',
    ]);
  });
});

describe("sanitizer: safe markup survives", () => {
  it("keeps plain formatting exactly", () => {
    const html =
      "<h2>Title</h2>\n<p><strong>bold</strong> <em>it</em> <s>old</s> <code>x &lt; y</code></p>\n" +
      '<blockquote>\n<p>quoted</p>\n</blockquote>\n<ol start="3">\n<li>three</li>\n</ol>\n<hr>';
    expect(sanitizeHtml(html)).toBe(html);
  });

  it("keeps what the Markdown renderer makes", () => {
    const source = [
      "## Heading",
      "",
      "Some **bold**, _emphasis_, `code` and ~~strike~~, a [link](https://example.com/a?b=c),",
      "[mail](mailto:a@example.com), [relative](/docs#x) and https://example.org/auto.",
      "",
      "- [x] done",
      "- [ ] to do",
      "",
      "| a | b |",
      "| - | -: |",
      "| 1 | 2 |",
      "",
      "```ts",
      "const x: number = 1;",
      "```",
      "",
      "![a cat](https://images.example/cat.png)",
      "",
      "Inline $x^2 + y^2$ and display:",
      "",
      "$$",
      "\\frac{1}{2}",
      "$$",
    ].join("\n");
    const root = parsed(sanitizeHtml(createMarkdown().render(source)));
    expect(problems(root)).toEqual([]);
    expect(root.querySelector("h2")?.textContent).toBe("Heading");
    expect(root.querySelector("strong")?.textContent).toBe("bold");
    expect(root.querySelector("em")?.textContent).toBe("emphasis");
    expect(root.querySelector("s, del")?.textContent).toBe("strike");

    const links = [...root.querySelectorAll("a")].map((a) => [a.getAttribute("href"), a.textContent]);
    expect(links).toEqual([
      ["https://example.com/a?b=c", "link"],
      ["mailto:a@example.com", "mail"],
      ["/docs#x", "relative"],
      ["https://example.org/auto", "https://example.org/auto"],
    ]);
    const link = root.querySelector("a") as HTMLAnchorElement;
    expect(link.getAttribute("target")).toBe("_blank");
    expect(link.getAttribute("rel")).toBe("noopener noreferrer nofollow ugc");
    expect(link.getAttribute("referrerpolicy")).toBe("no-referrer");

    const boxes = [...root.querySelectorAll("input")];
    expect(boxes.map((b) => [b.getAttribute("type"), b.hasAttribute("disabled"), b.hasAttribute("checked")])).toEqual([
      ["checkbox", true, true],
      ["checkbox", true, false],
    ]);
    expect([...root.querySelectorAll("th, td")].map((c) => c.textContent)).toEqual(["a", "b", "1", "2"]);
    expect(root.querySelector("pre code.language-ts span.hljs-keyword")?.textContent).toBe("const");
    expect(root.querySelector("button.md-copy")?.getAttribute("type")).toBe("button");

    const image = root.querySelector("button.md-image") as HTMLButtonElement;
    expect(image.getAttribute("data-src")).toBe("https://images.example/cat.png");
    expect(image.textContent).toContain("Load image from images.example");

    const math = root.querySelectorAll(".katex");
    expect(math.length).toBe(2);
    expect(root.querySelector(".katex-display .mfrac")).not.toBeNull();
    // KaTeX sizes glyphs with style attributes; the harmless ones stay.
    expect(root.querySelectorAll(".katex [style]").length).toBeGreaterThan(0);
  });

  it("removes only the dangerous part of an element", () => {
    const root = parsed(
      sanitizeHtml(
        '<p onclick="alert(1)" class="note">text <a href="javascript:alert(1)" title="t">link</a></p>' +
          '<span style="color: red">red</span><span style="background:url(x)">bg</span>',
      ),
    );
    expect(root.innerHTML).toBe(
      '<p class="note">text <a title="t">link</a></p><span style="color: red">red</span><span>bg</span>',
    );
  });

  it("keeps links only to http(s), mailto and relative targets", () => {
    const hrefs = ["https://a.example/", "http://b.example/", "mailto:c@example.com", "/d", "#e"];
    const refused = ["tel:+100", "sms:100", "ftp://f.example/", "xmpp:g@example.com", "cid:h", "matrix:u/i"];
    const root = parsed(sanitizeHtml([...hrefs, ...refused].map((href) => `<a href="${href}">x</a>`).join("")));
    expect([...root.querySelectorAll("a")].map((a) => a.getAttribute("href"))).toEqual([
      ...hrefs,
      ...refused.map(() => null),
    ]);
  });

  it("sanitizeInto replaces the target's children with the clean nodes", () => {
    const target = document.createElement("div");
    target.innerHTML = "<p>old</p>";
    sanitizeInto(target, '<p>new <strong onclick="alert(1)">bold</strong></p><script>alert(1)</script>');
    expect(target.innerHTML).toBe("<p>new <strong>bold</strong></p>");
  });
});

describe("sanitizer: an allow-list", () => {
  it("keeps only the text of elements our renderer never makes", () => {
    const html =
      "<p><b>b</b> <i>i</i> <u>u</u> <del>d</del> <ins>n</ins> <sup>2</sup> <mark>m</mark> <kbd>k</kbd></p>" +
      "<details><summary>s</summary>hidden</details><section>x</section><font color=red>f</font>";
    expect(sanitizeHtml(html)).toBe("<p>b i u d n 2 m k</p>shidden" + "xf");
  });

  it("keeps no SVG or MathML element KaTeX does not make", () => {
    const root = parsed(
      sanitizeHtml(
        '<svg><circle r="5"></circle><rect width="1"></rect><text>t</text><path d="M0 0"></path></svg>' +
          "<math><mglyph></mglyph><maction>a</maction><ms>s</ms><mi>x</mi></math>",
      ),
    );
    expect([...root.querySelectorAll("*")].map((element) => element.localName)).toEqual(["svg", "path", "math", "mi"]);
  });

  it("keeps only the attributes our renderer writes", () => {
    const root = parsed(
      sanitizeHtml(
        '<p id="x" name="n" lang="en" dir="rtl" data-x="1" aria-describedby="x" aria-label="ok" role="button"' +
          ' tabindex="0" hidden draggable="true" class="c">p</p>',
      ),
    );
    expect(root.innerHTML).toBe('<p aria-label="ok" class="c">p</p>');
  });

  it("never hands back a body, whatever its attributes", () => {
    const html = '<body onload="alert(1)" class="x"><p>x</p></body><body onpageshow="alert(2)">';
    expect(sanitizeHtml(html)).toBe("<p>x</p>");
    const target = document.createElement("div");
    sanitizeInto(target, html);
    expect(target.innerHTML).toBe("<p>x</p>");
  });

  it("keeps an image URL only on the placeholder, and only a safe one", () => {
    const root = parsed(
      sanitizeHtml(
        '<button class="md-image" data-src="https://images.example/a.png">a</button>' +
          '<button class="md-image" data-src="java&#x09;script:alert(1)">b</button>' +
          '<span data-src="https://images.example/c.png">c</span>',
      ),
    );
    expect([...root.querySelectorAll("*")].map((element) => element.getAttribute("data-src"))).toEqual([
      "https://images.example/a.png",
      null,
      null,
    ]);
  });
});
