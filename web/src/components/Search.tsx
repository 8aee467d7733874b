/**
 * The sidebar's search: a search box (a combobox: focus stays in it, ArrowUp/ArrowDown choose a
 * hit, Enter opens it, Escape clears and gives the focus back), and the hits of the query in
 * place of the conversation list: title, snippet with its matches marked, how long ago.
 *
 * Snippets come from the user's messages and from model output: untrusted. They are rendered
 * from their plain-text parts as React text nodes, each match in a <mark>; this module must
 * never use innerHTML or dangerouslySetInnerHTML, nor parse a snippet as markup.
 */

import {
  forwardRef,
  Fragment,
  type KeyboardEvent,
  type ReactNode,
  useEffect,
  useId,
  useImperativeHandle,
  useRef,
  useState,
  useSyncExternalStore,
} from "react";

import type { SearchHit, SnippetPart } from "../api";
import { hitKey, relativeTime, type SearchSession, shortcutLabel } from "../search";
import { Icon } from "./Icon";

/** A snippet's parts as nodes: text as text, each match in a <mark>. */
export function snippetNodes(parts: readonly SnippetPart[]): ReactNode[] {
  return parts.map((part, i) =>
    part.match ? <mark key={i}>{part.text}</mark> : <Fragment key={i}>{part.text}</Fragment>,
  );
}

const TIME = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

function platform(): string {
  const nav = navigator as Navigator & { userAgentData?: { platform?: string } };
  return nav.userAgentData?.platform || nav.platform || "";
}

export interface SearchBoxHandle {
  /** Focus the box and select what is typed in it (the shortcut). */
  focus(): void;
}

interface BoxProps {
  session: SearchSession;
  /** The id of the hits' list box, and of the active hit in it (aria-activedescendant). */
  listId: string;
  activeId: string | null;
  onKeyDown(event: KeyboardEvent<HTMLInputElement>): void;
}

/** The search field at the top of the sidebar. */
export const SearchBox = forwardRef<SearchBoxHandle, BoxProps>(function SearchBox(props, ref) {
  const { session, listId, activeId, onKeyDown } = props;
  const state = useSyncExternalStore(session.subscribe, session.getState, session.getState);
  const input = useRef<HTMLInputElement>(null);
  /** Where the focus was before the box took it: Escape gives it back. */
  const returnTo = useRef<HTMLElement | null>(null);
  const [shortcut] = useState(() => shortcutLabel(platform()));
  const listed = state.query.trim() !== "" && state.results.length > 0;

  useImperativeHandle(ref, () => ({
    focus() {
      input.current?.focus();
      input.current?.select();
    },
  }));

  return (
    <div className="search-box" role="search">
      <Icon size={15}>
        <circle cx="11" cy="11" r="7" />
        <path d="m20 20-3.5-3.5" />
      </Icon>
      <input
        ref={input}
        type="search"
        role="combobox"
        aria-label="Search conversations"
        aria-expanded={listed}
        aria-controls={listed ? listId : undefined}
        aria-activedescendant={listed && activeId !== null ? activeId : undefined}
        aria-autocomplete="list"
        aria-keyshortcuts="Control+K Meta+K"
        placeholder={`Search (${shortcut})`}
        autoComplete="off"
        spellCheck={false}
        maxLength={500}
        value={state.query}
        onFocus={(e) => {
          const from = e.relatedTarget;
          if (from instanceof HTMLElement) returnTo.current = from;
        }}
        onChange={(e) => session.setQuery(e.target.value)}
        onKeyDown={(e) => {
          if (e.key === "Escape") {
            session.clear();
            const back = returnTo.current;
            returnTo.current = null;
            if (back?.isConnected) back.focus();
            return;
          }
          onKeyDown(e);
        }}
      />
    </div>
  );
});

interface ResultsProps {
  session: SearchSession;
  listId: string;
  active: number;
  onActive(index: number): void;
  onOpen(hit: SearchHit): void;
  /** The id of the hit at `index`, for aria-activedescendant. */
  optionId(index: number): string;
}

/** The hits of the query, in place of the conversation list, with their states. */
export function SearchResults({ session, listId, active, onActive, onOpen, optionId }: ResultsProps) {
  const state = useSyncExternalStore(session.subscribe, session.getState, session.getState);
  const list = useRef<HTMLUListElement>(null);
  const now = Date.now();

  // The active hit stays visible as the arrows move through a long list.
  useEffect(() => {
    if (active < 0) return;
    list.current?.querySelector(`[data-index="${active}"]`)?.scrollIntoView({ block: "nearest" });
  }, [active]);

  const { results, status } = state;
  const announcement =
    status === "searching"
      ? "Searching…"
      : status === "done"
        ? results.length === 0
          ? "No results"
          : `${results.length}${state.nextCursor ? "+" : ""} result${results.length === 1 ? "" : "s"}`
        : "";

  return (
    <div className="search-results">
      <p className="visually-hidden" role="status">
        {announcement}
      </p>
      {status === "error" && (
        <p className="search-error" role="alert">
          {state.error}
        </p>
      )}
      {status === "searching" && results.length === 0 && (
        <p className="search-note" aria-hidden="true">
          Searching…
        </p>
      )}
      {status === "done" && results.length === 0 && (
        <p className="search-note">No conversations match “{state.query.trim()}”.</p>
      )}
      {results.length > 0 && (
        <ul
          ref={list}
          id={listId}
          role="listbox"
          aria-label="Search results"
          className={`search-list${status === "searching" ? " stale" : ""}`}
        >
          {results.map((hit, i) => (
            <SearchOption
              key={hitKey(hit)}
              id={optionId(i)}
              index={i}
              hit={hit}
              now={now}
              selected={i === active}
              onHover={onActive}
              onOpen={onOpen}
            />
          ))}
        </ul>
      )}
      {state.nextCursor !== null && status === "done" && (
        <button
          type="button"
          className="button subtle load-more"
          disabled={state.loadingMore}
          onClick={() => void session.loadMore()}
        >
          {state.loadingMore ? "Loading…" : "Load more"}
        </button>
      )}
      {state.error !== null && status === "done" && (
        <p className="search-error" role="alert">
          {state.error}
        </p>
      )}
    </div>
  );
}

function SearchOption({
  id,
  index,
  hit,
  now,
  selected,
  onHover,
  onOpen,
}: {
  id: string;
  index: number;
  hit: SearchHit;
  now: number;
  selected: boolean;
  onHover(index: number): void;
  onOpen(hit: SearchHit): void;
}) {
  const titleHit = hit.message_id === null;
  const title = hit.title?.trim() || "New chat";
  const date = new Date(hit.updated_at);
  return (
    <li
      id={id}
      role="option"
      aria-selected={selected}
      data-index={index}
      className={`search-hit${selected ? " active" : ""}`}
      onMouseMove={() => {
        if (!selected) onHover(index);
      }}
      // The box keeps the focus: a click opens the hit without moving it first.
      onMouseDown={(e) => e.preventDefault()}
      onClick={() => onOpen(hit)}
    >
      <span className="search-hit-head">
        <span className={`search-hit-title${titleHit ? " matched" : ""}`}>
          {titleHit ? snippetNodes(hit.snippet) : title}
        </span>
        <time
          className="search-hit-time"
          dateTime={hit.updated_at}
          title={Number.isNaN(date.getTime()) ? "" : TIME.format(date)}
        >
          {relativeTime(hit.updated_at, now)}
        </time>
      </span>
      {!titleHit && <span className="search-snippet">{snippetNodes(hit.snippet)}</span>}
    </li>
  );
}

/** The ids of a result list and its options, stable for the component's life. */
export function useSearchIds(): { listId: string; optionId(index: number): string } {
  const base = useId();
  return { listId: `${base}-results`, optionId: (index) => `${base}-hit-${index}` };
}
