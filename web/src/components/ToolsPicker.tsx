/**
 * The conversation header's tools picker: a "Tools (n)" button opening a panel of checkboxes,
 * one per tool, grouped by MCP server, each labelled by its key ("server/tool") with its
 * description and whether it asks before each call. A tool whose server is not running is shown
 * disabled with the reason. The choice is the chat core's to save (`setTools`: the conversation,
 * or the new chat's creation). Hidden when the server offers no tools at all.
 */

import { type KeyboardEvent, useEffect, useId, useRef, useState } from "react";

import type { ToolInfo } from "../api";
import { APPROVAL_TEXT, pickerGroups, toggledTools } from "../tools";
import { Icon } from "./Icon";

interface Props {
  /** What the server offers; null: not known (yet). */
  tools: readonly ToolInfo[] | null;
  chosen: readonly string[];
  onChange(keys: string[]): void;
  /** The panel opens: read the list again (servers start and stop). */
  onOpen(): void;
}

export function ToolsPicker({ tools, chosen, onChange, onOpen }: Props) {
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

  if (tools === null || (tools.length === 0 && chosen.length === 0)) return null;
  const groups = pickerGroups(tools, chosen);
  const none = !tools.some((t) => t.available);
  const label = chosen.length > 0 ? `Tools (${chosen.length})` : none ? "Tools (none available)" : "Tools";

  const onKeyDown = (event: KeyboardEvent): void => {
    if (event.key !== "Escape") return;
    event.stopPropagation();
    setOpen(false);
    button.current?.focus();
  };

  return (
    <div className="tools-picker" ref={wrap} onKeyDown={onKeyDown}>
      <button
        type="button"
        ref={button}
        className={`button subtle tools-toggle${chosen.length > 0 ? " has-tools" : ""}`}
        aria-expanded={open}
        aria-controls={panelId}
        onClick={() => {
          if (!open) onOpen();
          setOpen(!open);
        }}
      >
        <Icon size={16} round>
          <path d="M14.7 6.3a4 4 0 0 0-5.4 5.4L3 18l3 3 6.3-6.3a4 4 0 0 0 5.4-5.4l-2.5 2.5-2.4-.6-.6-2.4Z" />
        </Icon>
        <span className="tools-label">{label}</span>
      </button>
      <div id={panelId} className="tools-panel" hidden={!open}>
        {open && (
          <>
            <p className="tools-panel-title">Tools the model may call in this conversation</p>
            {groups.length === 0 && <p className="muted">No tools are set up on this server.</p>}
            {groups.map((group) => (
              <fieldset key={group.server} className="tools-group">
                <legend>{group.server}</legend>
                {group.tools.map((tool) => (
                  <ToolOption
                    key={tool.key}
                    tool={tool}
                    onToggle={(on) => onChange(toggledTools(chosen, tool.key, on))}
                  />
                ))}
              </fieldset>
            ))}
          </>
        )}
      </div>
    </div>
  );
}

function ToolOption({
  tool,
  onToggle,
}: {
  tool: ReturnType<typeof pickerGroups>[number]["tools"][number];
  onToggle(on: boolean): void;
}) {
  const id = useId();
  const notes = [
    tool.approval ? APPROVAL_TEXT[tool.approval] : "",
    tool.unavailable ? `unavailable: ${tool.unavailable}` : "",
  ].filter((note) => note !== "");
  return (
    <div className={`tools-option${tool.unavailable ? " unavailable" : ""}`}>
      <input
        type="checkbox"
        id={id}
        checked={tool.checked}
        // A chosen tool stays uncheckable even when it cannot run now.
        disabled={tool.unavailable !== null && !tool.checked}
        aria-describedby={`${id}-about`}
        onChange={(e) => onToggle(e.target.checked)}
      />
      <div className="tools-option-text">
        <label htmlFor={id}>{tool.key}</label>
        <p id={`${id}-about`} className="tools-option-about">
          {tool.description && <span>{tool.description}</span>}
          {notes.length > 0 && <span className="tools-option-notes">{notes.join(" · ")}</span>}
        </p>
      </div>
    </div>
  );
}
