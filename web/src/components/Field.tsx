/**
 * Form pieces shared by the account pages: an input with its visible label (and an optional
 * hint read after the label), the name, email and password of a new account (setup, sign-up),
 * and the error line that screen readers announce.
 */

import { type InputHTMLAttributes, useId } from "react";

type InputProps = Omit<InputHTMLAttributes<HTMLInputElement>, "id" | "onChange" | "value">;

export function Field({
  label,
  hint,
  value,
  onValue,
  ...input
}: InputProps & { label: string; hint?: string; value: string; onValue(value: string): void }) {
  const id = useId();
  const hintId = `${id}-hint`;
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <input
        id={id}
        value={value}
        aria-describedby={hint ? hintId : undefined}
        onChange={(e) => onValue(e.target.value)}
        {...input}
      />
      {hint && (
        <p className="field-hint" id={hintId}>
          {hint}
        </p>
      )}
    </div>
  );
}

/** An error for the user, announced when it appears (nothing is rendered without one). */
export function ErrorLine({ error }: { error: string | null }) {
  if (!error) return null;
  return (
    <p className="form-error" role="alert">
      {error}
    </p>
  );
}

/** The fields of a new account, with the server's limits: name (optional), email, password. */
export function NewAccountFields({
  name,
  email,
  password,
  onName,
  onEmail,
  onPassword,
}: {
  name: string;
  email: string;
  password: string;
  onName(value: string): void;
  onEmail(value: string): void;
  onPassword(value: string): void;
}) {
  return (
    <>
      <Field label="Name" hint="Optional" autoComplete="name" autoFocus maxLength={200} value={name} onValue={onName} />
      <Field label="Email" type="email" autoComplete="email" required maxLength={320} value={email} onValue={onEmail} />
      <Field
        label="Password"
        hint="8 characters or more."
        type="password"
        autoComplete="new-password"
        required
        minLength={8}
        maxLength={256}
        value={password}
        onValue={onPassword}
      />
    </>
  );
}
