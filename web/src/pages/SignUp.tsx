/**
 * /signup, when the server's policy allows it ("approval" or "open"). An account that must
 * wait for an admin says so here; an active one is sent to the sign-in page with a notice.
 */

import { type FormEvent, useState } from "react";

import type { Api } from "../api";
import { describe } from "../chat/state";
import { ErrorLine, NewAccountFields } from "../components/Field";
import { Link } from "../components/Link";
import { navigate } from "../hooks/useLocation";
import { PATHS } from "../routes";
import { AccountPage } from "./AccountPage";

export function SignUp({ api }: { api: Api }) {
  const [name, setName] = useState("");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [pending, setPending] = useState(false);

  const submit = async (event: FormEvent): Promise<void> => {
    event.preventDefault();
    if (busy) return;
    setBusy(true);
    setError(null);
    try {
      const result = await api.signup({ email: email.trim(), password, name: name.trim() || null });
      if (result.status === "active") {
        navigate(PATHS.login, { replace: true, state: { notice: "account-created" } });
        return;
      }
      setPending(true);
    } catch (failure) {
      setError(describe(failure, "The account could not be created."));
    }
    setBusy(false);
  };

  return (
    <AccountPage title="Create an account" narrow>
      {/* Always in the page, so that the text put in it is announced. */}
      <p className="page-status" role="status">
        {pending ? "Your account is waiting for an admin's approval." : ""}
      </p>
      {!pending && (
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
            Create account
          </button>
        </form>
      )}
      <p className="page-aside">
        Already have an account? <Link to={PATHS.login}>Sign in</Link>
      </p>
    </AccountPage>
  );
}
