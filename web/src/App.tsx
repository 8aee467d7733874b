/**
 * The page: the conversation list beside the open chat. The URL names the open conversation
 * (/c/<id>), so a reload comes back to it and resumes an answer still being written.
 */

import { useCallback, useEffect, useMemo, useState } from "react";

import { localDrafts, NEW_CHAT_KEY } from "./chat/drafts";
import { ChatHeader } from "./components/ChatHeader";
import { Composer } from "./components/Composer";
import type { MessageActions } from "./components/MessageItem";
import { MessageList } from "./components/MessageList";
import { Sidebar, titleOf } from "./components/Sidebar";
import { useChat } from "./hooks/useChat";

export function conversationIdFromPath(path: string): string | null {
  const match = /^\/c\/([^/]+)\/?$/.exec(path);
  return match ? decodeURIComponent(match[1] as string) : null;
}

function pathOf(id: string | null): string {
  return id === null ? "/" : `/c/${encodeURIComponent(id)}`;
}

export function App() {
  const [state, core] = useChat();
  const [menuOpen, setMenuOpen] = useState(false);
  const drafts = useMemo(() => localDrafts(), []);
  const busy = Object.keys(state.live).length > 0;
  const stopping = Object.values(state.live).some((l) => l.stopping);

  // Start, and follow the browser's back and forward buttons.
  useEffect(() => {
    void core.start(conversationIdFromPath(window.location.pathname));
    const onPop = (): void => void core.open(conversationIdFromPath(window.location.pathname));
    const onOnline = (): void => core.reconnectNow();
    const onKey = (event: KeyboardEvent): void => {
      if (event.key === "Escape") setMenuOpen(false);
    };
    window.addEventListener("keydown", onKey);
    const onVisible = (): void => {
      if (document.visibilityState !== "visible") return;
      void core.reload();
      void core.refreshConversations();
    };
    window.addEventListener("popstate", onPop);
    window.addEventListener("online", onOnline);
    document.addEventListener("visibilitychange", onVisible);
    return () => {
      window.removeEventListener("popstate", onPop);
      window.removeEventListener("online", onOnline);
      window.removeEventListener("keydown", onKey);
      document.removeEventListener("visibilitychange", onVisible);
    };
  }, [core]);

  // The URL and the tab's title follow the open conversation.
  useEffect(() => {
    const path = pathOf(state.currentId);
    if (window.location.pathname !== path) window.history.pushState(null, "", path);
  }, [state.currentId]);
  useEffect(() => {
    document.title = state.currentId === null ? "ssechat" : `${titleOf(state.conversation)} · ssechat`;
  }, [state.currentId, state.conversation]);

  const select = useCallback(
    (id: string | null) => {
      setMenuOpen(false);
      void core.open(id);
    },
    [core],
  );
  const rename = useCallback((id: string, title: string) => void core.rename(id, title), [core]);
  const remove = useCallback((id: string) => core.remove(id), [core]);
  const loadMore = useCallback(() => void core.loadMoreConversations(), [core]);
  const newChat = useCallback(() => select(null), [select]);
  const selectId = useCallback((id: string) => select(id), [select]);
  const closeMenu = useCallback(() => setMenuOpen(false), []);

  const actions: MessageActions = useMemo(
    () => ({
      onEdit: (id, content) => core.edit(id, content),
      onRegenerate: (id) => void core.regenerate(id),
      onRetry: (id) => void core.retry(id),
      onSibling: (id, offset) => void core.selectSibling(id, offset),
    }),
    [core],
  );

  return (
    <div className="app">
      <Sidebar
        conversations={state.conversations}
        currentId={state.currentId}
        hasMore={state.nextCursor !== null}
        loaded={state.ready}
        open={menuOpen}
        onNewChat={newChat}
        onSelect={selectId}
        onRename={rename}
        onDelete={remove}
        onLoadMore={loadMore}
        onClose={closeMenu}
      />
      {menuOpen && <div className="scrim" aria-hidden="true" onClick={closeMenu} />}
      <main className="chat">
        <ChatHeader
          state={state}
          model={core.currentModel()}
          onMenu={() => setMenuOpen((v) => !v)}
          onNewChat={newChat}
          onModel={(model) => void core.setModel(model)}
          onSystemPrompt={(text) => core.setSystemPrompt(text)}
        />
        {state.notice && (
          <div className="notice" role="alert">
            <span>{state.notice.text}</span>
            <button type="button" className="icon-button" aria-label="Dismiss" onClick={() => core.dismissNotice()}>
              ×
            </button>
          </div>
        )}
        <MessageList state={state} actions={actions} />
        <div className="composer-wrap">
          <Composer
            draftKey={state.currentId ?? NEW_CHAT_KEY}
            drafts={drafts}
            busy={busy}
            stopping={stopping}
            onSend={(text) => core.send(text)}
            onStop={() => void core.stop()}
          />
          <p className="composer-hint">Enter to send, Shift+Enter for a new line.</p>
        </div>
      </main>
    </div>
  );
}
