/**
 * /login: email and password. A wrong pair, a pending or disabled account, or too many
 * attempts is told in an alert; success hands the account to the session, and the app goes
 * where the user was going.
 */

import { type FormEvent, useState } from "react";

import type { Api, Me, SignupPolicy } from "../api";
import { describe } from "../chat/state";
import { ErrorLine, Field } from "../components/Field";
import { Link } from "../components/Link";
import type { NavNotice } from "../hooks/useLocation";
import { PATHS } from "../routes";
import { AccountPage } from "./AccountPage";

const NOTICES: Readonly<Record<NavNotice, string>> = {
  "account-created": "Account created: sign in.",
};

export function SignIn({
  api,
  signup,
  ended,
  notice,
  onSignedIn,
}: {
  api: Api;
  signup: SignupPolicy;
  /** The server ended the session the user had (expired, disabled, signed out elsewhere). */
  ended: boolean;
  notice: NavNotice | undefined;
  onSignedIn(user: Me): void;
}) {
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (event: FormEvent): Promise<void> => {
    event.preventDefault();
    if (busy) return;
    setBusy(true);
    setError(null);
    try {
      onSignedIn(await api.login({ email: email.trim(), password }));
    } catch (failure) {
      setError(describe(failure, "You could not be signed in."));
      setBusy(false);
    }
  };

  const status = notice ? NOTICES[notice] : ended ? "Your session has ended: sign in again." : "";
  return (
    <AccountPage title="Sign in" narrow>
      <p className="page-status" role="status">
        {status}
      </p>
      <form className="account-form" onSubmit={(e) => void submit(e)}>
        <Field
          label="Email"
          type="email"
          autoComplete="username"
          required
          autoFocus
          maxLength={320}
          value={email}
          onValue={setEmail}
        />
        <Field
          label="Password"
          type="password"
          autoComplete="current-password"
          required
          maxLength={256}
          value={password}
          onValue={setPassword}
        />
        <ErrorLine error={error} />
        <button type="submit" className="button primary wide">
          Sign in
        </button>
      </form>
      {signup !== "closed" && (
        <p className="page-aside">
          New here? <Link to={PATHS.signup}>Create an account</Link>
        </p>
      )}
    </AccountPage>
  );
}
