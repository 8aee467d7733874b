/**
 * The address bar as React state, without a router library: `navigate` pushes or replaces a
 * history entry, the back and forward buttons (popstate) are followed, and `useLocation`
 * re-renders on both. History entries may carry a little state (`NavState`): where to go after
 * signing in, and a notice for the sign-in page.
 *
 * It must never copy the URL's fragment anywhere: the setup token lives there until the setup
 * page has read and removed it.
 */

import { useSyncExternalStore } from "react";

/** A notice the sign-in page shows once, carried by the history entry that leads to it. */
export type NavNotice = "account-created";

export interface NavState {
  /** Where to go after signing in (checked by `routes.safeNext` before use). */
  readonly next?: string;
  readonly notice?: NavNotice;
}

export interface AppLocation {
  readonly path: string;
  /** The query (`?m=…`: the message a conversation opens at), "" when there is none. */
  readonly search: string;
  readonly state: NavState;
}

const listeners = new Set<() => void>();
let current: AppLocation | null = null;

function toNavState(raw: unknown): NavState {
  if (typeof raw !== "object" || raw === null) return {};
  const record = raw as Record<string, unknown>;
  const state: { next?: string; notice?: NavNotice } = {};
  if (typeof record.next === "string") state.next = record.next;
  if (record.notice === "account-created") state.notice = record.notice;
  return state;
}

function read(): AppLocation {
  const { pathname, search } = window.location;
  return { path: pathname, search, state: toNavState(window.history.state) };
}

function snapshot(): AppLocation {
  current ??= read();
  return current;
}

function changed(): void {
  current = read();
  for (const listener of listeners) listener();
}

function subscribe(listener: () => void): () => void {
  if (listeners.size === 0) window.addEventListener("popstate", changed);
  listeners.add(listener);
  return () => {
    listeners.delete(listener);
    if (listeners.size === 0) window.removeEventListener("popstate", changed);
  };
}

/** Go to `path` (with its query, if any: a new history entry, or in place of this one with `replace`). */
export function navigate(path: string, options: { replace?: boolean; state?: NavState } = {}): void {
  const state = options.state ?? {};
  if (options.replace) window.history.replaceState(state, "", path);
  else if (path !== window.location.pathname + window.location.search) window.history.pushState(state, "", path);
  else return; // already there: no duplicate entry for the back button
  changed();
}

export function useLocation(): AppLocation {
  return useSyncExternalStore(subscribe, snapshot, snapshot);
}
