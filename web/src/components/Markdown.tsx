/**
 * An answer's Markdown, rendered block by block: finished blocks keep their DOM, only the block
 * still being written is replaced on each update (see markdown/incremental.ts).
 *
 * Remote images arrive as "Load image from <host>" buttons; a click here is the only thing that
 * sets an <img src>. Copy buttons on code blocks are handled here too, by delegation.
 */

import { memo, type MouseEvent, useLayoutEffect, useRef } from "react";

import { BlockCache, StreamingMarkdown } from "../markdown/incremental";
import { createMarkdown } from "../markdown/md";
import { sanitizeInto } from "../markdown/sanitize";
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
    <div className="markdown" onClick={onClick}>
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
    if (loadedImages.size === 0 || !html.includes("md-image")) return;
    for (const button of element.querySelectorAll<HTMLButtonElement>("button.md-image")) {
      if (loadedImages.has(button.dataset.src ?? "")) showImage(button);
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
    const src = image.dataset.src ?? "";
    if (canLoadInline(src)) {
      loadedImages.add(src);
      showImage(image);
    } else {
      window.open(src, "_blank", "noopener,noreferrer");
    }
  }
}

/** https: and same-origin images load in place (the CSP allows those); others open in a tab. */
function canLoadInline(src: string): boolean {
  try {
    const url = new URL(src, window.location.href);
    return url.protocol === "https:" || url.origin === window.location.origin;
  } catch {
    return false;
  }
}

function showImage(button: HTMLButtonElement): void {
  const src = button.dataset.src ?? "";
  if (!canLoadInline(src)) return;
  const img = document.createElement("img");
  img.referrerPolicy = "no-referrer";
  img.decoding = "async";
  img.alt = button.querySelector(".md-image-alt")?.textContent ?? "";
  img.className = "md-loaded-image";
  img.src = src;
  button.replaceWith(img);
}

function flash(button: HTMLButtonElement, text: string): void {
  const before = "Copy";
  button.textContent = text;
  setTimeout(() => {
    button.textContent = before;
  }, 1500);
}
