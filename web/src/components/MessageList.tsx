/**
 * The displayed branch, scrolled to follow the answer as it grows, unless the user has scrolled
 * up to read: then it stays put and offers a button back to the latest text.
 */

import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "react";

import type { ChatState } from "../chat/core";
import { threadTo } from "../chat/tree";
import { type MessageActions, MessageItem } from "./MessageItem";

/** Within this many pixels of the bottom counts as "at the bottom". */
const NEAR_BOTTOM = 64;

export function MessageList({ state, actions }: { state: ChatState; actions: MessageActions }) {
  const thread = useMemo(() => threadTo(state.messages, state.leafId), [state.messages, state.leafId]);
  const scroller = useRef<HTMLDivElement>(null);
  const content = useRef<HTMLDivElement>(null);
  const follow = useRef(true);
  const [away, setAway] = useState(false);
  const busy = Object.keys(state.live).length > 0;

  const toBottom = (): void => {
    const el = scroller.current;
    if (el) el.scrollTop = el.scrollHeight;
  };

  // A new conversation opens at its end.
  useLayoutEffect(() => {
    follow.current = true;
    setAway(false);
    toBottom();
  }, [state.currentId]);

  // Whatever makes the content taller (tokens, images, fonts) keeps the end in view.
  useEffect(() => {
    const inner = content.current;
    if (!inner) return;
    const observer = new ResizeObserver(() => {
      if (follow.current) toBottom();
    });
    observer.observe(inner);
    return () => observer.disconnect();
  }, []);

  // Sending a message means wanting to see its answer.
  useLayoutEffect(() => {
    if (busy) {
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
