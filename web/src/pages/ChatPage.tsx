/**
 * The chat: the conversation list beside the open conversation. The URL names the open
 * conversation (/c/<id>), so a reload comes back to it and resumes an answer still being
 * written; the back and forward buttons move between conversations.
 */

import { useCallback, useEffect, useMemo, useRef, useState } from "react";

import type { Me } from "../api";
import { localDrafts, NEW_CHAT_KEY } from "../chat/drafts";
import { ChatHeader } from "../components/ChatHeader";
import { Composer } from "../components/Composer";
import type { MessageActions } from "../components/MessageItem";
import { MessageList } from "../components/MessageList";
import { Sidebar, titleOf } from "../components/Sidebar";
import { useChat } from "../hooks/useChat";
import { navigate } from "../hooks/useLocation";
import { conversationPath } from "../routes";

interface Props {
  /** The conversation the URL names (null: a new chat). */
  conversationId: string | null;
  /** The signed-in user, for the sidebar's account area; null when accounts are off. */
  user: Me | null;
  onSignOut(): Promise<void>;
}

export function ChatPage({ conversationId, user, onSignOut }: Props) {
  const [state, core] = useChat();
  const [menuOpen, setMenuOpen] = useState(false);
  const drafts = useMemo(() => localDrafts(), []);
  const busy = Object.keys(state.live).length > 0;
  const stopping = Object.values(state.live).some((l) => l.stopping);
  const routeId = useRef(conversationId);
  routeId.current = conversationId;

  // Start (the conversation in the URL); leaving the page stops following its runs, which go on
  // on the server and are taken up again on return.
  useEffect(() => {
    void core.start(routeId.current);
    const onOnline = (): void => core.reconnectNow();
    const onKey = (event: KeyboardEvent): void => {
      if (event.key === "Escape") setMenuOpen(false);
    };
    const onVisible = (): void => {
      if (document.visibilityState !== "visible") return;
      void core.reload();
      void core.refreshConversations();
    };
    window.addEventListener("keydown", onKey);
    window.addEventListener("online", onOnline);
    document.addEventListener("visibilitychange", onVisible);
    return () => {
      window.removeEventListener("keydown", onKey);
      window.removeEventListener("online", onOnline);
      document.removeEventListener("visibilitychange", onVisible);
      core.close();
    };
  }, [core]);

  // The URL changed under the chat (back, forward): open what it names. (On mount, `start`
  // has already made the two agree.)
  useEffect(() => {
    if (conversationId !== core.getState().currentId) void core.open(conversationId);
  }, [conversationId, core]);

  // The open conversation changed (a click, a new chat, one deleted): the URL follows. Only
  // changes count: on mount the core may still hold the conversation shown last time.
  const shownId = useRef(state.currentId);
  useEffect(() => {
    if (state.currentId === shownId.current) return;
    shownId.current = state.currentId;
    const path = conversationPath(state.currentId);
    if (window.location.pathname !== path) navigate(path);
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
      onToolDecision: (runId, callId, decision) => core.decideTool(runId, callId, decision),
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
        user={user}
        onNewChat={newChat}
        onSelect={selectId}
        onRename={rename}
        onDelete={remove}
        onLoadMore={loadMore}
        onClose={closeMenu}
        onSignOut={onSignOut}
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
          tools={core.currentTools()}
          onTools={(keys) => void core.setTools(keys)}
          onRefreshTools={() => void core.refreshTools()}
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
