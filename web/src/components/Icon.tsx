import type { ReactNode } from "react";

/** A stroked 24×24 icon in the current text colour, hidden from assistive technology: the
 * button around it carries the label. */
export function Icon({
  size,
  strokeWidth = 2,
  round = false,
  children,
}: {
  size: number;
  strokeWidth?: number;
  round?: boolean;
  children: ReactNode;
}) {
  return (
    <svg
      width={size}
      height={size}
      viewBox="0 0 24 24"
      fill="none"
      stroke="currentColor"
      strokeWidth={strokeWidth}
      strokeLinecap={round ? "round" : undefined}
      strokeLinejoin={round ? "round" : undefined}
      aria-hidden="true"
    >
      {children}
    </svg>
  );
}
