/**
 * The last check on HTML made from model output, run by DOMPurify in the browser.
 *
 * md.ts already renders raw HTML as text and refuses unsafe links; this makes sure of it
 * whatever a parser plugin or a future change lets through: no script, no event handler, no
 * element that fetches anything (img, video, iframe, object, link, style…), no src/srcset/
 * poster/background/ping/action attribute, no CSS that can load a URL, no form; links only to
 * http(s), mailto or relative targets, opened in a new tab with no referrer; checkboxes only as
 * disabled task-list boxes. The one way to fetch an image is the user's click on a
 * `button.md-image` (components/Markdown.tsx).
 */

import DOMPurify, { type Config, type DOMPurify as DOMPurifyInstance } from "dompurify";

import { isSafeUrl } from "./md";

const FORBID_TAGS = [
  "script",
  "style",
  "link",
  "meta",
  "base",
  "img",
  "image",
  "picture",
  "source",
  "video",
  "audio",
  "track",
  "iframe",
  "frame",
  "frameset",
  "object",
  "embed",
  "applet",
  "form",
  "textarea",
  "select",
  "option",
  "dialog",
  "template",
  "slot",
  "portal",
  "use",
  "foreignobject",
  "feimage",
  "animate",
  "set",
];

const FORBID_ATTR = [
  "id",
  "name",
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
  "xlink:href",
  "autofocus",
  "tabindex",
  "contenteditable",
];

const CONFIG: Config = {
  FORBID_TAGS,
  FORBID_ATTR,
  ALLOW_DATA_ATTR: true, // data-src of image placeholders
  ADD_ATTR: ["target"],
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
    } else if (element.hasAttribute?.("target")) {
      element.removeAttribute("target");
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
