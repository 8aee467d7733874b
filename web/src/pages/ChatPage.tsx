/**
 * The chat: the conversation list beside the open conversation. The URL names the open
 * conversation (/c/<id>), so a reload comes back to it and resumes an answer still being
 * written; the back and forward buttons move between conversations. A search hit opened adds
 * its message (/c/<id>?m=<message>): the conversation opens on that message's branch, scrolled
 * to it, again after a reload. Ctrl+K (⌘K) goes to the sidebar's search from anywhere.
 */

import { useCallback, useEffect, useMemo, useRef, useState } from "react";

import type { Me, SearchHit } from "../api";
import { localDrafts, NEW_CHAT_KEY } from "../chat/drafts";
import { ChatHeader } from "../components/ChatHeader";
import { Composer } from "../components/Composer";
import type { MessageActions } from "../components/MessageItem";
import { MessageList } from "../components/MessageList";
import { Sidebar, titleOf } from "../components/Sidebar";
import { useChat } from "../hooks/useChat";
import { navigate } from "../hooks/useLocation";
import { conversationPath } from "../routes";
import { isSearchHotkey, type SearchApi, SearchSession } from "../search";

interface Props {
  api: SearchApi;
  /** The conversation the URL names (null: a new chat). */
  conversationId: string | null;
  /** The message the URL asks the conversation to open at (a search hit), or null. */
  focusMessageId: string | null;
  /** The signed-in user, for the sidebar's account area; null when accounts are off. */
  user: Me | null;
  onSignOut(): Promise<void>;
}

export function ChatPage({ api, conversationId, focusMessageId, user, onSignOut }: Props) {
  const [state, core] = useChat();
  const [menuOpen, setMenuOpen] = useState(false);
  const search = useMemo(() => new SearchSession(api), [api]);
  const [searchRequest, setSearchRequest] = useState(0);
  useEffect(() => () => search.dispose(), [search]);
  const routeFocus = useRef(focusMessageId);
  routeFocus.current = focusMessageId;
  const drafts = useMemo(() => localDrafts(), []);
  const busy = Object.keys(state.live).length > 0;
  const stopping = Object.values(state.live).some((l) => l.stopping);
  const routeId = useRef(conversationId);
  routeId.current = conversationId;

  // Start (the conversation in the URL); leaving the page stops following its runs, which go on
  // on the server and are taken up again on return.
  useEffect(() => {
    void core.start(routeId.current, routeFocus.current);
    const onOnline = (): void => core.reconnectNow();
    const onKey = (event: KeyboardEvent): void => {
      if (event.key === "Escape") setMenuOpen(false);
      if (isSearchHotkey(event) && !event.repeat) {
        // Ours, not the browser's (Chrome's Ctrl+K searches the web from the address bar).
        event.preventDefault();
        setMenuOpen(true);
        setSearchRequest((n) => n + 1);
      }
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

  // The URL changed under the chat (back, forward, a search hit): open what it names. (On
  // mount, `start` has already made the two agree.)
  useEffect(() => {
    const shown = core.getState();
    if (conversationId !== shown.currentId || focusMessageId !== (shown.focus?.messageId ?? null)) {
      void core.open(conversationId, focusMessageId);
    }
  }, [conversationId, focusMessageId, core]);

  // The open conversation changed (a click, a new chat, one deleted): the URL follows. Only
  // changes count: on mount the core may still hold the conversation shown last time.
  const focusedId = state.focus?.messageId ?? null;
  const shownPath = useRef(conversationPath(state.currentId, focusedId));
  useEffect(() => {
    const path = conversationPath(state.currentId, focusedId);
    if (path === shownPath.current) return;
    const sameConversation = conversationPath(state.currentId) === shownPath.current.split("?")[0];
    shownPath.current = path;
    // Only the message changed (one no longer there, the conversation clicked again): no new entry.
    if (window.location.pathname + window.location.search !== path) navigate(path, { replace: sameConversation });
  }, [state.currentId, focusedId]);

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
  const openHit = useCallback(
    (hit: SearchHit) => {
      setMenuOpen(false);
      const path = conversationPath(hit.conversation_id, hit.message_id);
      // The URL leads (the effect above opens it); the same hit again only needs bringing back.
      if (window.location.pathname + window.location.search === path)
        void core.open(hit.conversation_id, hit.message_id);
      else navigate(path);
    },
    [core],
  );

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
        search={search}
        searchRequest={searchRequest}
        onOpenHit={openHit}
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
