import { describe, expect, it } from "vitest";

import { Api, ApiError, type AuthStatus, type Me, NetworkError } from "./api";
import { decide } from "./routes";
import { type SessionApi, SessionStore } from "./session";

const ADA: Me = { id: "u1", email: "ada@example.com", name: "Ada", role: "admin" };
const ON: AuthStatus = { auth: "on", setup_required: false, signup: "closed" };

/** A fake of the session's part of the Api, with a 401 the test can raise. */
class FakeSessionApi implements SessionApi {
  status: AuthStatus | Error = ON;
  user: Me | Error = ADA;
  logoutError: Error | null = null;
  logouts = 0;
  private readonly listeners = new Set<(error: ApiError) => void>();

  async authStatus(): Promise<AuthStatus> {
    if (this.status instanceof Error) throw this.status;
    return this.status;
  }
  async me(): Promise<Me> {
    if (this.user instanceof Error) throw this.user;
    return this.user;
  }
  async logout(): Promise<void> {
    this.logouts++;
    if (this.logoutError) throw this.logoutError;
  }
  onUnauthenticated(listener: (error: ApiError) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  raise401(): void {
    for (const listener of this.listeners) listener(new ApiError(401, "unauthenticated", "session ended"));
  }
}

const notSignedIn = (): ApiError => new ApiError(401, "unauthenticated", "sign in");

describe("SessionStore.boot", () => {
  it("is open, with no account, when the server has accounts off", async () => {
    const api = new FakeSessionApi();
    api.status = { ...ON, auth: "off" };
    api.user = new Error("must not be asked");
    const session = new SessionStore(api);
    await session.boot();
    expect(session.getState()).toEqual({ phase: "open" });
  });

  it("asks for setup while no account exists", async () => {
    const api = new FakeSessionApi();
    api.status = { ...ON, setup_required: true };
    const session = new SessionStore(api);
    await session.boot();
    expect(session.getState()).toMatchObject({ phase: "setup" });
  });

  it("is signed in as whoever the cookie names, or signed out on a 401", async () => {
    const api = new FakeSessionApi();
    const session = new SessionStore(api);
    await session.boot();
    expect(session.getState()).toEqual({ phase: "signed-in", status: ON, user: ADA });

    api.user = notSignedIn();
    await session.boot();
    expect(session.getState()).toEqual({ phase: "signed-out", status: ON, reason: "none" });
  });

  it("says the server is unreachable, rather than that nobody is signed in", async () => {
    const api = new FakeSessionApi();
    api.user = new NetworkError("down");
    const session = new SessionStore(api);
    await session.boot();
    expect(session.getState()).toMatchObject({ phase: "unreachable", message: "The server could not be reached." });

    api.status = new NetworkError("down");
    await session.boot();
    expect(session.getState().phase).toBe("unreachable");
  });
});

describe("SessionStore: signing in and out", () => {
  it("is signed in after setup, with setup no longer required", async () => {
    const api = new FakeSessionApi();
    api.status = { ...ON, setup_required: true };
    const session = new SessionStore(api);
    await session.boot();
    session.signedIn(ADA);
    expect(session.getState()).toEqual({ phase: "signed-in", status: ON, user: ADA });
  });

  it("signs out on the server first, and stays signed in if that fails", async () => {
    const api = new FakeSessionApi();
    const session = new SessionStore(api);
    await session.boot();
    api.logoutError = new NetworkError("down");
    await expect(session.signOut()).rejects.toBeInstanceOf(NetworkError);
    expect(session.getState().phase).toBe("signed-in");

    api.logoutError = null;
    await session.signOut();
    expect(api.logouts).toBe(2);
    expect(session.getState()).toEqual({ phase: "signed-out", status: ON, reason: "signed-out" });
  });

  it("counts a sign-out whose session had already ended as done", async () => {
    const api = new FakeSessionApi();
    const session = new SessionStore(api);
    await session.boot();
    api.logoutError = notSignedIn();
    await session.signOut();
    expect(session.getState()).toMatchObject({ phase: "signed-out", reason: "signed-out" });
  });

  it("tells its subscribers of every change", async () => {
    const api = new FakeSessionApi();
    const session = new SessionStore(api);
    const phases: string[] = [];
    session.subscribe(() => phases.push(session.getState().phase));
    await session.boot();
    api.raise401();
    expect(phases).toEqual(["signed-in", "signed-out"]);
  });
});

describe("SessionStore: a 401 ends the session", () => {
  it("goes to signed out (ended) on a 401 reported by the Api", async () => {
    const api = new FakeSessionApi();
    const session = new SessionStore(api);
    await session.boot();
    api.raise401();
    expect(session.getState()).toEqual({ phase: "signed-out", status: ON, reason: "ended" });
    // Later 401s (other calls failing the same way) change nothing more.
    api.raise401();
    expect(session.getState()).toMatchObject({ reason: "ended" });
  });

  it("ignores a 401 while signed out or being set up", async () => {
    const api = new FakeSessionApi();
    api.user = notSignedIn();
    const session = new SessionStore(api);
    await session.boot();
    api.raise401();
    expect(session.getState()).toEqual({ phase: "signed-out", status: ON, reason: "none" });
  });

  it("starts again from the server's status when a 401 comes with accounts off", async () => {
    const api = new FakeSessionApi();
    api.status = { ...ON, auth: "off" };
    const session = new SessionStore(api);
    await session.boot();
    api.status = ON;
    api.user = notSignedIn();
    const changed = new Promise<void>((resolve) =>
      session.subscribe(() => session.getState().phase === "signed-out" && resolve()),
    );
    api.raise401();
    await changed;
    expect(session.getState()).toMatchObject({ phase: "signed-out", reason: "none" });
  });

  it("sends the page to sign-in, back to the conversation, when a run's resume gets a 401", async () => {
    // The real Api, its server answering "who am I" and then refusing the run's resume.
    let signedIn = true;
    const api = new Api({
      fetch: async (input) => {
        const url = String(input);
        if (url === "/api/auth/status") return Response.json(ON);
        if (signedIn && url === "/api/auth/me") return Response.json(ADA);
        return Response.json({ error: { code: "unauthenticated", message: "disabled" } }, { status: 401 });
      },
    });
    const session = new SessionStore(api);
    await session.boot();
    expect(decide(session.getState(), "/c/abc")).toEqual({ kind: "page", page: "chat" });

    signedIn = false; // an admin disabled the account; the server closed the stream
    await expect(api.followRun("r1", 12, new AbortController().signal)).rejects.toMatchObject({ status: 401 });
    expect(session.getState()).toMatchObject({ phase: "signed-out", reason: "ended" });
    expect(decide(session.getState(), "/c/abc")).toEqual({ kind: "redirect", to: "/login", next: "/c/abc" });
  });
});
