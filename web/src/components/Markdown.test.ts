// @vitest-environment jsdom
/**
 * The Markdown component's clicks, in a DOM: an image placeholder or a link from model output
 * is acted on only when its URL passes the click-time check again (checkedImageUrl,
 * checkedLinkUrl in markdown/sanitize.ts); otherwise nothing is loaded or followed, and the URL
 * is left as text.
 */

import { act, createElement } from "react";
import { createRoot, type Root } from "react-dom/client";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { Markdown } from "./Markdown";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

let host: HTMLDivElement;
let root: Root;
/** Whether the component cancelled the last click: read after React's handler, before jsdom acts. */
let cancelled: boolean | null;

function stopNavigation(event: Event): void {
  cancelled = event.defaultPrevented;
  event.preventDefault(); // jsdom cannot navigate; what matters is what the component decided
}

beforeEach(() => {
  host = document.createElement("div");
  document.body.append(host);
  root = createRoot(host);
  cancelled = null;
  document.addEventListener("click", stopNavigation);
  document.addEventListener("auxclick", stopNavigation);
});

afterEach(() => {
  act(() => root.unmount());
  host.remove();
  document.removeEventListener("click", stopNavigation);
  document.removeEventListener("auxclick", stopNavigation);
});

function render(text: string): void {
  act(() => root.render(createElement(Markdown, { text })));
}

function click(element: Element, type = "click", button = 0): void {
  act(() => {
    element.dispatchEvent(new MouseEvent(type, { bubbles: true, cancelable: true, button }));
  });
}

function only<T extends Element>(selector: string): T {
  const found = host.querySelectorAll<T>(selector);
  expect(found.length, selector).toBe(1);
  return found[0] as T;
}

describe("image placeholders", () => {
  it("load an https image from another host when clicked", () => {
    render("Look: ![a cat](https://images.example/cat.png?user=1)");
    expect(host.querySelector("img")).toBeNull(); // nothing is fetched before the click
    click(only("button.md-image"));
    const image = only<HTMLImageElement>("img.md-loaded-image");
    expect(image.getAttribute("src")).toBe("https://images.example/cat.png?user=1");
    expect(image.alt).toBe("a cat");
    expect(image.referrerPolicy).toBe("no-referrer");
    expect(host.querySelector("button.md-image")).toBeNull();
  });

  it.each([
    ["plain http", "![x](http://images.example/b.gif)", "http://images.example/b.gif"],
    ["the page's own host", "![x](/api/chat?message=hi)", "/api/chat?message=hi"],
  ])("do not load %s, and show its URL as text", (_name, source, src) => {
    render(source);
    const button = only<HTMLButtonElement>("button.md-image");
    click(button);
    expect(host.querySelector("img")).toBeNull();
    expect(cancelled).toBe(true);
    expect(button.disabled).toBe(true);
    expect(button.textContent).toContain(src);
  });

  it("check the URL the button holds at click time, not at render time", () => {
    render("![x](https://images.example/a.png)");
    const button = only<HTMLButtonElement>("button.md-image");
    button.setAttribute("data-src", "javascript:alert(1)"); // changed after sanitizing
    click(button);
    expect(host.querySelector("img")).toBeNull();
    expect(button.disabled).toBe(true);
  });

  it("inside a link load the image and do not follow the link", () => {
    render("[![linked](https://images.example/a.png)](https://example.com/)");
    click(only("button.md-image"));
    expect(cancelled).toBe(true);
    expect(only("a img.md-loaded-image").getAttribute("src")).toBe("https://images.example/a.png");
  });
});

describe("links", () => {
  it("are followed when the URL passes", () => {
    render("[docs](https://example.com/docs)");
    const link = only<HTMLAnchorElement>("a");
    click(link);
    expect(cancelled).toBe(false);
    expect(link.getAttribute("href")).toBe("https://example.com/docs");
    expect(link.getAttribute("target")).toBe("_blank");
  });

  it.each([
    ["click", 0],
    ["auxclick", 1],
  ])("into the page's own API are not followed on %s, and become text", (type, button) => {
    render("[start a run](/api/chat?message=hi)");
    const link = only<HTMLAnchorElement>("a");
    expect(link.getAttribute("href")).toBe("/api/chat?message=hi"); // a relative link: the sanitizer keeps it
    click(link, type, button);
    expect(cancelled).toBe(true);
    expect([...link.attributes].map((attribute) => attribute.name)).toEqual([]);
  });

  it("check the URL the link holds at click time", () => {
    render("[x](https://example.com/) and [**y**](https://example.com/y)");
    const [first, second] = [...host.querySelectorAll("a")] as [HTMLAnchorElement, HTMLAnchorElement];
    first.setAttribute("href", "javascript:alert(1)"); // changed after sanitizing
    click(first);
    expect(cancelled).toBe(true);
    expect(first.hasAttribute("href")).toBe(false);
    click(second.querySelector("strong") as Element); // on an element inside the link
    expect(cancelled).toBe(false);
  });
});
