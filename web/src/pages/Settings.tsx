/**
 * /settings: the user's password, API keys, and data (export everything, import: `YourData`);
 * with accounts off, the data only. A new key is shown once, in a read-only field
 * with a copy button; the server keeps only its hash and visible prefix, so it cannot be shown
 * again. Changing the password ends the user's other sessions and every API key (the server
 * does that; the list is reloaded to show it).
 */

import { type FormEvent, useCallback, useEffect, useRef, useState } from "react";

import type { Api, ApiKeyCreated, ApiKeyInfo } from "../api";
import { describe } from "../chat/state";
import { copyText } from "../components/clipboard";
import { ErrorLine, Field } from "../components/Field";
import { AccountPage } from "./AccountPage";
import { YourData } from "./YourData";

const TIME = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

function formatTime(iso: string | null, none: string): string {
  if (iso === null) return none;
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : TIME.format(date);
}

/** With accounts off there is no password nor key: only the data section. */
export function Settings({ api, accounts = true }: { api: Api; accounts?: boolean }) {
  if (!accounts) {
    return (
      <AccountPage title="Settings" back>
        <YourData api={api} />
      </AccountPage>
    );
  }
  return <AccountSettings api={api} />;
}

function AccountSettings({ api }: { api: Api }) {
  const [keys, setKeys] = useState<readonly ApiKeyInfo[] | null>(null);
  const [keysError, setKeysError] = useState<string | null>(null);

  const loadKeys = useCallback(async (): Promise<void> => {
    try {
      setKeys((await api.listKeys()).keys);
    } catch (failure) {
      setKeysError(describe(failure, "Your API keys could not be loaded."));
    }
  }, [api]);

  useEffect(() => {
    void loadKeys();
  }, [loadKeys]);

  return (
    <AccountPage title="Settings" back>
      <PasswordSection api={api} onChanged={loadKeys} />
      <KeysSection api={api} keys={keys} error={keysError} setError={setKeysError} reload={loadKeys} />
      <YourData api={api} />
    </AccountPage>
  );
}

function PasswordSection({ api, onChanged }: { api: Api; onChanged(): Promise<void> }) {
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState("");
  const [busy, setBusy] = useState(false);

  const submit = async (event: FormEvent): Promise<void> => {
    event.preventDefault();
    if (busy) return;
    setBusy(true);
    setError(null);
    setDone("");
    try {
      await api.changePassword({ current_password: current, new_password: next });
      setCurrent("");
      setNext("");
      setDone("Your password was changed. Your other sessions and your API keys have ended.");
      await onChanged();
    } catch (failure) {
      setError(describe(failure, "The password could not be changed."));
    }
    setBusy(false);
  };

  return (
    <section className="page-section" aria-labelledby="password-heading">
      <h2 id="password-heading">Password</h2>
      <form className="account-form" onSubmit={(e) => void submit(e)}>
        <Field
          label="Current password"
          type="password"
          autoComplete="current-password"
          required
          maxLength={256}
          value={current}
          onValue={setCurrent}
        />
        <Field
          label="New password"
          hint="8 characters or more. Your other sessions and your API keys will end."
          type="password"
          autoComplete="new-password"
          required
          minLength={8}
          maxLength={256}
          value={next}
          onValue={setNext}
        />
        <ErrorLine error={error} />
        <p className="form-status" role="status">
          {done}
        </p>
        <div>
          <button type="submit" className="button primary">
            Change password
          </button>
        </div>
      </form>
    </section>
  );
}

function KeysSection({
  api,
  keys,
  error,
  setError,
  reload,
}: {
  api: Api;
  keys: readonly ApiKeyInfo[] | null;
  error: string | null;
  setError(error: string | null): void;
  reload(): Promise<void>;
}) {
  const [name, setName] = useState("");
  const [created, setCreated] = useState<ApiKeyCreated | null>(null);
  const [busy, setBusy] = useState(false);
  const heading = useRef<HTMLHeadingElement>(null);

  const create = async (event: FormEvent): Promise<void> => {
    event.preventDefault();
    if (busy || name.trim() === "") return;
    setBusy(true);
    setError(null);
    try {
      setCreated(await api.createKey({ name: name.trim() }));
      setName("");
      await reload();
    } catch (failure) {
      setError(describe(failure, "The key could not be created."));
    }
    setBusy(false);
  };

  const revoke = async (key: ApiKeyInfo): Promise<void> => {
    setError(null);
    try {
      await api.revokeKey(key.id);
      if (created?.id === key.id) setCreated(null);
      // The button pressed is gone: keep the keyboard user in this section.
      heading.current?.focus();
      await reload();
    } catch (failure) {
      setError(describe(failure, `The key “${key.name}” could not be revoked.`));
    }
  };

  return (
    <section className="page-section" aria-labelledby="keys-heading">
      <h2 id="keys-heading" ref={heading} tabIndex={-1}>
        API keys
      </h2>
      <p className="page-text">
        Programs (<code>ssechat chat</code>, scripts) send a key as <code>Authorization: Bearer &lt;key&gt;</code>. A
        key works until you revoke it or change your password.
      </p>
      <form className="inline-fields" onSubmit={(e) => void create(e)}>
        <Field label="Key name" required maxLength={100} value={name} onValue={setName} />
        <button type="submit" className="button primary">
          Create key
        </button>
      </form>
      {created && <NewKey key={created.id} created={created} />}
      <ErrorLine error={error} />
      {keys === null ? null : keys.length === 0 ? (
        <p className="page-text muted">No API keys yet.</p>
      ) : (
        <table className="data-table">
          <caption className="visually-hidden">Your API keys</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Prefix</th>
              <th scope="col">Created</th>
              <th scope="col">Last used</th>
              <th scope="col">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {keys.map((key) => (
              <tr key={key.id}>
                <td data-label="Name" className="cell-strong">
                  {key.name}
                </td>
                <td data-label="Prefix">
                  <code>{key.prefix}</code>
                </td>
                <td data-label="Created">{formatTime(key.created_at, "")}</td>
                <td data-label="Last used">{formatTime(key.last_used_at, "Never")}</td>
                <td className="cell-actions">
                  <button
                    type="button"
                    className="button danger-outline"
                    aria-label={`Revoke ${key.name}`}
                    onClick={() => void revoke(key)}
                  >
                    Revoke
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

/** The key just created: shown once, selected for copying, with a copy button. */
function NewKey({ created }: { created: ApiKeyCreated }) {
  const field = useRef<HTMLInputElement>(null);
  const [copied, setCopied] = useState<boolean | null>(null);
  useEffect(() => {
    field.current?.focus();
    field.current?.select();
  }, []);
  return (
    <div className="new-key">
      <label htmlFor="new-api-key">New API key</label>
      <div className="copy-row">
        <input
          ref={field}
          id="new-api-key"
          className="mono"
          readOnly
          value={created.key}
          aria-describedby="new-api-key-note"
          onFocus={(e) => e.target.select()}
        />
        <button type="button" className="button" onClick={() => void copyText(created.key).then(setCopied)}>
          Copy key
        </button>
      </div>
      <p className="field-hint" id="new-api-key-note">
        This key (“{created.name}”) is shown only once: copy it now and keep it somewhere safe.
      </p>
      <p className="field-hint copy-result" aria-live="polite">
        {copied === null ? "" : copied ? "Copied." : "Copying failed: select the key and copy it by hand."}
      </p>
    </div>
  );
}
