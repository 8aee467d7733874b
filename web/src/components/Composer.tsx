/**
 * Where the user types. Enter sends, Shift+Enter starts a new line (and Enter while an input
 * method is composing is left to it). The text is kept per conversation in localStorage as it is
 * typed; a send the server did not accept puts it back, so nothing typed is ever lost.
 */

import { type FormEvent, useEffect, useLayoutEffect, useRef, useState } from "react";

import type { DraftStore } from "../chat/drafts";
import { Icon } from "./Icon";

interface Props {
  draftKey: string;
  drafts: DraftStore;
  busy: boolean;
  stopping: boolean;
  onSend(text: string): Promise<boolean>;
  onStop(): void;
}

const MAX_HEIGHT = 240;

export function Composer({ draftKey, drafts, busy, stopping, onSend, onStop }: Props) {
  const [text, setText] = useState(() => drafts.get(draftKey));
  const [sending, setSending] = useState(false);
  const area = useRef<HTMLTextAreaElement>(null);
  const keyRef = useRef(draftKey);

  // Another conversation: its own draft.
  useEffect(() => {
    if (keyRef.current === draftKey) return;
    keyRef.current = draftKey;
    setText(drafts.get(draftKey));
    area.current?.focus();
  }, [draftKey, drafts]);

  // Grow with the text, up to a limit.
  useLayoutEffect(() => {
    const el = area.current;
    if (!el) return;
    el.style.height = "auto";
    el.style.height = `${Math.min(el.scrollHeight, MAX_HEIGHT)}px`;
  }, [text]);

  const update = (value: string): void => {
    setText(value);
    drafts.set(keyRef.current, value);
  };

  const canSend = text.trim() !== "" && !busy && !sending;

  const submit = async (event?: FormEvent): Promise<void> => {
    event?.preventDefault();
    if (!canSend) return;
    const sent = text;
    const key = keyRef.current;
    setSending(true);
    setText(""); // shown as sent at once; the stored draft stays until the server accepts it
    const ok = await onSend(sent);
    setSending(false);
    if (ok) {
      drafts.set(key, "");
    } else {
      // Not sent: give the text back (to this composer if it still shows that draft).
      drafts.set(key, sent);
      if (keyRef.current === key) setText((current) => (current === "" ? sent : current));
    }
    area.current?.focus();
  };

  return (
    <form className="composer" onSubmit={(e) => void submit(e)}>
      <textarea
        ref={area}
        className="composer-input"
        aria-label="Message"
        placeholder="Message"
        rows={1}
        value={text}
        autoFocus
        onChange={(e) => update(e.target.value)}
        onKeyDown={(e) => {
          if (e.key === "Enter" && !e.shiftKey && !e.nativeEvent.isComposing) {
            e.preventDefault();
            void submit();
          }
        }}
      />
      {busy ? (
        <button
          type="button"
          className="send-button stop"
          aria-label="Stop"
          title="Stop"
          disabled={stopping}
          onClick={onStop}
        >
          <svg width="14" height="14" viewBox="0 0 14 14" aria-hidden="true">
            <rect width="14" height="14" rx="2" fill="currentColor" />
          </svg>
        </button>
      ) : (
        <button type="submit" className="send-button" aria-label="Send" title="Send" disabled={!canSend}>
          <Icon size={18} strokeWidth={2.4}>
            <path d="M12 19V5M5 12l7-7 7 7" strokeLinecap="round" strokeLinejoin="round" />
          </Icon>
        </button>
      )}
    </form>
  );
}
