/**
 * The chat core: all UI state and what happens on each action, with no React in it.
 *
 * It talks to the server only through `ChatApi` (implemented by `api.ts`, faked in tests) and
 * publishes immutable snapshots to subscribers (`useChat` is a thin hook over it).
 *
 * Runs: a send, an edit or a regenerate shows placeholders for the exchange and hands its
 * stream to the `RunFollower` (`follower.ts`), which reads it, reconnects after the last event
 * it applied when the connection drops, and publishes the streamed text once per frame.
 * Opening a conversation whose answer is still being generated (a reload, a second tab) has the
 * follower follow that run from its start.
 * Tools: the core loads the tools the server offers, keeps the conversation's choice (PATCHed,
 * or sent with a new chat's creation), and passes Approve and Deny on to the server; the cards
 * themselves are built by the follower from the run's tool events.
 * This module must never touch the DOM, and never read a run's stream itself.
 */

import {
  ApiError,
  type Conversation,
  type ConversationCreate,
  type ConversationDetail,
  type Message,
  type MessageCreate,
} from "../api";
import { RunFollower } from "./follower";
import {
  type ChatApi,
  type ChatCoreOptions,
  type ChatState,
  describe,
  INITIAL_STATE,
  isLocalId,
  placeholder,
} from "./state";
import { fallbackLeaf, leafHolding, siblingLeaf, toMap } from "./tree";

export type { ChatApi, ChatState, LiveView } from "./state";

/** Conversations per page of the sidebar list. */
const PAGE = 50;

export class ChatCore {
  private state: ChatState = INITIAL_STATE;
  private readonly listeners = new Set<() => void>();
  private readonly runs: RunFollower;
  private openSeq = 0;
  /** The conversation being loaded; a send waits for it, so it continues the right branch. */
  private loading: Promise<void> | null = null;
  private noticeSeq = 0;
  private focusSeq = 0;
  private olderLoaded = false;

  constructor(
    private readonly api: ChatApi,
    options: ChatCoreOptions = {},
  ) {
    this.runs = new RunFollower(
      {
        api,
        getState: this.getState,
        set: (patch) => this.set(patch),
        notify: (text) => this.notify(text),
        showDetail: (detail) => this.showDetail(detail),
        reload: () => this.reload(),
        afterRun: (conversationId) => this.afterRun(conversationId),
      },
      options,
    );
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

  /** Load the server's facts and the conversation list, then open `conversationId` (at a message). */
  async start(conversationId: string | null, focusMessageId: string | null = null): Promise<void> {
    const opening = this.open(conversationId, focusMessageId);
    const facts = Promise.all([this.api.health(), this.api.models()]).then(
      ([health, models]) =>
        this.set({ health, models: models.models, defaultModel: models.default || health.default_model }),
      (error: unknown) => this.notify(describe(error, "The server could not be reached.")),
    );
    void this.refreshTools();
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

  /**
   * Show conversation `id` (null: a new, empty chat), resuming any answer still streaming. With
   * `focusMessageId` (a search hit), on the branch holding that message, brought into view.
   */
  async open(id: string | null, focusMessageId: string | null = null): Promise<void> {
    const seq = ++this.openSeq;
    this.runs.stopAll();
    this.loading = null;
    if (id === null) {
      this.set({
        currentId: null,
        conversation: null,
        messages: {},
        leafId: null,
        focus: null,
        loadingConversation: false,
      });
      return;
    }
    const known = this.state.conversations.find((c) => c.id === id) ?? null;
    const sameConversation = this.state.currentId === id;
    this.set({
      currentId: id,
      conversation: known ?? (sameConversation ? this.state.conversation : null),
      messages: sameConversation ? this.state.messages : {},
      leafId: sameConversation ? this.state.leafId : null,
      // Asked for now, shown once the tree is here (the view waits for the message to exist).
      focus: focusMessageId === null ? null : { messageId: focusMessageId, seq: ++this.focusSeq },
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
      if (focusMessageId !== null) this.showBranchOf(detail.id, focusMessageId);
      this.runs.resume(id, this.state.messages);
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

  /**
   * Stop following runs, and let a load still in flight land nowhere: the page is leaving the
   * chat (another page, another user). The runs go on on the server; `start` takes them up again.
   */
  close(): void {
    this.openSeq++;
    this.loading = null;
    this.runs.stopAll();
  }

  /** Reload the open conversation from the server (after an answer, on focus). */
  async reload(): Promise<void> {
    const id = this.state.currentId;
    if (id === null || this.runs.busy) return;
    try {
      const detail = await this.api.getConversation(id);
      if (this.state.currentId !== id || this.runs.busy) return;
      this.showDetail(detail);
      this.runs.resume(id, this.state.messages);
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

  // --- tools ---------------------------------------------------------------------------------

  /** Load the tools conversations may offer (again: servers start and stop). */
  async refreshTools(): Promise<void> {
    try {
      this.set({ tools: (await this.api.listTools()).tools });
    } catch {
      // Quiet: the picker stays as it was (an older server has no tools at all).
    }
  }

  /** The tools the open conversation (or the new chat) offers its model, as "server/tool". */
  currentTools(): readonly string[] {
    return this.state.conversation?.tools ?? this.state.newChat.tools;
  }

  /** Choose the tools the model may call: saved on the conversation, or kept for its creation. */
  async setTools(keys: readonly string[]): Promise<void> {
    const conversation = this.state.conversation;
    if (conversation === null) {
      this.set({ newChat: { ...this.state.newChat, tools: [...keys] } });
      return;
    }
    const previous = conversation.tools;
    this.patchConversationLocally(conversation.id, { tools: [...keys] });
    try {
      await this.api.updateConversation(conversation.id, { tools: [...keys] });
    } catch (error) {
      this.patchConversationLocally(conversation.id, { tools: previous });
      this.notify(describe(error, "The tools could not be changed."));
    }
  }

  /** Approve or deny a call waiting for a decision; the run's events show what follows. */
  async decideTool(runId: string, callId: string, decision: "approve" | "deny"): Promise<void> {
    await this.api.decideToolCall(runId, callId, decision);
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

  /**
   * Show the branch holding `messageId` (`leafHolding`: the current one if it does), remembered
   * on the server as the sibling switcher does; a message no longer there shows nothing more.
   */
  private showBranchOf(conversationId: string, messageId: string): void {
    const leaf = leafHolding(this.state.messages, this.state.leafId, messageId);
    if (leaf === null) {
      this.set({ focus: null });
      return;
    }
    if (leaf === this.state.leafId) return;
    this.set({ leafId: leaf });
    this.api.updateConversation(conversationId, { current_leaf_id: leaf }).catch((error: unknown) => {
      // Shown as asked all the same: only remembering it failed (a reload shows the old branch).
      this.notify(describe(error, "The branch could not be remembered."));
    });
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
    return this.runs.busy;
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
    const local = { userId: null, previousLeaf: this.state.leafId };
    this.set({ messages: { ...this.state.messages, [assistant.id]: assistant }, leafId: assistant.id });
    return this.runs.start(assistant.id, conversationId, local, (signal) => this.api.regenerate(messageId, {}, signal));
  }

  /**
   * Retry the answer `messageId`: reconnect if only the connection was lost, else regenerate it.
   */
  async retry(messageId: string): Promise<void> {
    if (this.runs.retry(messageId)) return;
    await this.regenerate(messageId);
  }

  /** The browser came back online: reconnect every run now, even one given up on. */
  reconnectNow(): void {
    this.runs.reconnectNow();
  }

  /** Stop the answer being generated. */
  stop(): Promise<void> {
    return this.runs.stop();
  }

  private async createConversation(): Promise<string | null> {
    const body: ConversationCreate = {};
    const { model, systemPrompt, tools } = this.state.newChat;
    if (model) body.model = model;
    if (systemPrompt.trim() !== "") body.system_prompt = systemPrompt;
    if (tools.length > 0) body.tools = [...tools];
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
        newChat: { model: null, systemPrompt: "", tools: [] },
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
    const local = { userId: user.id, previousLeaf: this.state.leafId };
    this.set({
      messages: { ...this.state.messages, [user.id]: user, [assistant.id]: assistant },
      leafId: assistant.id,
    });
    const body: MessageCreate = { content, parent_id: parentId };
    return this.runs.start(assistant.id, conversationId, local, (signal) =>
      this.api.sendMessage(conversationId, body, signal),
    );
  }

  private placeholder(conversationId: string, role: "user" | "assistant", parentId: string | null): Message {
    return placeholder(conversationId, role, parentId, this.currentModel());
  }

  /** The answer is saved: take the server's view of the tree, and the new title. */
  private async afterRun(conversationId: string): Promise<void> {
    if (this.state.currentId === conversationId && !this.runs.busy) await this.reload();
    await this.refreshConversations();
  }
}
