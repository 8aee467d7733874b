// @vitest-environment jsdom
/**
 * The checks run when the user clicks an image placeholder or a link from model output
 * (checkedImageUrl, checkedLinkUrl): they read the URL from the DOM again at click time, so
 * they must refuse a bad URL whatever put it there, not only what the sanitizer lets through.
 */

import { describe, expect, it } from "vitest";

import { createMarkdown } from "./md";
import { checkedImageUrl, checkedLinkUrl, sanitizeHtml } from "./sanitize";

const PAGE = "https://chat.example/c/42";
const LOCAL_PAGE = "http://localhost:8000/";

function placeholder(src: string | null, className = "md-image", tag = "button"): Element {
  const element = document.createElement(tag);
  element.className = className;
  if (src !== null) element.setAttribute("data-src", src);
  return element;
}

function anchor(href: string | null): Element {
  const element = document.createElement("a");
  if (href !== null) element.setAttribute("href", href);
  return element;
}

describe("checkedImageUrl", () => {
  it.each([
    ["https://images.example/cat.png?x=1", "https://images.example/cat.png?x=1"],
    ["HTTPS://Images.Example/a.png", "https://images.example/a.png"],
    ["//images.example/a.png", "https://images.example/a.png"],
  ])("loads %j as %j", (src, expected) => {
    expect(checkedImageUrl(placeholder(src), PAGE)).toBe(expected);
  });

  it.each([
    "http://images.example/plain.gif", // not https
    "javascript:alert(1)",
    "java\tscript:alert(1)",
    "jav&#x09;ascript:alert(1)",
    "data:image/svg+xml;base64,PHN2Zz4=",
    "blob:https://chat.example/1",
    "file:///etc/passwd",
    "mailto:a@example.com",
    "/api/chat?message=hi", // the page's own host, with the session cookie
    "https://chat.example/api/chat?message=hi",
    "https://chat.example:8443/logo.png",
    "logo.png",
    "https://[bad",
    "",
  ])("refuses %j", (src) => {
    expect(checkedImageUrl(placeholder(src), PAGE)).toBeNull();
  });

  it("refuses on a plain http page what would be loaded over http", () => {
    expect(checkedImageUrl(placeholder("//images.example/a.png"), LOCAL_PAGE)).toBeNull();
    expect(checkedImageUrl(placeholder("https://localhost/a.png"), LOCAL_PAGE)).toBeNull();
    expect(checkedImageUrl(placeholder("https://images.example/a.png"), LOCAL_PAGE)).toBe(
      "https://images.example/a.png",
    );
  });

  it("reads only an image placeholder", () => {
    const src = "https://images.example/a.png";
    expect(checkedImageUrl(placeholder(null), PAGE)).toBeNull();
    expect(checkedImageUrl(placeholder(src, "md-copy"), PAGE)).toBeNull();
    expect(checkedImageUrl(placeholder(src, "md-image", "span"), PAGE)).toBeNull();
  });

  it("uses the page's own address by default", () => {
    expect(window.location.protocol).toBe("http:"); // jsdom's page
    expect(checkedImageUrl(placeholder("https://images.example/a.png"))).toBe("https://images.example/a.png");
    expect(checkedImageUrl(placeholder("/a.png"))).toBeNull();
  });

  it("accepts the placeholders the renderer makes for https images, and only those", () => {
    const root = document.createElement("div");
    root.innerHTML = sanitizeHtml(
      createMarkdown().render("![a](https://images.example/a.png) ![b](http://images.example/b.png) ![c](/c.png)"),
    );
    const buttons = [...root.querySelectorAll("button.md-image")];
    expect(buttons.map((button) => checkedImageUrl(button, PAGE))).toEqual([
      "https://images.example/a.png",
      null,
      null,
    ]);
  });
});

describe("checkedLinkUrl", () => {
  it.each([
    ["https://example.com/a?b=c#d", "https://example.com/a?b=c#d"],
    ["http://example.com/", "http://example.com/"],
    ["mailto:a@example.com", "mailto:a@example.com"],
    ["/docs#x", "https://chat.example/docs#x"],
    ["#top", "https://chat.example/c/42#top"],
    ["other", "https://chat.example/c/other"],
    ["https://chat.example/c/7", "https://chat.example/c/7"],
    ["/apis/x", "https://chat.example/apis/x"],
    ["https://elsewhere.example/api/chat", "https://elsewhere.example/api/chat"],
  ])("follows %j to %j", (href, expected) => {
    expect(checkedLinkUrl(anchor(href), PAGE)).toBe(expected);
  });

  it.each([
    "javascript:alert(1)",
    " JavaScript:alert(1)",
    "java\u0000script:alert(1)",
    "&#106;avascript:alert(1)",
    "vbscript:msgbox(1)",
    "data:text/html,<script>alert(1)</script>",
    "tel:+100",
    "ftp://f.example/",
    // the page's own API, however it is spelled: a click is a GET with the session cookie
    "/api/chat?message=hi",
    "/api",
    "https://chat.example/api/runs/1/cancel",
    "http://chat.example:8000/api/chat?message=hi",
    "/%61pi/chat?message=hi",
    "/docs/../api/chat?message=hi",
    "//chat.example//api/chat",
    "/API/chat",
    "/%E0%A4%A/x",
  ])("refuses %j", (href) => {
    expect(checkedLinkUrl(anchor(href), PAGE)).toBeNull();
  });

  it("reads only an HTML link with an href", () => {
    expect(checkedLinkUrl(anchor(null), PAGE)).toBeNull();
    const span = document.createElement("span");
    span.setAttribute("href", "https://example.com/");
    expect(checkedLinkUrl(span, PAGE)).toBeNull();
    const svgLink = document.createElementNS("http://www.w3.org/2000/svg", "a");
    svgLink.setAttribute("href", "https://example.com/");
    expect(checkedLinkUrl(svgLink, PAGE)).toBeNull();
  });
});
