import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { Api, ApiError, type SearchHit, type SearchPage } from "./api";
import { isSearchHotkey, relativeTime, type SearchApi, SearchSession, shortcutLabel } from "./search";

function hit(id: string, extra: Partial<SearchHit> = {}): SearchHit {
  return {
    conversation_id: `c-${id}`,
    title: `Title ${id}`,
    updated_at: "2026-01-01T00:00:00Z",
    message_id: id,
    role: "user",
    snippet: [
      { text: "before ", match: false },
      { text: id, match: true },
    ],
    ...extra,
  };
}

interface Call {
  query: string;
  cursor: string | null;
  signal: AbortSignal | undefined;
  resolve(page: SearchPage): void;
  reject(error: unknown): void;
}

/** A server whose answers the test gives, in any order. */
class FakeSearch implements SearchApi {
  calls: Call[] = [];
  search(query: string, options: { cursor?: string | null; signal?: AbortSignal }): Promise<SearchPage> {
    return new Promise((resolve, reject) => {
      this.calls.push({ query, cursor: options.cursor ?? null, signal: options.signal, resolve, reject });
      options.signal?.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError")));
    });
  }
}

const flush = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
};

let api: FakeSearch;
let session: SearchSession;

beforeEach(() => {
  vi.useFakeTimers();
  api = new FakeSearch();
  session = new SearchSession(api, { delayMs: 200, limit: 2 });
});

afterEach(() => {
  session.dispose();
  vi.useRealTimers();
});

describe("SearchSession", () => {
  it("asks once the typing pauses, for the last query typed", async () => {
    session.setQuery("h");
    vi.advanceTimersByTime(100);
    session.setQuery("he");
    vi.advanceTimersByTime(100);
    session.setQuery("hello");
    expect(session.getState()).toMatchObject({ query: "hello", status: "searching" });
    vi.advanceTimersByTime(199);
    expect(api.calls).toHaveLength(0);
    vi.advanceTimersByTime(1);
    expect(api.calls.map((c) => c.query)).toEqual(["hello"]);
    api.calls[0]!.resolve({ results: [hit("m1")], next_cursor: null });
    await flush();
    expect(session.getState()).toMatchObject({ status: "done", results: [hit("m1")], nextCursor: null });
  });

  it("aborts the request of a query typed over, and ignores an answer that comes late", async () => {
    session.setQuery("first");
    vi.advanceTimersByTime(200);
    const first = api.calls[0]!;
    session.setQuery("second");
    expect(first.signal?.aborted).toBe(true);
    vi.advanceTimersByTime(200);
    const second = api.calls[1]!;
    second.resolve({ results: [hit("new")], next_cursor: null });
    // A server that answers the old request anyway, after the new one: not shown.
    first.resolve({ results: [hit("old")], next_cursor: null });
    await flush();
    expect(session.getState().results).toEqual([hit("new")]);
  });

  it("ignores an answer to a query cleared meanwhile, and clears at once", async () => {
    session.setQuery("x");
    vi.advanceTimersByTime(200);
    const call = api.calls[0]!;
    session.setQuery("   ");
    expect(session.getState()).toMatchObject({ query: "   ", status: "idle", results: [] });
    call.resolve({ results: [hit("m1")], next_cursor: null });
    await flush();
    expect(session.getState()).toMatchObject({ status: "idle", results: [] });
    vi.advanceTimersByTime(1000);
    expect(api.calls).toHaveLength(1);
  });

  it("loads more with the cursor, without duplicates, until the last page", async () => {
    session.setQuery("word");
    vi.advanceTimersByTime(200);
    api.calls[0]!.resolve({ results: [hit("m1"), hit("m2")], next_cursor: "p2" });
    await flush();
    const more = session.loadMore();
    expect(session.getState().loadingMore).toBe(true);
    void session.loadMore(); // a second click while loading asks nothing more
    expect(api.calls.map((c) => [c.query, c.cursor])).toEqual([
      ["word", null],
      ["word", "p2"],
    ]);
    api.calls[1]!.resolve({ results: [hit("m2"), hit("m3")], next_cursor: null });
    await more;
    expect(session.getState().results.map((h) => h.message_id)).toEqual(["m1", "m2", "m3"]);
    expect(session.getState()).toMatchObject({ nextCursor: null, loadingMore: false });
    await session.loadMore();
    expect(api.calls).toHaveLength(2);
  });

  it("says what went wrong: the server's message for a 400, else that it is unreachable", async () => {
    session.setQuery('"');
    vi.advanceTimersByTime(200);
    api.calls[0]!.reject(new ApiError(400, "invalid_query", "the query is empty"));
    await flush();
    expect(session.getState()).toMatchObject({ status: "error", error: "the query is empty", results: [] });
    session.setQuery("again");
    expect(session.getState().error).toBeNull();
    vi.advanceTimersByTime(200);
    api.calls[1]!.reject(new TypeError("failed to fetch"));
    await flush();
    expect(session.getState()).toMatchObject({ status: "error", error: "The server could not be reached." });
  });

  it("tells its listeners of every change", async () => {
    const seen: string[] = [];
    session.subscribe(() => seen.push(session.getState().status));
    session.setQuery("q");
    vi.advanceTimersByTime(200);
    api.calls[0]!.resolve({ results: [], next_cursor: null });
    await flush();
    expect(seen).toEqual(["searching", "done"]);
  });
});

const key = (k: string, mods: Partial<Record<"ctrlKey" | "metaKey" | "altKey" | "shiftKey", boolean>> = {}) => ({
  key: k,
  ctrlKey: false,
  metaKey: false,
  altKey: false,
  shiftKey: false,
  ...mods,
});

describe("the shortcut", () => {
  it("is Ctrl+K or ⌘K, whatever the case, and nothing else", () => {
    expect(isSearchHotkey(key("k", { ctrlKey: true }))).toBe(true);
    expect(isSearchHotkey(key("k", { metaKey: true }))).toBe(true);
    expect(isSearchHotkey(key("K", { ctrlKey: true }))).toBe(true);
    expect(isSearchHotkey(key("k"))).toBe(false);
    expect(isSearchHotkey(key("k", { ctrlKey: true, shiftKey: true }))).toBe(false);
    expect(isSearchHotkey(key("k", { metaKey: true, altKey: true }))).toBe(false);
    expect(isSearchHotkey(key("j", { ctrlKey: true }))).toBe(false);
  });

  it("is written as the platform writes it", () => {
    expect(shortcutLabel("MacIntel")).toBe("⌘K");
    expect(shortcutLabel("iPhone")).toBe("⌘K");
    expect(shortcutLabel("Linux x86_64")).toBe("Ctrl+K");
    expect(shortcutLabel("")).toBe("Ctrl+K");
  });
});

describe("relativeTime", () => {
  const now = Date.parse("2026-03-10T12:00:00Z");
  it("says how long ago, in the largest whole unit", () => {
    expect(relativeTime("2026-03-10T11:59:30Z", now, "en")).toBe("just now");
    expect(relativeTime("2026-03-10T11:55:00Z", now, "en")).toBe("5 minutes ago");
    expect(relativeTime("2026-03-10T09:00:00Z", now, "en")).toBe("3 hours ago");
    expect(relativeTime("2026-03-09T10:00:00Z", now, "en")).toBe("yesterday");
    expect(relativeTime("2026-02-20T12:00:00Z", now, "en")).toBe("2 weeks ago");
    expect(relativeTime("2024-03-01T12:00:00Z", now, "en")).toBe("2 years ago");
  });

  it("takes a time ahead of the clock as now, and an unreadable one as nothing", () => {
    expect(relativeTime("2026-03-10T12:05:00Z", now, "en")).toBe("just now");
    expect(relativeTime("not a date", now, "en")).toBe("");
  });
});

describe("Api.search", () => {
  it("asks with the query, the page size and the cursor, and reads a 400's message", async () => {
    const asked: string[] = [];
    const api = new Api({
      fetch: async (input) => {
        asked.push(String(input));
        return asked.length === 1
          ? new Response(JSON.stringify({ results: [], next_cursor: null }), { status: 200 })
          : new Response(JSON.stringify({ error: { code: "invalid_query", message: "type a word" } }), {
              status: 400,
            });
      },
    });
    await expect(api.search('a "b" & c', { limit: 20, cursor: "x/1" })).resolves.toEqual({
      results: [],
      next_cursor: null,
    });
    expect(asked).toEqual(["/api/search?q=a+%22b%22+%26+c&limit=20&cursor=x%2F1"]);
    await expect(api.search(" ")).rejects.toMatchObject({ status: 400, message: "type a word" });
  });
});
