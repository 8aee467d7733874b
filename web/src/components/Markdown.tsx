/**
 * An answer's Markdown, rendered block by block: finished blocks keep their DOM, only the block
 * still being written is replaced on each update (see markdown/incremental.ts).
 *
 * Remote images arrive as "Load image from <host>" buttons; a click here is the only thing that
 * sets an <img src>. Copy buttons on code blocks are handled here too, by delegation. Every click
 * on an image or a link checks its URL again (markdown/sanitize.ts: checkedImageUrl,
 * checkedLinkUrl) before anything is loaded or opened; a URL that fails is shown as text.
 * This component must never put model output into the page other than through sanitizeInto.
 */

import { memo, type MouseEvent, useLayoutEffect, useRef } from "react";

import { BlockCache, StreamingMarkdown } from "../markdown/incremental";
import { createMarkdown } from "../markdown/md";
import { checkedImageUrl, checkedLinkUrl, sanitizeInto } from "../markdown/sanitize";
import { copyText } from "./clipboard";

const md = createMarkdown();
const cache = new BlockCache();
/** Blocks keep markdown-it's HTML as it is: HtmlBlock sanitizes it as it inserts it. */
const UNSANITIZED = (html: string): string => html;
/** Images the user chose to load in this page, so a re-rendered block shows them again. */
const loadedImages = new Set<string>();

export function Markdown({ text }: { text: string }) {
  const engine = useRef<StreamingMarkdown | null>(null);
  engine.current ??= new StreamingMarkdown(md, UNSANITIZED, cache);
  const { done, open } = engine.current.update(text);
  return (
    <div className="markdown" onClick={onClick} onAuxClick={onAuxClick}>
      {done.map((block) => (
        <HtmlBlock key={block.key} html={block.html} />
      ))}
      {open.map((block) => (
        <HtmlBlock key={block.key} html={block.html} />
      ))}
    </div>
  );
}

/**
 * One top-level block. Its HTML (from markdown-it, untrusted) only ever reaches the page through
 * sanitizeInto; React renders the element empty and never touches its children.
 */
const HtmlBlock = memo(function HtmlBlock({ html }: { html: string }) {
  const ref = useRef<HTMLDivElement>(null);
  useLayoutEffect(() => {
    const element = ref.current;
    if (!element) return;
    sanitizeInto(element, html);
    // A wide table or code block scrolls sideways: keyboard users must be able to focus it to
    // scroll it (WCAG 2.1.1). Set here, after sanitizing, which strips every tabindex from the
    // model's output; the string checks keep the per-token path free of a DOM query.
    if (html.includes("table-wrap") || html.includes("code-block")) {
      for (const region of element.querySelectorAll(".table-wrap, .code-block pre")) {
        region.setAttribute("tabindex", "0");
      }
    }
    if (loadedImages.size === 0 || !html.includes("md-image")) return;
    for (const button of element.querySelectorAll<HTMLButtonElement>("button.md-image")) {
      const src = checkedImageUrl(button);
      if (src !== null && loadedImages.has(src)) showImage(button, src);
    }
  }, [html]);
  return <div className="md-block" ref={ref} />;
});

function onClick(event: MouseEvent<HTMLDivElement>): void {
  const target = event.target as Element;
  const copy = target.closest<HTMLButtonElement>("button.md-copy");
  if (copy) {
    const code = copy.closest(".code-block")?.querySelector("code")?.textContent ?? "";
    void copyText(code).then((ok) => flash(copy, ok ? "Copied" : "Copy failed"));
    return;
  }
  const image = target.closest<HTMLButtonElement>("button.md-image");
  if (image) {
    // The placeholder may sit inside a link ("[![alt](img)](url)"): the click is the image's.
    event.preventDefault();
    const src = checkedImageUrl(image);
    if (src === null) {
      refuseImage(image);
    } else {
      loadedImages.add(src);
      showImage(image, src);
    }
    return;
  }
  checkLink(event);
}

/** A middle click opens a link in a new tab without a click event: the same check. */
function onAuxClick(event: MouseEvent<HTMLDivElement>): void {
  checkLink(event);
}

/** Lets the browser follow a link only if its URL passes checkedLinkUrl now; else it is text. */
function checkLink(event: MouseEvent<HTMLDivElement>): void {
  const link = (event.target as Element).closest("a");
  if (!link || !event.currentTarget.contains(link) || !link.hasAttribute("href")) return;
  if (checkedLinkUrl(link) !== null) return;
  event.preventDefault();
  for (const name of ["href", "target", "rel", "referrerpolicy"]) link.removeAttribute(name);
}

function showImage(button: HTMLButtonElement, src: string): void {
  const img = document.createElement("img");
  img.referrerPolicy = "no-referrer";
  img.decoding = "async";
  img.alt = button.querySelector(".md-image-alt")?.textContent ?? "";
  img.className = "md-loaded-image";
  img.src = src;
  button.replaceWith(img);
}

/** A URL that may not be loaded stays visible as text, so the reader can judge it. */
function refuseImage(button: HTMLButtonElement): void {
  const label = button.querySelector(".md-image-label") ?? button;
  label.textContent = `Image not loaded (only https images from other sites are shown): ${button.dataset.src ?? ""}`;
  button.disabled = true;
}

function flash(button: HTMLButtonElement, text: string): void {
  const before = "Copy";
  button.textContent = text;
  setTimeout(() => {
    button.textContent = before;
  }, 1500);
}
