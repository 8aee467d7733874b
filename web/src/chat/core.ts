/**
 * The chat core: all UI state and what happens on each action, with no React in it.
 *
 * It talks to the server only through `ChatApi` (implemented by `api.ts`, faked in tests) and
 * publishes immutable snapshots to subscribers (`useChat` is a thin hook over it). Streamed text
 * is gathered as it arrives and published at most once per animation frame, so a fast model
 * costs one render per frame, not one per token.
 *
 * Runs: a send, an edit or a regenerate starts a run whose events arrive on the POST response;
 * when the connection drops, the core follows `/api/runs/{id}/events` after the last event id
 * it applied, so nothing is lost or shown twice. Opening a conversation whose answer is still
 * being generated (a reload, a second tab) follows that run from its start and rebuilds the text.
 * This module must never touch the DOM, except through the injected scheduler.
 */

import {
  ApiError,
  type Conversation,
  type ConversationCreate,
  type ConversationDetail,
  type Message,
  type MessageCreate,
  type RunDone,
  type RunEvent,
  type RunStream,
  isAbort,
} from "../api";
import { type Live, newLive, pauseBeforeReconnect } from "./live";
import { advance, resumeFrom, shownText } from "./progress";
import {
  type ChatApi,
  type ChatCoreOptions,
  type ChatState,
  type Connection,
  defaultScheduler,
  describe,
  FINAL_STATUSES,
  INITIAL_STATE,
  isLocalId,
  type LiveView,
  placeholder,
  type Scheduler,
} from "./state";
import { fallbackLeaf, type MessageMap, renameMessage, siblingLeaf, toMap } from "./tree";

export type { ChatApi, ChatState, LiveView } from "./state";

/** Conversations per page of the sidebar list. */
const PAGE = 50;

export class ChatCore {
  private state: ChatState = INITIAL_STATE;
  private readonly listeners = new Set<() => void>();
  private readonly lives = new Map<string, Live>();
  private readonly schedule: Scheduler;
  private readonly reconnectDelays: readonly number[];
  private readonly maxReconnects: number;
  private flushPending = false;
  private openSeq = 0;
  /** The conversation being loaded; a send waits for it, so it continues the right branch. */
  private loading: Promise<void> | null = null;
  private noticeSeq = 0;
  private olderLoaded = false;

  constructor(
    private readonly api: ChatApi,
    options: ChatCoreOptions = {},
  ) {
    this.schedule = options.schedule ?? defaultScheduler;
    this.reconnectDelays = options.reconnectDelays ?? [300, 1000, 2000, 3000];
    // About 20 s of attempts, then the answer says the connection is lost and offers Retry.
    this.maxReconnects = options.maxReconnects ?? 9;
  }

  // --- the store -----------------------------------------------------------------------------

  getState = (): ChatState => this.state;

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  private set(patch: Partial<ChatState>): void {
    this.state = { ...this.state, ...patch };
    for (const listener of this.listeners) listener();
  }

  private notify(text: string): void {
    this.set({ notice: { text, seq: ++this.noticeSeq } });
  }

  dismissNotice(): void {
    this.set({ notice: null });
  }

  // --- loading -------------------------------------------------------------------------------

  /** Load the server's facts and the conversation list, then open `conversationId`. */
  async start(conversationId: string | null): Promise<void> {
    const opening = this.open(conversationId);
    const facts = Promise.all([this.api.health(), this.api.models()]).then(
      ([health, models]) =>
        this.set({ health, models: models.models, defaultModel: models.default || health.default_model }),
      (error: unknown) => this.notify(describe(error, "The server could not be reached.")),
    );
    await Promise.all([facts, this.refreshConversations()]);
    this.set({ ready: true });
    await opening;
  }

  async refreshConversations(): Promise<void> {
    try {
      const page = await this.api.listConversations({ limit: PAGE });
      if (!this.olderLoaded) {
        this.set({ conversations: page.conversations, nextCursor: page.next_cursor });
        return;
      }
      // "Show older" was used: keep those pages after the fresh first one, without duplicates.
      const ids = new Set(page.conversations.map((c) => c.id));
      const older = this.state.conversations.filter((c) => !ids.has(c.id));
      this.set({ conversations: [...page.conversations, ...older] });
    } catch (error) {
      this.notify(describe(error, "The conversation list could not be loaded."));
    }
  }

  async loadMoreConversations(): Promise<void> {
    const cursor = this.state.nextCursor;
    if (cursor === null) return;
    try {
      const page = await this.api.listConversations({ limit: PAGE, cursor });
      this.olderLoaded = true;
      const ids = new Set(this.state.conversations.map((c) => c.id));
      this.set({
        conversations: [...this.state.conversations, ...page.conversations.filter((c) => !ids.has(c.id))],
        nextCursor: page.next_cursor,
      });
    } catch (error) {
      this.notify(describe(error, "More conversations could not be loaded."));
    }
  }

  /** Show conversation `id` (null: a new, empty chat), resuming any answer still streaming. */
  async open(id: string | null): Promise<void> {
    const seq = ++this.openSeq;
    this.stopFollowing();
    this.loading = null;
    if (id === null) {
      this.set({ currentId: null, conversation: null, messages: {}, leafId: null, loadingConversation: false });
      return;
    }
    const known = this.state.conversations.find((c) => c.id === id) ?? null;
    const sameConversation = this.state.currentId === id;
    this.set({
      currentId: id,
      conversation: known ?? (sameConversation ? this.state.conversation : null),
      messages: sameConversation ? this.state.messages : {},
      leafId: sameConversation ? this.state.leafId : null,
      loadingConversation: true,
    });
    const loading = this.api.getConversation(id);
    this.loading = loading.then(
      () => {},
      () => {},
    );
    try {
      const detail = await loading;
      if (seq !== this.openSeq) return;
      this.showDetail(detail);
      this.resumeStreaming();
    } catch (error) {
      if (seq !== this.openSeq) return;
      this.set({ loadingConversation: false });
      if (error instanceof ApiError && error.status === 404) {
        this.set({ currentId: null, conversation: null, messages: {}, leafId: null });
        this.notify("That conversation no longer exists.");
      } else {
        this.notify(describe(error, "The conversation could not be loaded."));
      }
    }
  }

  /** Reload the open conversation from the server (after an answer, on focus). */
  async reload(): Promise<void> {
    const id = this.state.currentId;
    if (id === null || this.lives.size > 0) return;
    try {
      const detail = await this.api.getConversation(id);
      if (this.state.currentId !== id || this.lives.size > 0) return;
      this.showDetail(detail);
      this.resumeStreaming();
    } catch {
      // a background refresh: stay quiet
    }
  }

  private showDetail(detail: ConversationDetail): void {
    const { messages, ...conversation } = detail;
    const map = toMap(messages);
    const leafId =
      detail.current_leaf_id !== null && map[detail.current_leaf_id] ? detail.current_leaf_id : fallbackLeaf(map);
    this.set({
      conversation,
      messages: map,
      leafId,
      loadingConversation: false,
      conversations: this.state.conversations.map((c) => (c.id === conversation.id ? conversation : c)),
    });
  }

  private resumeStreaming(): void {
    const conversationId = this.state.currentId;
    if (conversationId === null) return;
    for (const message of Object.values(this.state.messages)) {
      if (message.status !== "streaming" || !message.run_id || this.lives.has(message.id)) continue;
      const live = this.newLive(message.id, conversationId, null);
      live.runId = message.run_id;
      live.previous = message.content;
      this.publishLive();
      const runId = message.run_id;
      void this.drive(live, () => this.api.followRun(runId, null, live.controller.signal));
    }
  }

  /** Stop following every run (the runs go on on the server). */
  private stopFollowing(): void {
    for (const live of this.lives.values()) {
      live.controller.abort();
      live.accepted?.(true);
    }
    this.lives.clear();
    if (Object.keys(this.state.live).length > 0) this.set({ live: {} });
  }

  // --- conversations -------------------------------------------------------------------------

  async rename(id: string, title: string): Promise<void> {
    const trimmed = title.trim();
    if (trimmed === "") return;
    this.patchConversationLocally(id, { title: trimmed });
    try {
      await this.api.updateConversation(id, { title: trimmed });
    } catch (error) {
      this.notify(describe(error, "The conversation could not be renamed."));
      await this.refreshConversations();
    }
  }

  async remove(id: string): Promise<void> {
    try {
      await this.api.deleteConversation(id);
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 404)) {
        this.notify(describe(error, "The conversation could not be deleted."));
        return;
      }
    }
    this.set({ conversations: this.state.conversations.filter((c) => c.id !== id) });
    if (this.state.currentId === id) await this.open(null);
  }

  /** The model answers use: the conversation's, else the new chat's choice, else the default. */
  currentModel(): string {
    return this.state.conversation?.model ?? this.state.newChat.model ?? this.state.defaultModel;
  }

  async setModel(model: string): Promise<void> {
    const conversation = this.state.conversation;
    if (conversation === null) {
      this.set({ newChat: { ...this.state.newChat, model } });
      return;
    }
    const previous = conversation.model;
    this.patchConversationLocally(conversation.id, { model });
    try {
      await this.api.updateConversation(conversation.id, { model });
    } catch (error) {
      this.patchConversationLocally(conversation.id, { model: previous });
      this.notify(describe(error, "The model could not be changed."));
    }
  }

  async setSystemPrompt(text: string): Promise<boolean> {
    const conversation = this.state.conversation;
    if (conversation === null) {
      this.set({ newChat: { ...this.state.newChat, systemPrompt: text } });
      return true;
    }
    try {
      await this.api.updateConversation(conversation.id, { system_prompt: text });
      this.patchConversationLocally(conversation.id, { system_prompt: text === "" ? null : text });
      return true;
    } catch (error) {
      this.notify(describe(error, "The system prompt could not be saved."));
      return false;
    }
  }

  private patchConversationLocally(id: string, patch: Partial<Conversation>): void {
    const conversation = this.state.conversation;
    this.set({
      conversations: this.state.conversations.map((c) => (c.id === id ? { ...c, ...patch } : c)),
      conversation: conversation && conversation.id === id ? { ...conversation, ...patch } : conversation,
    });
  }

  // --- the branch ----------------------------------------------------------------------------

  /** Show the sibling `offset` places away from `messageId` (‹ or ›), and remember it. */
  async selectSibling(messageId: string, offset: number): Promise<void> {
    const message = this.state.messages[messageId];
    const conversation = this.state.conversation;
    if (!message || !conversation) return;
    const leaf = siblingLeaf(this.state.messages, message, offset);
    if (leaf === null) return;
    const previous = this.state.leafId;
    this.set({ leafId: leaf });
    if (isLocalId(leaf)) return;
    try {
      await this.api.updateConversation(conversation.id, { current_leaf_id: leaf });
    } catch (error) {
      if (this.state.leafId === leaf) this.set({ leafId: previous });
      this.notify(describe(error, "The branch could not be switched."));
    }
  }

  // --- runs ----------------------------------------------------------------------------------

  /** Wait for the conversation being opened, if any. */
  private async loaded(): Promise<void> {
    while (this.loading !== null) {
      const loading = this.loading;
      await loading;
      if (this.loading === loading) this.loading = null;
    }
  }

  /** True while an answer in the open conversation is being generated. */
  isBusy(): boolean {
    return this.lives.size > 0;
  }

  /**
   * Send `content` after the displayed branch. Resolves true once the server has accepted it
   * (its `run` event), false if it was not sent: the caller then gives the text back.
   */
  async send(content: string): Promise<boolean> {
    await this.loaded();
    if (content.trim() === "" || this.isBusy()) return false;
    let conversationId = this.state.currentId;
    if (conversationId === null) {
      const created = await this.createConversation();
      if (created === null) return false;
      conversationId = created;
    }
    return this.startExchange(conversationId, content, this.state.leafId);
  }

  /** Edit user message `messageId`: a new sibling with `content`, answered on its own branch. */
  async edit(messageId: string, content: string): Promise<boolean> {
    await this.loaded();
    const message = this.state.messages[messageId];
    const conversationId = this.state.currentId;
    if (!message || conversationId === null || content.trim() === "" || this.isBusy()) return false;
    return this.startExchange(conversationId, content, message.parent_id);
  }

  /** A new answer beside assistant message `messageId`. */
  async regenerate(messageId: string): Promise<boolean> {
    await this.loaded();
    const message = this.state.messages[messageId];
    const conversationId = this.state.currentId;
    if (!message || message.role !== "assistant" || conversationId === null || this.isBusy()) return false;
    if (isLocalId(messageId)) return false;
    const assistant = this.placeholder(conversationId, "assistant", message.parent_id);
    const live = this.newLive(assistant.id, conversationId, { userId: null, previousLeaf: this.state.leafId });
    this.set({ messages: { ...this.state.messages, [assistant.id]: assistant }, leafId: assistant.id });
    this.publishLive();
    const accepted = new Promise<boolean>((resolve) => (live.accepted = resolve));
    void this.drive(live, () => this.api.regenerate(messageId, {}, live.controller.signal));
    return accepted;
  }

  /**
   * Retry the answer `messageId`: reconnect if only the connection was lost, else regenerate it.
   */
  async retry(messageId: string): Promise<void> {
    const live = this.lives.get(messageId);
    if (live && live.connection === "lost" && live.runId !== null) {
      live.attempts = 0;
      this.setConnection(live, "reconnecting");
      const runId = live.runId;
      void this.drive(live, () => this.api.followRun(runId, resumeFrom(live.progress), live.controller.signal));
      return;
    }
    if (live) return;
    await this.regenerate(messageId);
  }

  /** The browser came back online: reconnect every run now, even one given up on. */
  reconnectNow(): void {
    for (const live of [...this.lives.values()]) {
      if (live.connection === "lost") void this.retry(live.key);
      else live.wake?.();
    }
  }

  /** Stop the answer being generated. */
  async stop(): Promise<void> {
    for (const live of [...this.lives.values()]) {
      if (live.stopping) continue;
      live.stopping = true;
      this.publishLive();
      if (live.runId !== null) await this.cancel(live);
      // else: cancelled as soon as its `run` event names it
    }
  }

  private async cancel(live: Live): Promise<void> {
    if (live.runId === null) return;
    try {
      const info = await this.api.cancelRun(live.runId);
      // If the stream is alive, its `done` event finishes the answer; if not, this does.
      if (!live.finished && live.connection !== "open" && FINAL_STATUSES.has(info.status)) {
        live.progress = { ...live.progress, text: info.text };
        this.finish(live, {
          status: info.status as RunDone["status"],
          finish_reason: info.finish_reason,
          usage: info.usage,
        });
        live.controller.abort();
      }
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return; // already over
      live.stopping = false;
      this.publishLive();
      this.notify(describe(error, "The answer could not be stopped."));
    }
  }

  private async createConversation(): Promise<string | null> {
    const body: ConversationCreate = {};
    const { model, systemPrompt } = this.state.newChat;
    if (model) body.model = model;
    if (systemPrompt.trim() !== "") body.system_prompt = systemPrompt;
    try {
      const conversation = await this.api.createConversation(body);
      this.openSeq++; // an open() still loading must not replace the new chat
      this.set({
        currentId: conversation.id,
        conversation,
        conversations: [conversation, ...this.state.conversations.filter((c) => c.id !== conversation.id)],
        messages: {},
        leafId: null,
        loadingConversation: false,
        newChat: { model: null, systemPrompt: "" },
      });
      return conversation.id;
    } catch (error) {
      this.notify(describe(error, "The conversation could not be created."));
      return null;
    }
  }

  private startExchange(conversationId: string, content: string, parentId: string | null): Promise<boolean> {
    const user = { ...this.placeholder(conversationId, "user", parentId), content, status: "complete" as const };
    const assistant = this.placeholder(conversationId, "assistant", user.id);
    const live = this.newLive(assistant.id, conversationId, { userId: user.id, previousLeaf: this.state.leafId });
    this.set({
      messages: { ...this.state.messages, [user.id]: user, [assistant.id]: assistant },
      leafId: assistant.id,
    });
    this.publishLive();
    const accepted = new Promise<boolean>((resolve) => (live.accepted = resolve));
    const body: MessageCreate = { content, parent_id: parentId };
    void this.drive(live, () => this.api.sendMessage(conversationId, body, live.controller.signal));
    return accepted;
  }

  private placeholder(conversationId: string, role: "user" | "assistant", parentId: string | null): Message {
    return placeholder(conversationId, role, parentId, this.currentModel());
  }

  private newLive(key: string, conversationId: string, local: Live["local"]): Live {
    const live = newLive(key, conversationId, local);
    this.lives.set(key, live);
    return live;
  }

  /** Read a run's streams until it is done, reconnecting after its last event when they drop. */
  private async drive(live: Live, connect: () => Promise<RunStream>): Promise<void> {
    let open = connect;
    for (;;) {
      let failure: unknown = null;
      try {
        const stream = await open();
        if (live.controller.signal.aborted) return;
        this.setConnection(live, "open");
        for await (const item of stream) {
          if (item.type === "retry") {
            live.retryMs = item.ms;
            continue;
          }
          live.attempts = 0;
          this.onEvent(live, item);
          if (live.finished) return;
        }
      } catch (error) {
        failure = error;
      }
      if (live.controller.signal.aborted || live.finished || this.lives.get(live.key) !== live) return;
      if (live.runId === null) {
        await this.failedToStart(live, failure);
        return;
      }
      if (failure instanceof ApiError) {
        await this.runGone(live);
        return;
      }
      live.attempts += 1;
      if (live.attempts > this.maxReconnects) {
        this.setConnection(live, "lost");
        return;
      }
      this.setConnection(live, "reconnecting");
      if (!(await pauseBeforeReconnect(live, this.reconnectDelays))) return;
      const runId = live.runId;
      open = () => this.api.followRun(runId, resumeFrom(live.progress), live.controller.signal);
    }
  }

  private onEvent(live: Live, event: RunEvent): void {
    const next = advance(live.progress, event);
    if (next === null) return; // a replay of an event already applied
    live.progress = next;
    switch (event.type) {
      case "run":
        this.adopt(live, event.run.run_id, event.run.user_message_id, event.run.message_id);
        live.accepted?.(true);
        live.accepted = null;
        if (live.stopping) void this.cancel(live);
        break;
      case "delta":
      case "error":
        live.dirty = true;
        this.scheduleFlush();
        break;
      case "done":
        this.finish(live, event.done);
        break;
    }
  }

  /** The server named the exchange: the placeholders take their real ids. */
  private adopt(live: Live, runId: string, userMessageId: string, messageId: string): void {
    live.runId = runId;
    let messages: MessageMap = this.state.messages;
    let leafId = this.state.leafId;
    const oldKey = live.key;
    if (live.local?.userId && live.local.userId !== userMessageId) {
      messages = renameMessage(messages, live.local.userId, userMessageId);
      if (leafId === live.local.userId) leafId = userMessageId;
    }
    if (oldKey !== messageId) {
      messages = renameMessage(messages, oldKey, messageId);
      if (leafId === oldKey) leafId = messageId;
      this.lives.delete(oldKey);
      live.key = messageId;
      this.lives.set(messageId, live);
    }
    const assistant = messages[messageId];
    if (assistant) messages = { ...messages, [messageId]: { ...assistant, run_id: runId } };
    live.local = null;
    this.set({ messages, leafId });
    this.publishLive();
  }

  private scheduleFlush(): void {
    if (this.flushPending) return;
    this.flushPending = true;
    this.schedule(() => {
      this.flushPending = false;
      this.flush();
    });
  }

  /** Publish the text gathered since the last frame. */
  private flush(): void {
    let messages: Record<string, Message> | null = null;
    for (const live of this.lives.values()) {
      if (!live.dirty) continue;
      live.dirty = false;
      const message = (messages ?? this.state.messages)[live.key];
      if (!message) continue;
      messages ??= { ...this.state.messages };
      messages[live.key] = {
        ...message,
        content: shownText(live.progress, live.previous),
        error: live.progress.error ?? message.error,
      };
    }
    if (messages !== null) this.set({ messages });
  }

  private finish(live: Live, done: RunDone): void {
    live.finished = true;
    live.dirty = false;
    this.lives.delete(live.key);
    const message = this.state.messages[live.key];
    const messages = { ...this.state.messages };
    if (message) {
      messages[live.key] = {
        ...message,
        content: shownText(live.progress, live.previous),
        status: done.status,
        finish_reason: done.finish_reason,
        usage: done.usage ?? message.usage,
        error: live.progress.error ?? message.error,
        run_id: null,
      };
    }
    this.set({ messages });
    this.publishLive();
    void this.afterRun(live.conversationId);
  }

  /** The answer is saved: take the server's view of the tree, and the new title. */
  private async afterRun(conversationId: string): Promise<void> {
    if (this.state.currentId === conversationId && this.lives.size === 0) await this.reload();
    await this.refreshConversations();
  }

  /** The exchange never started: take the placeholders back and give the text back. */
  private async failedToStart(live: Live, failure: unknown): Promise<void> {
    this.lives.delete(live.key);
    const messages = { ...this.state.messages };
    delete messages[live.key];
    if (live.local?.userId) delete messages[live.local.userId];
    const leafId = this.state.leafId === live.key ? (live.local?.previousLeaf ?? null) : this.state.leafId;
    this.set({ messages, leafId });
    this.publishLive();
    live.accepted?.(false);
    live.accepted = null;
    if (failure === null) {
      this.notify("The server ended the answer before it began. Your message was kept.");
    } else if (!isAbort(failure)) {
      this.notify(`${describe(failure, "The message could not be sent.")} Your message was kept.`);
    }
    // The request may have reached the server before the connection broke.
    if (!(failure instanceof ApiError)) await this.reload();
  }

  /** Following the run failed with an HTTP error (it expired, or the server restarted). */
  private async runGone(live: Live): Promise<void> {
    this.lives.delete(live.key);
    live.finished = true;
    try {
      const detail = await this.api.getConversation(live.conversationId);
      if (this.state.currentId !== live.conversationId) return;
      const saved = detail.messages.find((m) => m.id === live.key);
      if (saved && saved.status === "streaming") {
        // The server still says it is streaming, but its run is gone: show it as interrupted.
        saved.status = "interrupted";
        saved.run_id = null;
      }
      this.showDetail(detail);
    } catch (error) {
      this.notify(describe(error, "The answer could not be loaded."));
    }
    this.publishLive();
  }

  private setConnection(live: Live, connection: Connection): void {
    if (live.connection === connection) return;
    live.connection = connection;
    this.publishLive();
  }

  private publishLive(): void {
    const live: Record<string, LiveView> = {};
    for (const item of this.lives.values()) {
      live[item.key] = { runId: item.runId, connection: item.connection, stopping: item.stopping };
    }
    this.set({ live });
  }
}
