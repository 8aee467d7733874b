/**
 * /admin/users: admins add accounts, approve pending ones, disable and enable, change roles,
 * reset passwords and delete. Every change is the server's to allow (it refuses, say, removing
 * the last admin); its answer is shown as is. Destructive steps confirm inline, never with
 * window.confirm(). A user who is not an admin reads that the page is for admins.
 */

import { type FormEvent, type KeyboardEvent, useCallback, useEffect, useRef, useState } from "react";

import type { Api, Me, UserInfo, UserPatch, UserRole } from "../api";
import { describe } from "../chat/state";
import { ErrorLine, Field } from "../components/Field";
import { AccountPage } from "./AccountPage";

const ROLES: readonly UserRole[] = ["user", "admin"];

const STATUS_TEXT: Readonly<Record<UserInfo["status"], string>> = {
  active: "Active",
  pending: "Waiting for approval",
  disabled: "Disabled",
};

export function Users({ api, user }: { api: Api; user: Me }) {
  if (user.role !== "admin") {
    return (
      <AccountPage title="Users" back>
        <p className="page-text">Only admins can manage users.</p>
      </AccountPage>
    );
  }
  return <UserAdmin api={api} me={user} />;
}

function UserAdmin({ api, me }: { api: Api; me: Me }) {
  const [users, setUsers] = useState<readonly UserInfo[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState("");
  const heading = useRef<HTMLHeadingElement>(null);

  const load = useCallback(async (): Promise<void> => {
    try {
      setUsers((await api.listUsers()).users);
    } catch (failure) {
      setError(describe(failure, "The users could not be loaded."));
    }
  }, [api]);

  useEffect(() => {
    void load();
  }, [load]);

  const replace = (updated: UserInfo): void =>
    setUsers((list) => list && list.map((u) => (u.id === updated.id ? updated : u)));

  const actions: RowActions = {
    update: async (target, patch, success) => {
      setError(null);
      setDone("");
      try {
        replace(await api.updateUser(target.id, patch));
        setDone(success);
        return true;
      } catch (failure) {
        setError(describe(failure, `${target.email} could not be changed.`));
        await load(); // show what the server has, not what was asked for
        return false;
      }
    },
    remove: async (target) => {
      setError(null);
      setDone("");
      try {
        await api.deleteUser(target.id);
        setUsers((list) => list && list.filter((u) => u.id !== target.id));
        setDone(`${target.email} was deleted.`);
        heading.current?.focus(); // the row, and the focused button, are gone
      } catch (failure) {
        setError(describe(failure, `${target.email} could not be deleted.`));
      }
    },
  };

  return (
    <AccountPage title="Users" back>
      <AddUser
        api={api}
        onAdded={(added) => {
          setUsers((list) => (list ? [...list.filter((u) => u.id !== added.id), added] : [added]));
          setDone(`${added.email} was added.`);
        }}
      />
      <section className="page-section" aria-labelledby="accounts-heading">
        <h2 id="accounts-heading" ref={heading} tabIndex={-1}>
          Accounts
        </h2>
        <p className="form-status" role="status">
          {done}
        </p>
        <ErrorLine error={error} />
        {users && (
          <table className="data-table users-table">
            <caption className="visually-hidden">Accounts on this server</caption>
            <thead>
              <tr>
                <th scope="col">Email</th>
                <th scope="col">Name</th>
                <th scope="col">Role</th>
                <th scope="col">Status</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {users.map((u) => (
                <UserRow key={u.id} user={u} self={u.id === me.id} actions={actions} />
              ))}
            </tbody>
          </table>
        )}
      </section>
    </AccountPage>
  );
}

function AddUser({ api, onAdded }: { api: Api; onAdded(user: UserInfo): void }) {
  const [email, setEmail] = useState("");
  const [name, setName] = useState("");
  const [password, setPassword] = useState("");
  const [role, setRole] = useState<UserRole>("user");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (event: FormEvent): Promise<void> => {
    event.preventDefault();
    if (busy) return;
    setBusy(true);
    setError(null);
    try {
      onAdded(await api.createUser({ email: email.trim(), name: name.trim() || null, password, role }));
      setEmail("");
      setName("");
      setPassword("");
      setRole("user");
    } catch (failure) {
      setError(describe(failure, "The user could not be added."));
    }
    setBusy(false);
  };

  return (
    <section className="page-section" aria-labelledby="add-user-heading">
      <h2 id="add-user-heading">Add a user</h2>
      <form className="account-form grid-form" onSubmit={(e) => void submit(e)}>
        <Field
          label="Email"
          type="email"
          autoComplete="off"
          required
          maxLength={320}
          value={email}
          onValue={setEmail}
        />
        <Field label="Name" hint="Optional" autoComplete="off" maxLength={200} value={name} onValue={setName} />
        <Field
          label="Password"
          hint="8 characters or more."
          type="password"
          autoComplete="new-password"
          required
          minLength={8}
          maxLength={256}
          value={password}
          onValue={setPassword}
        />
        <div className="field">
          <label htmlFor="add-user-role">Role</label>
          <select id="add-user-role" value={role} onChange={(e) => setRole(e.target.value as UserRole)}>
            {ROLES.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
        </div>
        <ErrorLine error={error} />
        <div>
          <button type="submit" className="button primary">
            Add user
          </button>
        </div>
      </form>
    </section>
  );
}

interface RowActions {
  /** Apply `patch`; on success say `success` in the status line. Resolves whether it worked. */
  update(user: UserInfo, patch: UserPatch, success: string): Promise<boolean>;
  remove(user: UserInfo): Promise<void>;
}

type Open = "none" | "password" | "delete";

function UserRow({ user, self, actions }: { user: UserInfo; self: boolean; actions: RowActions }) {
  const [open, setOpen] = useState<Open>("none");
  const [password, setPassword] = useState("");
  const toggles = { password: useRef<HTMLButtonElement>(null), delete: useRef<HTMLButtonElement>(null) };
  const { email } = user;

  // Closing an inline form puts the keyboard back on the button that opened it.
  const close = (): void => {
    if (open !== "none") toggles[open].current?.focus();
    setOpen("none");
  };
  const onEscape = (event: KeyboardEvent): void => {
    if (event.key === "Escape") close();
  };

  const setStatus = (status: UserInfo["status"], verb: string): void =>
    void actions.update(user, { status }, `${email} was ${verb}.`);

  const resetPassword = async (event: FormEvent): Promise<void> => {
    event.preventDefault();
    const ok = await actions.update(
      user,
      { password },
      `The password of ${email} was changed; their sessions and API keys have ended.`,
    );
    if (ok) {
      setPassword("");
      close();
    }
  };

  return (
    <tr>
      <td data-label="Email" className="cell-strong cell-wrap">
        <span>
          {email}
          {self && <span className="muted"> (you)</span>}
        </span>
      </td>
      <td data-label="Name" className="cell-wrap">
        {user.name ?? ""}
      </td>
      <td data-label="Role">
        <select
          aria-label={`Role of ${email}`}
          value={user.role}
          onChange={(e) => {
            const role = e.target.value as UserRole;
            void actions.update(user, { role }, `${email} is now ${role === "admin" ? "an admin" : "a user"}.`);
          }}
        >
          {ROLES.map((r) => (
            <option key={r} value={r}>
              {r}
            </option>
          ))}
        </select>
      </td>
      <td data-label="Status">{STATUS_TEXT[user.status]}</td>
      <td className="cell-actions">
        <div className="row-actions">
          {user.status === "pending" && (
            <button
              type="button"
              className="button"
              aria-label={`Approve ${email}`}
              onClick={() => setStatus("active", "approved")}
            >
              Approve
            </button>
          )}
          {user.status === "active" && !self && (
            <button
              type="button"
              className="button"
              aria-label={`Disable ${email}`}
              onClick={() => setStatus("disabled", "disabled")}
            >
              Disable
            </button>
          )}
          {user.status === "disabled" && (
            <button
              type="button"
              className="button"
              aria-label={`Enable ${email}`}
              onClick={() => setStatus("active", "enabled")}
            >
              Enable
            </button>
          )}
          <button
            type="button"
            className="button"
            ref={toggles.password}
            aria-label={`Reset password of ${email}`}
            aria-expanded={open === "password"}
            onClick={() => setOpen(open === "password" ? "none" : "password")}
          >
            Reset password
          </button>
          {/* The server refuses both on one's own account: another admin must do it. */}
          {!self && (
            <button
              type="button"
              className="button danger-outline"
              ref={toggles.delete}
              aria-label={`Delete ${email}`}
              aria-expanded={open === "delete"}
              onClick={() => setOpen(open === "delete" ? "none" : "delete")}
            >
              Delete
            </button>
          )}
        </div>
        {open === "password" && (
          <form className="inline-form" onSubmit={(e) => void resetPassword(e)} onKeyDown={onEscape}>
            <Field
              label={`New password for ${email}`}
              type="password"
              autoComplete="new-password"
              autoFocus
              required
              minLength={8}
              maxLength={256}
              value={password}
              onValue={setPassword}
            />
            <div className="inline-form-actions">
              <button type="button" className="button" onClick={close}>
                Cancel
              </button>
              <button type="submit" className="button primary">
                Set password
              </button>
            </div>
          </form>
        )}
        {open === "delete" && (
          <div className="inline-form" role="group" aria-label={`Delete ${email}?`} onKeyDown={onEscape}>
            <p className="inline-form-text">Delete {email} and everything they wrote? This cannot be undone.</p>
            <div className="inline-form-actions">
              <button type="button" className="button" autoFocus onClick={close}>
                Cancel
              </button>
              <button
                type="button"
                className="button danger"
                aria-label={`Confirm delete ${email}`}
                onClick={() => void actions.remove(user)}
              >
                Confirm delete
              </button>
            </div>
          </div>
        )}
      </td>
    </tr>
  );
}
