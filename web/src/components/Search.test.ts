// @vitest-environment jsdom
/**
 * The search's rendering in a DOM: a snippet's parts become text nodes and <mark>s only, whatever
 * they hold (markup stays text); and the sidebar's search box as a combobox: hits replace the
 * list, the arrows choose one, Enter opens it, Escape clears and gives the focus back.
 */

import { act, createElement, Fragment } from "react";
import { createRoot, type Root } from "react-dom/client";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import type { SearchHit, SearchPage, SnippetPart } from "../api";
import { type SearchApi, SearchSession } from "../search";
import { snippetNodes } from "./Search";
import { Sidebar } from "./Sidebar";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

let host: HTMLDivElement;
let root: Root;

beforeEach(() => {
  // jsdom lays nothing out, so it has no scrolling to do.
  Element.prototype.scrollIntoView ??= function scrollIntoView() {};
  host = document.createElement("div");
  document.body.append(host);
  root = createRoot(host);
});

afterEach(() => {
  act(() => root.unmount());
  host.remove();
  vi.useRealTimers();
});

const HOSTILE: SnippetPart[] = [
  { text: "…before <script>window.pwned=1</script> ", match: false },
  { text: "<img src=x onerror=alert(1)>", match: true },
  { text: " &amp; after <b>bold</b>", match: false },
  { text: "word", match: true },
];

describe("snippetNodes", () => {
  it("renders every part as text, each match in a <mark>, nothing else", () => {
    act(() => root.render(createElement(Fragment, null, snippetNodes(HOSTILE))));
    expect(host.textContent).toBe(HOSTILE.map((p) => p.text).join(""));
    expect([...host.querySelectorAll("*")].map((el) => el.tagName)).toEqual(["MARK", "MARK"]);
    expect([...host.querySelectorAll("mark")].map((el) => el.textContent)).toEqual([
      "<img src=x onerror=alert(1)>",
      "word",
    ]);
    expect(host.innerHTML).toContain("&lt;script&gt;");
    expect(host.innerHTML).toContain("&amp;amp;");
  });

  it("renders nothing for no parts", () => {
    act(() => root.render(createElement(Fragment, null, snippetNodes([]))));
    expect(host.innerHTML).toBe("");
  });
});

function hit(id: string): SearchHit {
  return {
    conversation_id: `c-${id}`,
    title: `Title ${id}`,
    updated_at: new Date().toISOString(),
    message_id: id,
    role: "assistant",
    snippet: [
      { text: "about ", match: false },
      { text: "cats", match: true },
    ],
  };
}

class OneAnswer implements SearchApi {
  async search(): Promise<SearchPage> {
    return { results: [hit("m1"), hit("m2"), hit("m3")], next_cursor: null };
  }
}

describe("the sidebar's search", () => {
  it("lists hits in place of the conversations, chosen by the arrows and opened by Enter", async () => {
    vi.useFakeTimers();
    const session = new SearchSession(new OneAnswer(), { delayMs: 200 });
    const opened: SearchHit[] = [];
    const render = (searchRequest: number): void =>
      root.render(
        createElement(Sidebar, {
          conversations: [
            {
              id: "c1",
              title: "An old chat",
              model: null,
              system_prompt: null,
              owner: null,
              created_at: "",
              updated_at: "",
              current_leaf_id: null,
              tools: [],
            },
          ],
          currentId: null,
          hasMore: false,
          loaded: true,
          open: true,
          user: null,
          onNewChat() {},
          onSelect() {},
          onRename() {},
          onDelete: async () => {},
          onLoadMore() {},
          onClose() {},
          onSignOut: async () => {},
          search: session,
          searchRequest,
          onOpenHit: (h: SearchHit) => opened.push(h),
        }),
      );
    act(() => render(0));
    const before = document.createElement("button");
    document.body.append(before);
    before.focus();
    act(() => render(1)); // the shortcut
    const box = host.querySelector<HTMLInputElement>('input[role="combobox"]')!;
    expect(document.activeElement).toBe(box);
    expect(box.getAttribute("aria-label")).toBe("Search conversations");

    await act(async () => {
      session.setQuery("cats");
      await vi.advanceTimersByTimeAsync(200);
    });
    expect(host.textContent).not.toContain("An old chat");
    const options = (): HTMLElement[] => [...host.querySelectorAll<HTMLElement>('[role="option"]')];
    expect(options()).toHaveLength(3);
    expect(box.getAttribute("aria-expanded")).toBe("true");
    expect(box.getAttribute("aria-controls")).toBe(host.querySelector('[role="listbox"]')!.id);

    const key = (k: string): void => {
      act(() => {
        box.dispatchEvent(new KeyboardEvent("keydown", { key: k, bubbles: true }));
      });
    };
    key("ArrowDown");
    key("ArrowDown");
    key("ArrowDown");
    key("ArrowDown"); // stays on the last
    key("ArrowUp");
    expect(options().map((o) => o.getAttribute("aria-selected"))).toEqual(["false", "true", "false"]);
    expect(box.getAttribute("aria-activedescendant")).toBe(options()[1]!.id);
    key("Enter");
    expect(opened.map((h) => h.message_id)).toEqual(["m2"]);

    key("Escape");
    expect(session.getState().query).toBe("");
    expect(document.activeElement).toBe(before);
    expect(host.textContent).toContain("An old chat");
    before.remove();
    session.dispose();
  });
});
