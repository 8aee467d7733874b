import { describe, expect, it } from "vitest";

import { Api, ApiError, type StreamItem } from "./api";

interface Seen {
  method: string;
  url: string;
  body: unknown;
  headers: Headers;
  credentials: RequestCredentials | undefined;
}

/** A fake server: answers every request with `reply(method, url)`, and records it. */
function fakeServer(reply: (method: string, url: string) => Response) {
  const seen: Seen[] = [];
  const api = new Api({
    fetch: async (input, init) => {
      const method = init?.method ?? "GET";
      const url = String(input);
      seen.push({
        method,
        url,
        body: typeof init?.body === "string" ? JSON.parse(init.body) : undefined,
        headers: new Headers(init?.headers),
        credentials: init?.credentials,
      });
      return reply(method, url);
    },
  });
  return { api, seen };
}

const json = (status: number, payload: unknown): Response =>
  new Response(JSON.stringify(payload), { status, headers: { "Content-Type": "application/json" } });
const empty = (): Response => new Response(null, { status: 204 });
const unauthenticated = (): Response =>
  json(401, { error: { code: "unauthenticated", message: "your session has ended: sign in again" } });

const ME = { id: "u1", email: "ada@example.com", name: "Ada", role: "admin" };
const USER = { ...ME, id: "u2", email: "bob@example.com", role: "user", status: "pending", created_at: "2025-01-01" };

describe("Api account calls", () => {
  it("sends each account route the method, path and JSON body the server expects", async () => {
    const { api, seen } = fakeServer((method, url) => {
      if (method === "DELETE" || url.endsWith("/logout") || url.endsWith("/password")) return empty();
      if (url.endsWith("/api/keys") && method === "POST") {
        return json(201, { id: "k1", name: "ci", prefix: "ssk_ab", key: "ssk_secret" });
      }
      if (url.endsWith("/api/keys")) return json(200, { keys: [] });
      if (url.endsWith("/api/admin/users") && method === "GET") return json(200, { users: [USER] });
      if (url.includes("/api/admin/users")) return json(200, USER);
      if (url.endsWith("/signup")) return json(201, { status: "pending" });
      if (url.endsWith("/status")) return json(200, { auth: "on", setup_required: false, signup: "approval" });
      return json(200, ME);
    });

    expect(await api.authStatus()).toEqual({ auth: "on", setup_required: false, signup: "approval" });
    expect(await api.setup({ token: "t0k", email: "ada@example.com", password: "longenough", name: null })).toEqual(ME);
    expect(await api.signup({ email: "bob@example.com", password: "longenough" })).toEqual({ status: "pending" });
    expect(await api.login({ email: "ada@example.com", password: "pw" })).toEqual(ME);
    expect(await api.me()).toEqual(ME);
    await api.changePassword({ current_password: "old", new_password: "new-and-long" });
    expect(await api.createKey({ name: "ci" })).toMatchObject({ key: "ssk_secret" });
    expect(await api.listKeys()).toEqual({ keys: [] });
    await api.revokeKey("k/1");
    expect(await api.listUsers()).toEqual({ users: [USER] });
    await api.createUser({ email: "bob@example.com", password: "longenough", role: "user", name: null });
    expect(await api.updateUser("u 2", { status: "active" })).toEqual(USER);
    await api.deleteUser("u2");
    await api.logout();

    expect(seen.map((s) => `${s.method} ${s.url}`)).toEqual([
      "GET /api/auth/status",
      "POST /api/auth/setup",
      "POST /api/auth/signup",
      "POST /api/auth/login",
      "GET /api/auth/me",
      "POST /api/auth/password",
      "POST /api/keys",
      "GET /api/keys",
      "DELETE /api/keys/k%2F1",
      "GET /api/admin/users",
      "POST /api/admin/users",
      "PATCH /api/admin/users/u%202",
      "DELETE /api/admin/users/u2",
      "POST /api/auth/logout",
    ]);
    const bodies = Object.fromEntries(seen.filter((s) => s.body !== undefined).map((s) => [s.url, s.body]));
    expect(bodies["/api/auth/setup"]).toEqual({
      token: "t0k",
      email: "ada@example.com",
      password: "longenough",
      name: null,
    });
    expect(bodies["/api/auth/password"]).toEqual({ current_password: "old", new_password: "new-and-long" });
    expect(bodies["/api/admin/users/u%202"]).toEqual({ status: "active" });
    for (const request of seen) {
      expect(request.credentials).toBe("same-origin");
      if (request.body !== undefined) expect(request.headers.get("Content-Type")).toBe("application/json");
    }
  });

  it("gives the server's code and message for a refused change", async () => {
    const { api } = fakeServer(() =>
      json(403, { error: { code: "forbidden", message: "the current password is not right" } }),
    );
    const error = await api.changePassword({ current_password: "x", new_password: "yyyyyyyy" }).catch((e) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ status: 403, code: "forbidden", message: "the current password is not right" });
  });
});

describe("Api 401 reporting", () => {
  /** An Api whose every answer is a 401, and the 401s its listener was told of. */
  function signedOutServer() {
    const { api, seen } = fakeServer(unauthenticated);
    const reported: ApiError[] = [];
    api.onUnauthenticated((error) => reported.push(error));
    return { api, reported };
  }

  it("reports a 401 on an ordinary call, and still rejects the call with it", async () => {
    const { api, reported } = signedOutServer();
    const error = await api.listConversations().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(reported).toEqual([error]);
    expect(reported[0]).toMatchObject({ status: 401, code: "unauthenticated" });
  });

  it("reports a 401 on a run stream, on its resume, and on account calls", async () => {
    const { api, reported } = signedOutServer();
    const signal = new AbortController().signal;
    await expect(api.sendMessage("c1", { content: "hi" }, signal)).rejects.toBeInstanceOf(ApiError);
    await expect(api.followRun("r1", 7, signal)).rejects.toBeInstanceOf(ApiError);
    await expect(api.regenerate("m1", {}, signal)).rejects.toBeInstanceOf(ApiError);
    await expect(api.listKeys()).rejects.toBeInstanceOf(ApiError);
    await expect(api.logout()).rejects.toBeInstanceOf(ApiError);
    expect(reported).toHaveLength(5);
  });

  it("does not report the 401s that are answers: sign-in, setup, sign-up, who-am-I", async () => {
    const { api, reported } = signedOutServer();
    await expect(api.login({ email: "a@b.c", password: "wrong" })).rejects.toMatchObject({ status: 401 });
    await expect(api.me()).rejects.toMatchObject({ status: 401 });
    await expect(api.setup({ token: "bad", email: "a@b.c", password: "longenough" })).rejects.toMatchObject({
      status: 401,
    });
    await expect(api.signup({ email: "a@b.c", password: "longenough" })).rejects.toMatchObject({ status: 401 });
    expect(reported).toEqual([]);
  });

  it("does not report other errors, and stops reporting once unsubscribed", async () => {
    let status = 403;
    const { api } = fakeServer(() => json(status, { error: { code: "x", message: "no" } }));
    const reported: unknown[] = [];
    const stop = api.onUnauthenticated((error) => reported.push(error));
    await expect(api.listUsers()).rejects.toMatchObject({ status: 403 });
    expect(reported).toHaveLength(0);
    status = 401;
    await expect(api.listUsers()).rejects.toMatchObject({ status: 401 });
    expect(reported).toHaveLength(1);
    stop();
    await expect(api.listUsers()).rejects.toMatchObject({ status: 401 });
    expect(reported).toHaveLength(1);
  });

  it("leaves a stream that is answered normally alone", async () => {
    const { api } = fakeServer(() => new Response('id: 1\nevent: delta\ndata: {"text":"ok"}\n\n', { status: 200 }));
    const seenReports: unknown[] = [];
    api.onUnauthenticated((error) => seenReports.push(error));
    const items: StreamItem[] = [];
    for await (const item of await api.followRun("r1", 0, new AbortController().signal)) items.push(item);
    expect(items).toEqual([{ type: "delta", id: 1, text: "ok" }]);
    expect(seenReports).toEqual([]);
  });
});
