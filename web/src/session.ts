/**
 * Who is using the page: the boot sequence (the server's auth status, then "who am I") and
 * what ends a session (signing out, or any 401 the API reports: the session expired, the
 * account was disabled, its password changed elsewhere).
 *
 * React-agnostic, like the chat core: the app reads it with useSyncExternalStore. It must
 * never touch the DOM or the URL: which page each state leads to is `routes.ts`'s decision.
 */

import { ApiError, type AuthStatus, type Me } from "./api";
import { describe } from "./chat/state";

/** The part of `Api` the session needs; tests pass a fake. */
export interface SessionApi {
  authStatus(): Promise<AuthStatus>;
  me(): Promise<Me>;
  logout(): Promise<void>;
  onUnauthenticated(listener: (error: ApiError) => void): () => void;
}

/**
 * Why nobody is signed in: never was in this tab ("none"), the server ended the session under
 * the user ("ended": they go back where they were after signing in), or they signed out.
 */
export type SignedOutReason = "none" | "ended" | "signed-out";

export type Session =
  | { readonly phase: "loading" }
  | { readonly phase: "unreachable"; readonly message: string }
  /** Accounts are off (`SSECHAT_AUTH=off`): the chat as it always was, no account UI. */
  | { readonly phase: "open" }
  /** No account exists yet: only the setup link's page. */
  | { readonly phase: "setup"; readonly status: AuthStatus }
  | { readonly phase: "signed-out"; readonly status: AuthStatus; readonly reason: SignedOutReason }
  | { readonly phase: "signed-in"; readonly status: AuthStatus; readonly user: Me };

export class SessionStore {
  private state: Session = { phase: "loading" };
  private readonly listeners = new Set<() => void>();
  private bootSeq = 0;

  constructor(private readonly api: SessionApi) {
    api.onUnauthenticated(() => this.unauthenticated());
  }

  getState = (): Session => this.state;

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  private set(state: Session): void {
    this.state = state;
    for (const listener of this.listeners) listener();
  }

  /** Ask the server how things stand: accounts on or off, set up or not, who is signed in. */
  async boot(): Promise<void> {
    const seq = ++this.bootSeq;
    if (this.state.phase !== "loading") this.set({ phase: "loading" });
    let next: Session;
    try {
      const status = await this.api.authStatus();
      if (status.auth === "off") next = { phase: "open" };
      else if (status.setup_required) next = { phase: "setup", status };
      else next = await this.whoAmI(status);
    } catch (error) {
      next = { phase: "unreachable", message: describe(error, "The server could not be reached.") };
    }
    if (seq === this.bootSeq) this.set(next);
  }

  private async whoAmI(status: AuthStatus): Promise<Session> {
    try {
      return { phase: "signed-in", status, user: await this.api.me() };
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) return { phase: "signed-out", status, reason: "none" };
      throw error;
    }
  }

  /** Sign-in or setup answered with the account: the cookie is set. */
  signedIn(user: Me): void {
    const state = this.state;
    if (state.phase !== "setup" && state.phase !== "signed-out" && state.phase !== "signed-in") return;
    this.bootSeq++; // a boot still asking "who am I" must not undo this
    this.set({ phase: "signed-in", status: { ...state.status, setup_required: false }, user });
  }

  /**
   * End the session on the server, then here. A network failure is thrown (the cookie may
   * still be good, so the page must not pretend); a 401 means it had already ended.
   */
  async signOut(): Promise<void> {
    try {
      await this.api.logout();
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 401)) throw error;
    }
    const state = this.state;
    if (state.phase === "signed-in" || state.phase === "signed-out") {
      this.set({ phase: "signed-out", status: state.status, reason: "signed-out" });
    }
  }

  private unauthenticated(): void {
    const state = this.state;
    if (state.phase === "signed-in") {
      this.set({ phase: "signed-out", status: state.status, reason: "ended" });
    } else if (state.phase === "open") {
      // The server was restarted with accounts on: start again from its status.
      void this.boot();
    }
  }
}
