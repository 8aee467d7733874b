/**
 * The frame of every page beside the chat: a <main> landmark with the page's one <h1>, an
 * optional "Back to chat" link, and the tab's title. Arriving on the page moves focus to its
 * heading (unless a field took it), so a screen reader starts reading there.
 */

import { type ReactNode, useEffect, useRef } from "react";

import { Link } from "../components/Link";
import { PATHS } from "../routes";

export function AccountPage({
  title,
  back = false,
  narrow = false,
  children,
}: {
  title: string;
  /** Show a "Back to chat" link. */
  back?: boolean;
  /** A small centred card (sign-in, sign-up, setup) rather than a wide page. */
  narrow?: boolean;
  children: ReactNode;
}) {
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    document.title = `${title} · ssechat`;
  }, [title]);
  useEffect(() => {
    const active = document.activeElement;
    if (active === null || active === document.body) heading.current?.focus();
  }, []);
  return (
    <main className={`page${narrow ? " page-narrow" : ""}`}>
      <div className="page-inner">
        {narrow ? (
          <p className="page-brand">ssechat</p>
        ) : (
          back && (
            <Link to={PATHS.chat} className="back-link">
              <span aria-hidden="true">← </span>
              Back to chat
            </Link>
          )
        )}
        <h1 ref={heading} tabIndex={-1}>
          {title}
        </h1>
        {children}
      </div>
    </main>
  );
}
