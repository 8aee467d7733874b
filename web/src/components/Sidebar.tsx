import { type KeyboardEvent, memo, useEffect, useRef, useState, useSyncExternalStore } from "react";

import type { Conversation, Me, SearchHit } from "../api";
import { PATHS } from "../routes";
import type { SearchSession } from "../search";
import { AccountMenu } from "./AccountMenu";
import { Icon } from "./Icon";
import { Link } from "./Link";
import { SearchBox, type SearchBoxHandle, SearchResults, useSearchIds } from "./Search";

interface Props {
  conversations: readonly Conversation[];
  currentId: string | null;
  hasMore: boolean;
  /** The list has been fetched (until then, an empty list means nothing). */
  loaded: boolean;
  open: boolean;
  /** The signed-in user (the account area at the bottom); null when accounts are off. */
  user: Me | null;
  onNewChat(): void;
  onSelect(id: string): void;
  onRename(id: string, title: string): void;
  onDelete(id: string): Promise<void>;
  onLoadMore(): void;
  onClose(): void;
  onSignOut(): Promise<void>;
  /** The search of conversations; while it has a query, its hits replace the list. */
  search: SearchSession;
  /** Changes each time the shortcut (Ctrl+K, ⌘K) asks for the search box. */
  searchRequest: number;
  onOpenHit(hit: SearchHit): void;
}

export const Sidebar = memo(function Sidebar(props: Props) {
  const { conversations, currentId, hasMore, open, search, searchRequest, onOpenHit } = props;
  const [confirming, setConfirming] = useState<Conversation | null>(null);
  const searchState = useSyncExternalStore(search.subscribe, search.getState, search.getState);
  const searching = searchState.query.trim() !== "";
  const box = useRef<SearchBoxHandle>(null);
  const { listId, optionId } = useSearchIds();
  const [chosen, setActive] = useState(-1);
  const hits = searchState.results;
  // A new query: no hit chosen yet ("Load more" keeps the choice).
  useEffect(() => setActive(-1), [searchState.query]);
  const active = chosen < hits.length ? chosen : -1;

  // The shortcut: the sidebar is open (rendered visible) by now, so the box can take the focus.
  useEffect(() => {
    if (searchRequest > 0) box.current?.focus();
  }, [searchRequest]);

  const onSearchKey = (event: KeyboardEvent<HTMLInputElement>): void => {
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      if (hits.length === 0) return;
      event.preventDefault();
      const step = event.key === "ArrowDown" ? 1 : -1;
      setActive(Math.max(0, Math.min(hits.length - 1, active + step)));
    } else if (event.key === "Enter" && !event.nativeEvent.isComposing) {
      // Not a hit of an older query while the typed one is still being asked.
      const hit = searchState.status === "done" ? (hits[active] ?? hits[0]) : undefined;
      if (!hit || !searching) return;
      event.preventDefault();
      onOpenHit(hit);
    }
  };

  return (
    <nav className={`sidebar${open ? " open" : ""}`} aria-label="Conversations">
      <div className="sidebar-head">
        <span className="brand">ssechat</span>
        <button type="button" className="button new-chat" onClick={props.onNewChat}>
          <Icon size={14} strokeWidth={2.4}>
            <path d="M12 5v14M5 12h14" />
          </Icon>
          New chat
        </button>
      </div>
      <SearchBox
        ref={box}
        session={search}
        listId={listId}
        activeId={active >= 0 ? optionId(active) : null}
        onKeyDown={onSearchKey}
      />
      {searching ? (
        <SearchResults
          session={search}
          listId={listId}
          active={active}
          onActive={setActive}
          onOpen={onOpenHit}
          optionId={optionId}
        />
      ) : (
        <ConversationList {...props} onConfirmDelete={setConfirming} />
      )}
      {props.user ? (
        <AccountMenu user={props.user} onSignOut={props.onSignOut} />
      ) : (
        <div className="account">
          <Link to={PATHS.settings} className="button subtle">
            Settings
          </Link>
        </div>
      )}
      <ConfirmDelete
        conversation={confirming}
        onCancel={() => setConfirming(null)}
        onConfirm={async () => {
          const doomed = confirming;
          setConfirming(null);
          if (doomed) await props.onDelete(doomed.id);
        }}
      />
    </nav>
  );
});

function ConversationList(props: Props & { onConfirmDelete(conversation: Conversation): void }) {
  const { conversations, currentId, hasMore } = props;
  return (
    <>
      <ul className="conversation-list">
        {conversations.map((conversation) => (
          <ConversationItem
            key={conversation.id}
            conversation={conversation}
            current={conversation.id === currentId}
            onSelect={props.onSelect}
            onRename={props.onRename}
            onDelete={props.onConfirmDelete}
          />
        ))}
      </ul>
      {hasMore && (
        <button type="button" className="button subtle load-more" onClick={props.onLoadMore}>
          Show older
        </button>
      )}
      {props.loaded && conversations.length === 0 && <p className="sidebar-empty">No conversations yet.</p>}
    </>
  );
}

export function titleOf(conversation: Conversation | null): string {
  return conversation?.title?.trim() || "New chat";
}

function ConversationItem({
  conversation,
  current,
  onSelect,
  onRename,
  onDelete,
}: {
  conversation: Conversation;
  current: boolean;
  onSelect(id: string): void;
  onRename(id: string, title: string): void;
  onDelete(conversation: Conversation): void;
}) {
  const [renaming, setRenaming] = useState<string | null>(null);
  const title = titleOf(conversation);

  if (renaming !== null) {
    const finish = (save: boolean): void => {
      if (save && renaming.trim() !== "" && renaming !== title) onRename(conversation.id, renaming);
      setRenaming(null);
    };
    return (
      <li className="conversation renaming">
        <input
          className="rename-input"
          aria-label="Conversation title"
          value={renaming}
          autoFocus
          maxLength={200}
          onChange={(e) => setRenaming(e.target.value)}
          onBlur={() => finish(true)}
          onKeyDown={(e) => {
            if (e.key === "Enter") finish(true);
            else if (e.key === "Escape") finish(false);
          }}
        />
      </li>
    );
  }

  return (
    <li className={`conversation${current ? " current" : ""}`}>
      <a
        href={`/c/${encodeURIComponent(conversation.id)}`}
        className="conversation-link"
        aria-current={current ? "page" : undefined}
        onClick={(e) => {
          if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
          e.preventDefault();
          onSelect(conversation.id);
        }}
      >
        {title}
      </a>
      <span className="conversation-actions">
        <button
          type="button"
          className="icon-button"
          aria-label={`Rename ${title}`}
          title="Rename"
          onClick={() => setRenaming(title)}
        >
          <Icon size={14}>
            <path d="M12 20h9" />
            <path d="M16.5 3.5a2.1 2.1 0 0 1 3 3L7 19l-4 1 1-4Z" />
          </Icon>
        </button>
        <button
          type="button"
          className="icon-button danger"
          aria-label={`Delete ${title}`}
          title="Delete"
          onClick={() => onDelete(conversation)}
        >
          <Icon size={14}>
            <path d="M3 6h18M8 6V4h8v2M6 6l1 14h10l1-14" />
          </Icon>
        </button>
      </span>
    </li>
  );
}

/** "Delete this chat?" as a modal <dialog>: focus is trapped and Escape cancels. */
function ConfirmDelete({
  conversation,
  onCancel,
  onConfirm,
}: {
  conversation: Conversation | null;
  onCancel(): void;
  onConfirm(): void;
}) {
  const dialog = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const el = dialog.current;
    if (!el) return;
    if (conversation && !el.open) el.showModal();
    if (!conversation && el.open) el.close();
  }, [conversation]);
  return (
    <dialog ref={dialog} className="confirm" aria-labelledby="confirm-title" onCancel={onCancel} onClose={onCancel}>
      <h2 id="confirm-title">Delete this chat?</h2>
      <p>“{titleOf(conversation)}” and all its messages will be deleted. This cannot be undone.</p>
      <div className="confirm-actions">
        <button type="button" className="button" onClick={onCancel} autoFocus>
          Cancel
        </button>
        <button type="button" className="button danger" onClick={onConfirm}>
          Delete
        </button>
      </div>
    </dialog>
  );
}
