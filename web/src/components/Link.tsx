import type { AnchorHTMLAttributes, MouseEvent } from "react";

import { navigate } from "../hooks/useLocation";

/**
 * A real link (it opens in a new tab with Ctrl/Cmd/Shift/middle click, and reads as a link)
 * that a plain click follows without reloading the page.
 */
export function Link({ to, onClick, ...rest }: { to: string } & Omit<AnchorHTMLAttributes<HTMLAnchorElement>, "href">) {
  const follow = (event: MouseEvent<HTMLAnchorElement>): void => {
    onClick?.(event);
    if (event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    navigate(to);
  };
  return <a href={to} onClick={follow} {...rest} />;
}
