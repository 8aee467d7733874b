/**
 * The page's client-side routes, and the one decision of which page a session may see at a
 * URL (or where it is sent instead). Pure: no DOM, no history, no React; `App.tsx` applies
 * the decision.
 *
 * It must never send anyone to a place outside this origin: a "next" path taken from history
 * state goes through `safeNext`.
 */

import type { Session } from "./session";

export type Route =
  | { readonly name: "chat"; readonly conversationId: string | null }
  | { readonly name: "login" }
  | { readonly name: "signup" }
  | { readonly name: "setup" }
  | { readonly name: "settings" }
  | { readonly name: "users" }
  | { readonly name: "tools" }
  | { readonly name: "unknown" };

export type Page = "boot" | "chat" | "login" | "signup" | "setup" | "settings" | "users" | "tools";

/** Show `page`, or go to `to` (replacing the entry), remembering `next` for after sign-in. */
export type Decision =
  | { readonly kind: "page"; readonly page: Page }
  | { readonly kind: "redirect"; readonly to: string; readonly next: string | null };

export const PATHS = {
  chat: "/",
  login: "/login",
  signup: "/signup",
  setup: "/setup",
  settings: "/settings",
  users: "/admin/users",
  tools: "/admin/tools",
} as const;

const FIXED: Readonly<Record<string, Route>> = {
  "/login": { name: "login" },
  "/signup": { name: "signup" },
  "/setup": { name: "setup" },
  "/settings": { name: "settings" },
  "/admin/users": { name: "users" },
  "/admin/tools": { name: "tools" },
};

export function parseRoute(path: string): Route {
  if (path === "/" || path === "") return { name: "chat", conversationId: null };
  const trimmed = path.length > 1 && path.endsWith("/") ? path.slice(0, -1) : path;
  const fixed = FIXED[trimmed];
  if (fixed) return fixed;
  const match = /^\/c\/([^/]+)$/.exec(trimmed);
  if (match) {
    try {
      return { name: "chat", conversationId: decodeURIComponent(match[1] as string) };
    } catch {
      return { name: "unknown" }; // a malformed %-escape
    }
  }
  return { name: "unknown" };
}

/**
 * The URL of a conversation (null: a new chat); with `messageId`, opened on the branch holding
 * that message, scrolled to it (a search hit): `/c/<id>?m=<message id>`.
 */
export function conversationPath(id: string | null, messageId: string | null = null): string {
  if (id === null) return PATHS.chat;
  const path = `/c/${encodeURIComponent(id)}`;
  return messageId === null ? path : `${path}?${FOCUS_PARAM}=${encodeURIComponent(messageId)}`;
}

/** The query parameter naming the message a conversation opens at. */
const FOCUS_PARAM = "m";

/** The message a URL's query (`location.search`) asks the conversation to open at, or null. */
export function focusFromSearch(search: string): string | null {
  const value = new URLSearchParams(search).get(FOCUS_PARAM);
  return value === null || value.trim() === "" ? null : value;
}

/** The pages a "next" path may lead to after signing in. */
const READABLE: readonly Route["name"][] = ["chat", "settings", "users", "tools"];

/**
 * Where to go after signing in: `next` if it is a path of this app that a signed-in user
 * reads (the chat, a conversation, settings, users, tools), else the chat. Anything else, a full URL,
 * `//host`, `/\host`, the sign-in pages themselves, goes to the chat.
 */
export function safeNext(next: unknown): string {
  if (typeof next !== "string" || !next.startsWith("/") || next.startsWith("//") || next.includes("\\")) {
    return PATHS.chat;
  }
  const route = parseRoute(next);
  return READABLE.includes(route.name) ? next : PATHS.chat;
}

/** The setup token in a fragment like `#token=abc` (other parameters ignored), or null. */
export function tokenFromHash(hash: string): string | null {
  for (const part of hash.replace(/^#/, "").split("&")) {
    if (!part.startsWith("token=")) continue;
    let token: string;
    try {
      token = decodeURIComponent(part.slice("token=".length)).trim();
    } catch {
      return null;
    }
    return token === "" ? null : token;
  }
  return null;
}

function page(name: Page): Decision {
  return { kind: "page", page: name };
}

function redirect(to: string, next: string | null = null): Decision {
  return { kind: "redirect", to, next };
}

/**
 * Which page `session` sees at `path`. `next` is where a sign-in in this tab should lead (from
 * the history entry), used once the user is signed in on a sign-in page.
 */
export function decide(session: Session, path: string, next: string | null = null): Decision {
  const route = parseRoute(path);
  switch (session.phase) {
    case "loading":
    case "unreachable":
      return page("boot");
    case "open":
      // Accounts off: the chat as it always was, and settings for the data (export, import);
      // the other account pages do not exist.
      return route.name === "chat" || route.name === "settings" ? page(route.name) : redirect(PATHS.chat);
    case "setup":
      return route.name === "setup" ? page("setup") : redirect(PATHS.setup);
    case "signed-out":
      switch (route.name) {
        case "login":
          return page("login");
        case "signup":
          return session.status.signup === "closed" ? redirect(PATHS.login) : page("signup");
        case "chat":
        case "settings":
        case "users":
        case "tools":
          // Come back here after signing in, unless the user chose to leave.
          return redirect(PATHS.login, session.reason === "signed-out" ? null : path);
        default:
          return redirect(PATHS.login);
      }
    case "signed-in":
      switch (route.name) {
        case "chat":
          return page("chat");
        case "settings":
          return page("settings");
        case "users":
          // Everyone signed in gets the page; a non-admin reads that it is for admins.
          return page("users");
        case "tools":
          return page("tools");
        case "login":
          return redirect(safeNext(next));
        default:
          return redirect(PATHS.chat);
      }
  }
}
