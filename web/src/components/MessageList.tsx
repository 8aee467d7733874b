/**
 * The displayed branch, scrolled to follow the answer as it grows, unless the user has scrolled
 * up to read: then it stays put and offers a button back to the latest text. A message asked for
 * (`state.focus`: a search hit opened) is brought to the middle of the view, highlighted and
 * given the keyboard focus; it is kept there while the content above it settles (Markdown,
 * fonts), until the user scrolls.
 */

import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "react";

import type { ChatState } from "../chat/core";
import { threadTo } from "../chat/tree";
import { type MessageActions, MessageItem } from "./MessageItem";

/** Within this many pixels of the bottom counts as "at the bottom". */
const NEAR_BOTTOM = 64;

/** Keys that scroll the thread: pressing one means the user reads on their own. */
const SCROLL_KEYS = new Set(["ArrowUp", "ArrowDown", "PageUp", "PageDown", "Home", "End", " "]);

function findMessage(root: HTMLElement | null, id: string): HTMLElement | null {
  if (!root) return null;
  for (const el of root.querySelectorAll<HTMLElement>("[data-message-id]")) {
    if (el.dataset.messageId === id) return el;
  }
  return null;
}

export function MessageList({ state, actions }: { state: ChatState; actions: MessageActions }) {
  const thread = useMemo(() => threadTo(state.messages, state.leafId), [state.messages, state.leafId]);
  const scroller = useRef<HTMLDivElement>(null);
  const content = useRef<HTMLDivElement>(null);
  const follow = useRef(true);
  /** The message kept in the middle while the content settles; null once the user scrolls. */
  const focusing = useRef<string | null>(null);
  const [away, setAway] = useState(false);
  const busy = Object.keys(state.live).length > 0;

  const toBottom = (): void => {
    const el = scroller.current;
    if (el) el.scrollTop = el.scrollHeight;
  };

  // A new conversation opens at its end.
  useLayoutEffect(() => {
    focusing.current = null;
    follow.current = true;
    setAway(false);
    toBottom();
  }, [state.currentId]);

  // A message asked for: once it is on screen (the tree loaded, its branch shown), centre it.
  const focus = state.focus;
  const focusDone = useRef(0);
  useLayoutEffect(() => {
    if (focus === null || focus.seq === focusDone.current || state.loadingConversation) return;
    const el = findMessage(content.current, focus.messageId);
    if (!el) return;
    focusDone.current = focus.seq;
    follow.current = false;
    focusing.current = focus.messageId;
    el.scrollIntoView({ block: "center" });
    el.focus({ preventScroll: true });
    // Restart the highlight even when the same message is asked for again.
    el.classList.remove("focused");
    void el.offsetWidth;
    el.classList.add("focused");
    const faded = (event: AnimationEvent): void => {
      if (event.target !== el) return; // a child's animation (a spinner) ending says nothing
      el.classList.remove("focused");
      el.removeEventListener("animationend", faded);
    };
    el.addEventListener("animationend", faded);
  }, [focus, thread, state.loadingConversation]);

  // Whatever makes the content taller (tokens, images, fonts) keeps the end in view, or the
  // message asked for in the middle.
  useEffect(() => {
    const inner = content.current;
    if (!inner) return;
    const observer = new ResizeObserver(() => {
      if (focusing.current !== null) findMessage(inner, focusing.current)?.scrollIntoView({ block: "center" });
      else if (follow.current) toBottom();
    });
    observer.observe(inner);
    return () => observer.disconnect();
  }, []);

  // Sending a message means wanting to see its answer.
  useLayoutEffect(() => {
    if (busy) {
      focusing.current = null;
      follow.current = true;
      setAway(false);
      toBottom();
    }
  }, [busy]);

  const onScroll = (): void => {
    const el = scroller.current;
    if (!el) return;
    const atBottom = el.scrollHeight - el.scrollTop - el.clientHeight < NEAR_BOTTOM;
    follow.current = atBottom;
    setAway(!atBottom);
  };

  // Scrolling up by wheel or touch is a clear wish to stop following, even by a few pixels.
  const stopFollowing = (): void => {
    follow.current = false;
    focusing.current = null;
  };

  return (
    <div className="messages-wrap">
      <div
        className="messages"
        ref={scroller}
        onScroll={onScroll}
        onWheel={(e) => {
          if (e.deltaY < 0) stopFollowing();
        }}
        onTouchMove={stopFollowing}
        onKeyDown={(e) => {
          if (SCROLL_KEYS.has(e.key)) stopFollowing();
        }}
      >
        <div className="thread" ref={content}>
          {thread.length === 0 && !state.loadingConversation && <EmptyState demo={state.health?.demo ?? false} />}
          {thread.map((entry, i) => (
            <MessageItem
              key={entry.message.id}
              message={entry.message}
              siblingIndex={entry.siblingIndex}
              siblingCount={entry.siblingCount}
              isLast={i === thread.length - 1}
              live={state.live[entry.message.id]}
              busy={busy}
              actions={actions}
            />
          ))}
        </div>
      </div>
      {away && (
        <button
          type="button"
          className="jump-to-latest"
          aria-label="Scroll to latest"
          onClick={() => {
            focusing.current = null;
            follow.current = true;
            setAway(false);
            toBottom();
          }}
        >
          ↓
        </button>
      )}
    </div>
  );
}

function EmptyState({ demo }: { demo: boolean }) {
  return (
    <div className="empty-state">
      <h2>How can I help?</h2>
      {demo && (
        <p>
          This server answers with the offline <code>demo</code> model. Set <code>OPENAI_API_KEY</code> (and{" "}
          <code>OPENAI_BASE_URL</code> for another OpenAI-compatible server) to talk to a real one.
        </p>
      )}
    </div>
  );
}
