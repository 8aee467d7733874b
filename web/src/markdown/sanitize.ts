/**
 * The last check on HTML made from model output, run by DOMPurify in the browser, and the
 * check run again when the user acts on a URL from it.
 *
 * md.ts already renders raw HTML as text and refuses unsafe links; this makes sure of it
 * whatever a parser plugin or a future change lets through. The sanitizer is an allow-list:
 * only the elements and attributes our renderer makes survive (markdown-it, task lists,
 * highlight.js spans, KaTeX's HTML, MathML and SVG, the code header and the image placeholder);
 * sanitize.allowlist.test.ts renders a broad corpus and fails when it drops anything of ours.
 * Nothing on the list fetches anything (no img, no src, no url() in CSS); links go only to
 * http(s), mailto or relative targets, in a new tab with no referrer; checkboxes are disabled;
 * buttons are plain buttons. The one way to fetch an image is the user's click on a
 * `button.md-image` (components/Markdown.tsx), and that click, like a click on a link, checks
 * its URL again (checkedImageUrl, checkedLinkUrl) before anything is loaded or opened.
 * This module must never fetch anything, nor hand back an attribute it has not checked.
 */

import DOMPurify, { type Config, type DOMPurify as DOMPurifyInstance } from "dompurify";

import { isSafeUrl } from "./md";

/** Every element our renderer makes, and no other. */
export const ALLOWED_TAGS: readonly string[] = [
  // Not ours: the element DOMPurify parses the input into and walks from. Left off the list,
  // it is "removed" by deep-cloning every child out of it on every call (+40 % per block).
  // Its own attributes are checked like any other and it is never handed back.
  "body",
  // markdown-it (CommonMark + GFM tables, strikethrough), task lists, our own wrappers
  "p",
  "h1",
  "h2",
  "h3",
  "h4",
  "h5",
  "h6",
  "em",
  "strong",
  "s",
  "code",
  "pre",
  "blockquote",
  "ul",
  "ol",
  "li",
  "hr",
  "br",
  "a",
  "table",
  "thead",
  "tbody",
  "tr",
  "th",
  "td",
  "div",
  "span",
  "input",
  "button",
  // KaTeX's SVG: stretchy arrows and braces, wide accents, tall roots and delimiters, \cancel
  "svg",
  "path",
  "line",
  // KaTeX's MathML, for screen readers (semantics + annotation carry the TeX source)
  "math",
  "semantics",
  "annotation",
  "mrow",
  "mi",
  "mn",
  "mo",
  "mtext",
  "mspace",
  "mfrac",
  "msqrt",
  "mroot",
  "msup",
  "msub",
  "msubsup",
  "mover",
  "munder",
  "munderover",
  "mtable",
  "mtr",
  "mtd",
  "menclose",
  "mstyle",
  "mpadded",
  "mphantom",
];

/** Every attribute our renderer writes, and no other (target and rel are set by the hook). */
export const ALLOWED_ATTR: readonly string[] = [
  // HTML
  "class",
  "style",
  "title",
  "href",
  "start",
  "type",
  "checked",
  "disabled",
  "aria-hidden",
  "aria-label",
  "data-src",
  // SVG
  "xmlns",
  "width",
  "height",
  "viewBox",
  "preserveAspectRatio",
  "d",
  "x1",
  "y1",
  "x2",
  "y2",
  "stroke-width",
  // MathML
  "display",
  "encoding",
  "mathvariant",
  "mathcolor",
  "mathbackground",
  "mathsize",
  "displaystyle",
  "scriptlevel",
  "fence",
  "stretchy",
  "separator",
  "largeop",
  "lspace",
  "rspace",
  "minsize",
  "maxsize",
  "accent",
  "accentunder",
  "linethickness",
  "notation",
  "depth",
  "voffset",
  "linebreak",
  "columnalign",
  "columnlines",
  "columnspacing",
  "rowlines",
  "rowspacing",
];

const CONFIG: Config = {
  ALLOWED_TAGS: [...ALLOWED_TAGS],
  ALLOWED_ATTR: [...ALLOWED_ATTR],
  // Listed one by one above instead: any data-* or aria-* would otherwise pass.
  ALLOW_DATA_ATTR: false,
  ALLOW_ARIA_ATTR: false,
  ALLOW_UNKNOWN_PROTOCOLS: false,
  SANITIZE_DOM: true,
};

/** CSS that could fetch something or hide a trick: url(), image-set(), @import, escapes. */
const RISKY_STYLE = /url\s*\(|image|@import|expression|\\|\/\*|javascript|behavior|binding/i;

/**
 * Two DOMPurify instances, each configured once (setConfig): passing a config to every
 * sanitize() call makes DOMPurify rebuild its allow-lists each time, which costs more than the
 * cleaning itself for a small block.
 */
function purifier(config: Config): DOMPurifyInstance {
  const instance = DOMPurify(window);
  instance.setConfig(config);
  instance.addHook("afterSanitizeAttributes", (node) => {
    const element = node as Element;
    const style = element.getAttribute?.("style");
    if (style && RISKY_STYLE.test(style)) element.removeAttribute("style");
    const tag = element.tagName?.toLowerCase();
    if (element.hasAttribute?.("href")) {
      const href = element.getAttribute("href") ?? "";
      if (tag !== "a" || !isSafeUrl(href)) {
        element.removeAttribute("href");
      } else {
        element.setAttribute("target", "_blank");
        element.setAttribute("rel", "noopener noreferrer nofollow ugc");
        element.setAttribute("referrerpolicy", "no-referrer");
      }
    }
    // A target or rel of the input's own never gets here: they are not on the allow-list.
    // The image placeholder's URL: only on the placeholder, and only a safe one.
    if (
      element.hasAttribute?.("data-src") &&
      (tag !== "button" || !isSafeUrl(element.getAttribute("data-src") ?? ""))
    ) {
      element.removeAttribute("data-src");
    }
    if (tag === "input") {
      element.setAttribute("disabled", "");
      element.setAttribute("type", "checkbox");
    }
    if (tag === "button") element.setAttribute("type", "button");
  });
  return instance;
}

let toString: DOMPurifyInstance | null = null;
let toFragment: DOMPurifyInstance | null = null;

/** Sanitized HTML as a string (the whole-document path: tests, the naive benchmark). */
export function sanitizeHtml(html: string): string {
  toString ??= purifier(CONFIG);
  return toString.sanitize(html) as unknown as string;
}

/**
 * Replace the children of `target` with `html`, sanitized: the streaming path, run on every
 * token for the block being written. DOMPurify parses the HTML in its own inert document (no
 * script runs, nothing loads), cleans it there and hands back the nodes, which are moved into
 * the page as they are: no serializing and re-parsing, so no room for mutation XSS either.
 */
export function sanitizeInto(target: Element, html: string): void {
  toFragment ??= purifier({ ...CONFIG, RETURN_DOM_FRAGMENT: true });
  target.replaceChildren(toFragment.sanitize(html) as unknown as DocumentFragment);
}

/**
 * The page's own host: a cookie is scoped to a host (any port, either scheme), so a request
 * there that model output chose could carry the user's session.
 */
function isOwnHost(url: URL, page: URL): boolean {
  return url.hostname === page.hostname;
}

/** A path of the page's own API, as the server will read it (percent-decoded). */
function isOwnApi(url: URL, page: URL): boolean {
  if (!isOwnHost(url, page)) return false;
  let path: string;
  try {
    path = decodeURIComponent(url.pathname).toLowerCase();
  } catch {
    return true; // undecodable: refuse rather than guess how the server reads it
  }
  return /^\/+api(\/|$)/.test(path);
}

function resolve(url: string, page: URL): URL | null {
  try {
    return new URL(url, page);
  } catch {
    return null;
  }
}

/**
 * The URL a click on an image placeholder may load, checked again at click time; null when it
 * must not be loaded. Only https images from another host: the page's own host would get the
 * user's session cookie with the request (a GET that starts a generation, for one), and plain
 * http could be read and changed on the way.
 */
export function checkedImageUrl(button: Element, page: string = window.location.href): string | null {
  if (!button.matches("button.md-image")) return null;
  const src = button.getAttribute("data-src") ?? "";
  if (src === "" || !isSafeUrl(src)) return null;
  const base = new URL(page);
  const url = resolve(src, base);
  if (!url || url.protocol !== "https:" || isOwnHost(url, base)) return null;
  return url.href;
}

const LINK_PROTOCOLS = new Set(["http:", "https:", "mailto:"]);

/**
 * The URL a click on a link from model output may open, checked again at click time; null when
 * it must not be followed. The sanitizer's rule (isSafeUrl: http(s), mailto, relative), and
 * never the page's own API (a link is a GET with the session cookie, from the same origin).
 */
export function checkedLinkUrl(anchor: Element, page: string = window.location.href): string | null {
  if (anchor.localName !== "a" || anchor.namespaceURI !== "http://www.w3.org/1999/xhtml") return null;
  const href = anchor.getAttribute("href");
  if (href === null || !isSafeUrl(href)) return null;
  const base = new URL(page);
  const url = resolve(href, base);
  if (!url || !LINK_PROTOCOLS.has(url.protocol) || isOwnApi(url, base)) return null;
  return url.href;
}
