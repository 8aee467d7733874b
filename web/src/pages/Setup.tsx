/**
 * /setup#token=…: the first admin, made with the one-time token of the link `ssechat serve`
 * printed. The token is read from the URL's fragment (never sent to the server but in the
 * POST body) and removed from the address bar at once, so it is not left in history or on
 * screen.
 */

import { type FormEvent, useEffect, useState } from "react";

import type { Api, Me } from "../api";
import { describe } from "../chat/state";
import { ErrorLine, NewAccountFields } from "../components/Field";
import { tokenFromHash } from "../routes";
import { AccountPage } from "./AccountPage";

export function Setup({ api, onSignedIn }: { api: Api; onSignedIn(user: Me): void }) {
  // Read before the fragment is removed (both calls of StrictMode's double render see it).
  const [token, setToken] = useState(() => tokenFromHash(window.location.hash));
  const [name, setName] = useState("");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  // Remove the fragment from the address bar; a link pasted while this page is open only
  // changes the fragment (no reload), so take the token from that too.
  useEffect(() => {
    const take = (): void => {
      if (window.location.hash === "") return;
      const found = tokenFromHash(window.location.hash);
      if (found !== null) setToken(found);
      const { pathname, search } = window.location;
      window.history.replaceState(window.history.state, "", pathname + search);
    };
    take();
    window.addEventListener("hashchange", take);
    return () => window.removeEventListener("hashchange", take);
  }, []);

  const submit = async (event: FormEvent): Promise<void> => {
    event.preventDefault();
    if (busy || token === null) return;
    setBusy(true);
    setError(null);
    try {
      onSignedIn(await api.setup({ token, email: email.trim(), password, name: name.trim() || null }));
    } catch (failure) {
      setError(describe(failure, "The admin account could not be created."));
      setBusy(false);
    }
  };

  return (
    <AccountPage title="Set up ssechat" narrow>
      {token === null ? (
        <p className="page-text">
          To create the first admin account, open the setup link that <code>ssechat serve</code> printed when it started
          (it ends in <code>/setup#token=…</code>).
        </p>
      ) : (
        <>
          <p className="page-text">Create the first account: it will be the admin.</p>
          <form className="account-form" onSubmit={(e) => void submit(e)}>
            <NewAccountFields
              name={name}
              email={email}
              password={password}
              onName={setName}
              onEmail={setEmail}
              onPassword={setPassword}
            />
            <ErrorLine error={error} />
            <button type="submit" className="button primary wide">
              Create admin account
            </button>
          </form>
        </>
      )}
    </AccountPage>
  );
}
