/**
 * The conversation header's export menu: a button opening two downloads of the open
 * conversation, our JSON (every branch, lossless) and Markdown (the branch shown).
 *
 * The downloads are links to the export route (`transfer.ts`): same-origin GETs the session
 * cookie authenticates, answered as attachments, so the browser saves the file as it arrives.
 */

import { type KeyboardEvent, useEffect, useId, useRef, useState } from "react";

import { conversationExportUrl } from "../transfer";
import { Icon } from "./Icon";

export function ExportMenu({ conversationId }: { conversationId: string }) {
  const [open, setOpen] = useState(false);
  const panelId = useId();
  const wrap = useRef<HTMLDivElement>(null);
  const button = useRef<HTMLButtonElement>(null);

  // A click anywhere else closes the panel, as a menu would.
  useEffect(() => {
    if (!open) return;
    const onDown = (event: MouseEvent): void => {
      if (wrap.current && !wrap.current.contains(event.target as Node)) setOpen(false);
    };
    document.addEventListener("mousedown", onDown);
    return () => document.removeEventListener("mousedown", onDown);
  }, [open]);

  const onKeyDown = (event: KeyboardEvent): void => {
    if (event.key !== "Escape" || !open) return;
    event.stopPropagation();
    setOpen(false);
    button.current?.focus();
  };

  return (
    <div className="export-menu" ref={wrap} onKeyDown={onKeyDown}>
      <button
        type="button"
        ref={button}
        className="icon-button"
        aria-label="Export conversation"
        title="Export"
        aria-expanded={open}
        aria-controls={panelId}
        onClick={() => setOpen(!open)}
      >
        <Icon size={18} round>
          <path d="M12 4v11M7.5 10.5 12 15l4.5-4.5M5 19h14" />
        </Icon>
      </button>
      <div id={panelId} className="export-panel" hidden={!open}>
        {open && (
          <ul>
            <li>
              <a
                className="export-link"
                href={conversationExportUrl(conversationId, "json")}
                download
                onClick={() => setOpen(false)}
              >
                Export as JSON <span className="export-note">every branch, to import again</span>
              </a>
            </li>
            <li>
              <a
                className="export-link"
                href={conversationExportUrl(conversationId, "markdown")}
                download
                onClick={() => setOpen(false)}
              >
                Export as Markdown <span className="export-note">the branch shown, to read</span>
              </a>
            </li>
          </ul>
        )}
      </div>
    </div>
  );
}
