/**
 * The app: which page the address bar and the session lead to (`routes.decide`), applied.
 * The chat at / and /c/<id>; beside it, when accounts are on, /login, /signup, /setup,
 * /settings, /admin/users and /admin/tools. No router library: `hooks/useLocation` follows the history.
 *
 * One chat core per signed-in user: signing out, or a session the server ended (any 401,
 * reported by the Api), drops it and its state, and the page goes to the sign-in page,
 * remembering where the user was.
 */

import { useCallback, useEffect, useMemo, useSyncExternalStore } from "react";

import type { Api, Me } from "./api";
import { ChatCore } from "./chat/core";
import { clearDrafts } from "./chat/drafts";
import { ChatContext } from "./hooks/useChat";
import { navigate, useLocation } from "./hooks/useLocation";
import { AccountPage } from "./pages/AccountPage";
import { ChatPage } from "./pages/ChatPage";
import { Settings } from "./pages/Settings";
import { Setup } from "./pages/Setup";
import { SignIn } from "./pages/SignIn";
import { SignUp } from "./pages/SignUp";
import { Tools } from "./pages/Tools";
import { Users } from "./pages/Users";
import { decide, focusFromSearch, parseRoute } from "./routes";
import type { SessionStore } from "./session";

export function App({ api, session }: { api: Api; session: SessionStore }) {
  const state = useSyncExternalStore(session.subscribe, session.getState, session.getState);
  const location = useLocation();
  const decision = decide(state, location.path, location.state.next ?? null);

  const redirectTo = decision.kind === "redirect" ? decision.to : null;
  const redirectNext = decision.kind === "redirect" ? decision.next : null;
  useEffect(() => {
    if (redirectTo === null) return;
    navigate(redirectTo, { replace: true, state: redirectNext === null ? {} : { next: redirectNext } });
  }, [redirectTo, redirectNext]);

  // The chat's state belongs to one user (or to nobody in particular when accounts are off).
  const owner = state.phase === "open" ? "" : state.phase === "signed-in" ? state.user.id : null;
  const core = useMemo(() => (owner === null ? null : new ChatCore(api)), [api, owner]);

  const signOut = useCallback(async (): Promise<void> => {
    await session.signOut();
    clearDrafts(); // unsent text is not for the next person at this browser
  }, [session]);
  const signedIn = useCallback((user: Me) => session.signedIn(user), [session]);

  if (decision.kind === "redirect") return null;
  switch (decision.page) {
    case "boot":
      return state.phase === "unreachable" ? (
        <Unreachable message={state.message} onRetry={() => void session.boot()} />
      ) : null;
    case "chat":
      if (core === null) return null;
      return (
        <ChatContext.Provider value={core}>
          <ChatPage
            key={owner ?? ""}
            api={api}
            conversationId={chatId(location.path)}
            focusMessageId={focusFromSearch(location.search)}
            user={state.phase === "signed-in" ? state.user : null}
            onSignOut={signOut}
          />
        </ChatContext.Provider>
      );
    case "login":
      return (
        <SignIn
          api={api}
          signup={state.phase === "signed-out" ? state.status.signup : "closed"}
          ended={state.phase === "signed-out" && state.reason === "ended"}
          notice={location.state.notice}
          onSignedIn={signedIn}
        />
      );
    case "signup":
      return <SignUp api={api} />;
    case "setup":
      return <Setup api={api} onSignedIn={signedIn} />;
    case "settings":
      return <Settings api={api} accounts={state.phase !== "open"} />;
    case "users":
      return state.phase === "signed-in" ? <Users api={api} user={state.user} /> : null;
    case "tools":
      return state.phase === "signed-in" ? <Tools api={api} user={state.user} /> : null;
  }
}

function chatId(path: string): string | null {
  const route = parseRoute(path);
  return route.name === "chat" ? route.conversationId : null;
}

function Unreachable({ message, onRetry }: { message: string; onRetry(): void }) {
  return (
    <AccountPage title="Cannot reach the server" narrow>
      <p className="form-error" role="alert">
        {message}
      </p>
      <button type="button" className="button primary wide" onClick={onRetry}>
        Try again
      </button>
    </AccountPage>
  );
}
