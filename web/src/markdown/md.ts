/**
 * The Markdown dialect of answers: CommonMark + GFM tables, strikethrough and task lists,
 * fenced code highlighted by highlight.js, and KaTeX math ($…$, $$…$$, ```math).
 *
 * Model output is untrusted. Here, at the parser: raw HTML is text (html: false); link targets
 * other than http, https, mailto and relative ones are refused (javascript:, vbscript:, data:,
 * file:, even entity-encoded or split by control characters), so they stay plain text; images
 * never become <img>: they render as a button naming the image's host, and only a click loads
 * them (see components/Markdown.tsx). The sanitizer (sanitize.ts) checks the HTML again.
 * This module must never touch the DOM, so it runs (and is tested) in Node.
 */

import katexModule from "@vscode/markdown-it-katex";
import hljs from "highlight.js/lib/common";
import katex from "katex";
import markdownIt, { type MarkdownIt } from "markdown-it";

import { taskLists } from "./taskLists";

// A CommonJS module with `exports.default`: bundlers in Node mode hand back the whole exports.
type KatexPlugin = typeof katexModule;
const markdownItKatex: KatexPlugin = (katexModule as unknown as { default?: KatexPlugin }).default ?? katexModule;

/**
 * KaTeX, remembering what it rendered: while an answer streams, the block being written is
 * rendered again on every token, with the same formulas in it each time.
 */
const formulas = new Map<string, string>();
const memoKatex = {
  ...katex,
  renderToString(tex: string, options?: katex.KatexOptions): string {
    const key = `${options?.displayMode ? "D" : "I"}${tex}`;
    let html = formulas.get(key);
    if (html === undefined) {
      html = katex.renderToString(tex, options); // errors propagate: the plugin shows them
      if (formulas.size >= 1000) formulas.clear();
      formulas.set(key, html);
    }
    return html;
  },
} as typeof katex;

const SAFE_SCHEMES = new Set(["http", "https", "mailto"]);

/** Browsers drop these anywhere in a URL's scheme ("java\tscript:"), so the check must too. */
const IGNORED_IN_URL = /[\u0000-\u0020\u007f-\u009f\u00ad\u200b-\u200f\u2028\u2029\ufeff]/g;

/** True for http(s), mailto, and scheme-less (relative, fragment) URLs. */
export function isSafeUrl(url: string): boolean {
  const squeezed = url.replace(IGNORED_IN_URL, "").toLowerCase();
  const scheme = /^([a-z][a-z0-9+.-]*):/.exec(squeezed);
  if (scheme) return SAFE_SCHEMES.has(scheme[1] as string);
  // No scheme, but a colon before any / ? # would be read as one by some parsers.
  const colon = squeezed.indexOf(":");
  if (colon === -1) return true;
  // An entity before the colon could spell a scheme once decoded ("jav&#x09;ascript:").
  if (squeezed.slice(0, colon).includes("&")) return false;
  const firstDelimiter = squeezed.search(/[/?#]/);
  return firstDelimiter !== -1 && firstDelimiter < colon;
}

/** The host an image would be fetched from, for its placeholder; "" when there is none. */
export function hostOf(url: string): string {
  try {
    const parsed = new URL(url, "https://relative.invalid/");
    return parsed.hostname === "relative.invalid" ? "" : parsed.hostname;
  } catch {
    return "";
  }
}

function languageOf(info: string): string {
  const word = info.trim().split(/\s+/, 1)[0] ?? "";
  return word.replace(/[^\w+#.-]/g, "").slice(0, 32);
}

export function createMarkdown(): MarkdownIt {
  const md = markdownIt({
    html: false,
    linkify: true,
    typographer: false,
    breaks: false,
  });
  md.validateLink = isSafeUrl;
  md.use(taskLists);
  md.use(markdownItKatex, { enableFencedBlocks: true, throwOnError: false, katex: memoKatex });
  const escape = md.utils.escapeHtml;

  // Fenced and indented code: a header with the language and a Copy button, then the code,
  // highlighted when the language is named and known (auto-detection is too slow per token).
  const mathFence = md.renderer.rules.fence;
  md.renderer.rules.fence = (tokens, idx, options, env, self) => {
    const token = tokens[idx];
    if (!token) return "";
    const language = languageOf(token.info);
    if (language.toLowerCase() === "math" && mathFence) return mathFence(tokens, idx, options, env, self);
    return codeBlock(token.content, language);
  };
  md.renderer.rules.code_block = (tokens, idx) => codeBlock(tokens[idx]?.content ?? "", "");

  function codeBlock(code: string, language: string): string {
    let body: string;
    const known = language !== "" && hljs.getLanguage(language) !== undefined;
    if (known) {
      try {
        body = hljs.highlight(code, { language, ignoreIllegals: true }).value;
      } catch {
        body = escape(code);
      }
    } else {
      body = escape(code);
    }
    const label = language === "" ? "text" : escape(language);
    const cls = known ? ` class="hljs language-${escape(language)}"` : ' class="hljs"';
    return (
      `<div class="code-block"><div class="code-head"><span class="code-lang">${label}</span>` +
      `<button type="button" class="md-copy" aria-label="Copy code">Copy</button></div>` +
      `<pre><code${cls}>${body}</code></pre></div>\n`
    );
  }

  // Images: a button that names the host; nothing is fetched until it is clicked.
  md.renderer.rules.image = (tokens, idx, _options, _env, self) => {
    const token = tokens[idx];
    if (!token) return "";
    const src = String(token.attrGet("src") ?? "");
    const alt = self.renderInlineAsText(token.children ?? [], md.options, {});
    const host = hostOf(src);
    const label = host ? `Load image from ${host}` : "Load image";
    return (
      `<button type="button" class="md-image" data-src="${escape(src)}" title="${escape(src)}">` +
      `<span class="md-image-label">${escape(label)}</span>` +
      (alt ? `<span class="md-image-alt">${escape(alt)}</span>` : "") +
      `</button>`
    );
  };

  // Tables scroll sideways on narrow screens instead of widening the page.
  md.renderer.rules.table_open = () => '<div class="table-wrap"><table>\n';
  md.renderer.rules.table_close = () => "</table></div>\n";
  return md;
}
