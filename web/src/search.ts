/**
 * Searching conversations from the sidebar, without React: the Ctrl+K / ⌘K shortcut, a hit's
 * relative time, and `SearchSession`, which turns what the user types into requests.
 *
 * A session waits for a pause in the typing (`delayMs`) before asking, aborts the request of a
 * query the user has moved on from, and ignores any answer that is not for the latest query (an
 * answer may overtake an older one). It publishes immutable snapshots (`useSyncExternalStore`).
 * Snippets stay data here (`SnippetPart`s): the component renders them as text nodes. This module
 * must never touch the DOM nor build markup from a snippet.
 */

import { ApiError, isAbort, type SearchHit, type SearchPage } from "./api";

/** The part of `Api` a search needs; tests pass a fake. */
export interface SearchApi {
  search(query: string, options: { limit?: number; cursor?: string | null; signal?: AbortSignal }): Promise<SearchPage>;
}

export type SearchStatus = "idle" | "searching" | "done" | "error";

export interface SearchState {
  /** As typed; "" (or only spaces) means no search: the sidebar shows the conversations. */
  readonly query: string;
  readonly status: SearchStatus;
  /** The hits of the latest answered query (kept while the next one is asked, so nothing flickers). */
  readonly results: readonly SearchHit[];
  readonly nextCursor: string | null;
  readonly loadingMore: boolean;
  /** What went wrong, in a sentence (a 400 gives the server's). */
  readonly error: string | null;
}

export const IDLE: SearchState = {
  query: "",
  status: "idle",
  results: [],
  nextCursor: null,
  loadingMore: false,
  error: null,
};

export interface SearchOptions {
  /** The pause in typing before a query is sent. */
  delayMs?: number;
  /** Hits per page. */
  limit?: number;
}

export class SearchSession {
  private state: SearchState = IDLE;
  private readonly listeners = new Set<() => void>();
  private readonly delayMs: number;
  private readonly limit: number;
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** Aborts every request of the current query (its first page and "Load more"). */
  private controller: AbortController | null = null;
  private seq = 0;

  constructor(
    private readonly api: SearchApi,
    options: SearchOptions = {},
  ) {
    this.delayMs = options.delayMs ?? 200;
    this.limit = options.limit ?? 20;
  }

  getState = (): SearchState => this.state;

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  private set(patch: Partial<SearchState>): void {
    this.state = { ...this.state, ...patch };
    for (const listener of this.listeners) listener();
  }

  /** The user typed: search for `query` once the typing pauses (at once for "": no search). */
  setQuery(query: string): void {
    this.cancel();
    if (query.trim() === "") {
      this.set({ ...IDLE, query });
      return;
    }
    const seq = this.seq;
    this.set({ query, status: "searching", error: null, loadingMore: false });
    this.timer = setTimeout(() => void this.first(query, seq), this.delayMs);
  }

  /** Back to no search. */
  clear(): void {
    this.setQuery("");
  }

  /** The next page of the current query's hits. */
  async loadMore(): Promise<void> {
    const { nextCursor, query, loadingMore } = this.state;
    if (nextCursor === null || loadingMore || this.controller === null) return;
    const seq = this.seq;
    const signal = this.controller.signal;
    this.set({ loadingMore: true, error: null });
    try {
      const page = await this.api.search(query, { limit: this.limit, cursor: nextCursor, signal });
      if (seq !== this.seq) return;
      const seen = new Set(this.state.results.map(hitKey));
      this.set({
        results: [...this.state.results, ...page.results.filter((hit) => !seen.has(hitKey(hit)))],
        nextCursor: page.next_cursor,
        loadingMore: false,
      });
    } catch (error) {
      if (seq !== this.seq || isAbort(error)) return;
      this.set({ loadingMore: false, error: explain(error) });
    }
  }

  /** Stop everything in flight (the sidebar goes away). */
  dispose(): void {
    this.cancel();
  }

  private cancel(): void {
    this.seq++;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.controller?.abort();
    this.controller = null;
  }

  private async first(query: string, seq: number): Promise<void> {
    if (seq !== this.seq) return;
    const controller = new AbortController();
    this.controller = controller;
    try {
      const page = await this.api.search(query, { limit: this.limit, signal: controller.signal });
      if (seq !== this.seq) return; // the user has typed on: an older answer is no answer
      this.set({ status: "done", results: page.results, nextCursor: page.next_cursor, error: null });
    } catch (error) {
      if (seq !== this.seq || isAbort(error)) return;
      this.set({ status: "error", results: [], nextCursor: null, error: explain(error) });
    }
  }
}

/** A hit's identity: its message, or its conversation for a title. */
export function hitKey(hit: SearchHit): string {
  return hit.message_id === null ? `title:${hit.conversation_id}` : `message:${hit.message_id}`;
}

function explain(error: unknown): string {
  if (error instanceof ApiError) return error.message || "The search failed.";
  return "The server could not be reached.";
}

/** What `isSearchHotkey` reads of a keyboard event. */
export interface KeyLike {
  readonly key: string;
  readonly ctrlKey: boolean;
  readonly metaKey: boolean;
  readonly altKey: boolean;
  readonly shiftKey: boolean;
}

/** Ctrl+K, or ⌘K on a Mac (either is taken anywhere: a Mac user with Ctrl+K means it too). */
export function isSearchHotkey(event: KeyLike): boolean {
  return (event.ctrlKey || event.metaKey) && !event.altKey && !event.shiftKey && event.key.toLowerCase() === "k";
}

/** How the shortcut is written on this platform ("⌘K" on Apple's, "Ctrl+K" elsewhere). */
export function shortcutLabel(platform: string): string {
  return /mac|iphone|ipad|ipod/i.test(platform) ? "⌘K" : "Ctrl+K";
}

const UNITS: readonly [Intl.RelativeTimeFormatUnit, number][] = [
  ["year", 365 * 24 * 3600],
  ["month", 30 * 24 * 3600],
  ["week", 7 * 24 * 3600],
  ["day", 24 * 3600],
  ["hour", 3600],
  ["minute", 60],
];

/** "5 minutes ago", "yesterday", "3 weeks ago"; "just now" under a minute (and for the future). */
export function relativeTime(iso: string, now: number, locale?: string): string {
  const then = Date.parse(iso);
  if (Number.isNaN(then)) return "";
  const seconds = Math.max(0, Math.round((now - then) / 1000));
  const format = new Intl.RelativeTimeFormat(locale, { numeric: "auto" });
  for (const [unit, size] of UNITS) {
    if (seconds >= size) return format.format(-Math.floor(seconds / size), unit);
  }
  return "just now";
}
