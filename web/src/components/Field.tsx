/**
 * Form pieces shared by the account pages: an input with its visible label (and an optional
 * hint read after the label), and the error line that screen readers announce.
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
