/**
 * The account area at the bottom of the sidebar: who is signed in, links to Settings (and, for
 * admins, Users and Tools), and signing out.
 */

import { useState } from "react";

import type { Me } from "../api";
import { describe } from "../chat/state";
import { PATHS } from "../routes";
import { Link } from "./Link";

export function AccountMenu({ user, onSignOut }: { user: Me; onSignOut(): Promise<void> }) {
  const [error, setError] = useState<string | null>(null);
  const [leaving, setLeaving] = useState(false);
  const signOut = async (): Promise<void> => {
    if (leaving) return;
    setLeaving(true);
    setError(null);
    try {
      await onSignOut();
    } catch (failure) {
      setError(describe(failure, "You could not be signed out."));
      setLeaving(false);
    }
  };
  return (
    <div className="account">
      <p className="account-name" title={user.email}>
        {user.name?.trim() || user.email}
      </p>
      <div className="account-links">
        <Link to={PATHS.settings} className="button subtle">
          Settings
        </Link>
        {user.role === "admin" && (
          <>
            <Link to={PATHS.users} className="button subtle">
              Users
            </Link>
            <Link to={PATHS.tools} className="button subtle">
              Tools
            </Link>
          </>
        )}
        <button type="button" className="button subtle" onClick={() => void signOut()}>
          Sign out
        </button>
      </div>
      {error && (
        <p className="account-error" role="alert">
          {error}
        </p>
      )}
    </div>
  );
}
