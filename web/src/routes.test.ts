import { describe, expect, it } from "vitest";

import type { AuthStatus, Me } from "./api";
import { conversationPath, decide, focusFromSearch, parseRoute, safeNext, tokenFromHash } from "./routes";
import type { Session, SignedOutReason } from "./session";

const status = (signup: AuthStatus["signup"] = "closed"): AuthStatus => ({
  auth: "on",
  setup_required: false,
  signup,
});
const ADA: Me = { id: "u1", email: "ada@example.com", name: "Ada", role: "admin" };
const BOB: Me = { id: "u2", email: "bob@example.com", name: null, role: "user" };

const signedIn = (user: Me = ADA): Session => ({ phase: "signed-in", status: status(), user });
const signedOut = (reason: SignedOutReason = "none", signup: AuthStatus["signup"] = "closed"): Session => ({
  phase: "signed-out",
  status: status(signup),
  reason,
});
const setup: Session = { phase: "setup", status: { ...status(), setup_required: true } };
const open: Session = { phase: "open" };

describe("parseRoute", () => {
  it("names every page, with or without a trailing slash", () => {
    expect(parseRoute("/")).toEqual({ name: "chat", conversationId: null });
    expect(parseRoute("/c/abc%2F1")).toEqual({ name: "chat", conversationId: "abc/1" });
    expect(parseRoute("/c/abc/")).toEqual({ name: "chat", conversationId: "abc" });
    expect(parseRoute("/login")).toEqual({ name: "login" });
    expect(parseRoute("/signup/")).toEqual({ name: "signup" });
    expect(parseRoute("/setup")).toEqual({ name: "setup" });
    expect(parseRoute("/settings")).toEqual({ name: "settings" });
    expect(parseRoute("/admin/users")).toEqual({ name: "users" });
    expect(parseRoute("/admin/tools/")).toEqual({ name: "tools" });
  });

  it("does not take a malformed or unknown path for a page", () => {
    expect(parseRoute("/c/%E0%A4%A")).toEqual({ name: "unknown" });
    expect(parseRoute("/c/a/b")).toEqual({ name: "unknown" });
    expect(parseRoute("/admin")).toEqual({ name: "unknown" });
    expect(parseRoute("/loginx")).toEqual({ name: "unknown" });
  });

  it("round-trips a conversation id through its path", () => {
    for (const id of ["abc", "a b/c?d#e", "ü"]) {
      expect(parseRoute(conversationPath(id))).toEqual({ name: "chat", conversationId: id });
    }
    expect(conversationPath(null)).toBe("/");
  });
});

describe("safeNext", () => {
  it("keeps a path of a page for signed-in users", () => {
    expect(safeNext("/c/abc")).toBe("/c/abc");
    expect(safeNext("/settings")).toBe("/settings");
    expect(safeNext("/admin/users")).toBe("/admin/users");
    expect(safeNext("/admin/tools")).toBe("/admin/tools");
  });

  it("sends anything else to the chat: other origins, sign-in pages, junk", () => {
    for (const next of [
      "https://evil.example/",
      "//evil.example/c/x",
      "/\\evil.example",
      "javascript:alert(1)",
      "/login",
      "/setup",
      "/nowhere",
      "",
      null,
      42,
    ]) {
      expect(safeNext(next)).toBe("/");
    }
  });
});

describe("tokenFromHash", () => {
  it("reads the setup token from the fragment", () => {
    expect(tokenFromHash("#token=abc-DEF_123")).toBe("abc-DEF_123");
    expect(tokenFromHash("#x=1&token=a%2Bb")).toBe("a+b");
    expect(tokenFromHash("#token=a+b")).toBe("a+b");
  });

  it("finds none in an empty, foreign or malformed fragment", () => {
    for (const hash of ["", "#", "#token=", "#tokens=abc", "#token=%E0%A4%A"]) {
      expect(tokenFromHash(hash)).toBeNull();
    }
  });
});

describe("decide", () => {
  it("shows nothing but the boot page while the session is unknown", () => {
    expect(decide({ phase: "loading" }, "/settings")).toEqual({ kind: "page", page: "boot" });
    expect(decide({ phase: "unreachable", message: "down" }, "/c/x")).toEqual({ kind: "page", page: "boot" });
  });

  it("keeps the chat as it was when accounts are off, with settings (the data) but no account pages", () => {
    expect(decide(open, "/")).toEqual({ kind: "page", page: "chat" });
    expect(decide(open, "/c/abc")).toEqual({ kind: "page", page: "chat" });
    expect(decide(open, "/settings")).toEqual({ kind: "page", page: "settings" });
    for (const path of ["/login", "/signup", "/setup", "/admin/users", "/elsewhere"]) {
      expect(decide(open, path)).toEqual({ kind: "redirect", to: "/", next: null });
    }
  });

  it("sends everything to the setup page until the first admin exists", () => {
    expect(decide(setup, "/setup")).toEqual({ kind: "page", page: "setup" });
    for (const path of ["/", "/c/abc", "/login", "/signup", "/settings"]) {
      expect(decide(setup, path)).toEqual({ kind: "redirect", to: "/setup", next: null });
    }
  });

  it("sends a signed-out user to sign in, remembering where they were going", () => {
    expect(decide(signedOut(), "/login")).toEqual({ kind: "page", page: "login" });
    expect(decide(signedOut("none"), "/c/abc")).toEqual({ kind: "redirect", to: "/login", next: "/c/abc" });
    expect(decide(signedOut("ended"), "/settings")).toEqual({ kind: "redirect", to: "/login", next: "/settings" });
    expect(decide(signedOut("ended"), "/admin/users")).toMatchObject({ next: "/admin/users" });
    expect(decide(signedOut("ended"), "/setup")).toEqual({ kind: "redirect", to: "/login", next: null });
    expect(decide(signedOut(), "/nowhere")).toEqual({ kind: "redirect", to: "/login", next: null });
  });

  it("does not bring a user who signed out back to the page they left", () => {
    expect(decide(signedOut("signed-out"), "/c/abc")).toEqual({ kind: "redirect", to: "/login", next: null });
  });

  it("shows the sign-up page only when the server's policy allows sign-up", () => {
    expect(decide(signedOut("none", "closed"), "/signup")).toEqual({ kind: "redirect", to: "/login", next: null });
    expect(decide(signedOut("none", "approval"), "/signup")).toEqual({ kind: "page", page: "signup" });
    expect(decide(signedOut("none", "open"), "/signup")).toEqual({ kind: "page", page: "signup" });
  });

  it("gives a signed-in user the chat, settings and the users page", () => {
    expect(decide(signedIn(), "/")).toEqual({ kind: "page", page: "chat" });
    expect(decide(signedIn(), "/c/abc")).toEqual({ kind: "page", page: "chat" });
    expect(decide(signedIn(), "/settings")).toEqual({ kind: "page", page: "settings" });
    // The users page itself tells a non-admin it is for admins.
    expect(decide(signedIn(BOB), "/admin/users")).toEqual({ kind: "page", page: "users" });
    // So does the tools page; signed out, it is where sign-in leads back to.
    expect(decide(signedIn(BOB), "/admin/tools")).toEqual({ kind: "page", page: "tools" });
    expect(decide(signedOut("ended"), "/admin/tools")).toMatchObject({ kind: "redirect", next: "/admin/tools" });
  });

  it("takes a user who just signed in to where they were going, if that is safe", () => {
    expect(decide(signedIn(), "/login", "/c/abc")).toEqual({ kind: "redirect", to: "/c/abc", next: null });
    expect(decide(signedIn(), "/login", "//evil.example")).toEqual({ kind: "redirect", to: "/", next: null });
    expect(decide(signedIn(), "/login")).toEqual({ kind: "redirect", to: "/", next: null });
    expect(decide(signedIn(), "/setup")).toEqual({ kind: "redirect", to: "/", next: null });
    expect(decide(signedIn(), "/signup")).toEqual({ kind: "redirect", to: "/", next: null });
  });
});

describe("a conversation opened at a message (a search hit)", () => {
  it("carries the message in the query, escaped", () => {
    expect(conversationPath("c1")).toBe("/c/c1");
    expect(conversationPath("c/1", "m&1=2")).toBe("/c/c%2F1?m=m%261%3D2");
    expect(conversationPath(null, "m1")).toBe("/");
  });

  it("reads the message back from the query, and nothing else", () => {
    expect(focusFromSearch("?m=m%261%3D2")).toBe("m&1=2");
    expect(focusFromSearch(new URL("http://x" + conversationPath("c", "abc")).search)).toBe("abc");
    expect(focusFromSearch("")).toBeNull();
    expect(focusFromSearch("?m=")).toBeNull();
    expect(focusFromSearch("?q=abc")).toBeNull();
    expect(parseRoute(new URL("http://x" + conversationPath("c", "abc")).pathname)).toEqual({
      name: "chat",
      conversationId: "c",
    });
  });
});
