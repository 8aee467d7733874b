/**
 * Following runs: reading a run's event stream, reconnecting after its last event when the
 * connection drops, and turning its events into the messages the chat core publishes.
 *
 * A `RunFollower` follows every run of the open conversation, keyed by the id of its assistant
 * message: an exchange the core has just started (its placeholders on screen, its stream the
 * POST response), or an answer found still streaming when a conversation is opened (followed
 * from the start of its run). Events are applied by id, once (`progress.ts`); the text gathered
 * since the last frame is published once per frame, for all runs together. When the server
 * names the exchange (`run` event) the placeholders take their real ids. Reasoning events (the
 * model's thinking) are applied the same way into the message's `reasoning`; the follower dates
 * when reasoning and then the answer started, for the UI's "Thinking (12 s)" and "Thought for".
 * Tool events build the message's `tool_calls` (the stored shape), published like text; a run
 * resumed from its start shows the saved calls until the rebuilt ones have caught up.
 *
 * It owns no state of its own beyond the runs: it reads and writes the core's state through
 * `FollowerHost`. It must never touch the DOM, except through the injected scheduler, and never
 * retry a request the server has not accepted (a POST with no `run` event yet is not idempotent).
 */

import {
  ApiError,
  type ConversationDetail,
  errorText,
  isAbort,
  isFinalStatus,
  type Message,
  type RunDone,
  type RunEvent,
  type RunStream,
} from "../api";
import { toToolCall } from "../tools";
import { type Live, newLive, pauseBeforeReconnect } from "./live";
import { advance, resumeFrom, shownReasoning, shownText, shownToolCalls } from "./progress";
import {
  type ChatApi,
  type ChatCoreOptions,
  type ChatState,
  type Connection,
  defaultScheduler,
  describe,
  type LiveView,
  type Scheduler,
} from "./state";
import { type MessageMap, renameMessage } from "./tree";

/** What a `RunFollower` needs from the chat core that owns it. */
export interface FollowerHost {
  readonly api: ChatApi;
  getState(): ChatState;
  set(patch: Partial<ChatState>): void;
  notify(text: string): void;
  /** Show a conversation as the server has it. */
  showDetail(detail: ConversationDetail): void;
  /** Re-read the open conversation from the server (a no-op while a run is followed). */
  reload(): Promise<void>;
  /** An answer is saved: take the server's view of the tree and the new title. */
  afterRun(conversationId: string): Promise<void>;
}

/** Opens a run's stream; the signal aborts it when the run stops being followed. */
export type Connect = (signal: AbortSignal) => Promise<RunStream>;

export class RunFollower {
  private readonly lives = new Map<string, Live>();
  private readonly schedule: Scheduler;
  private readonly reconnectDelays: readonly number[];
  private readonly maxReconnects: number;
  private readonly now: () => number;
  private flushPending = false;

  constructor(
    private readonly host: FollowerHost,
    options: ChatCoreOptions = {},
  ) {
    this.schedule = options.schedule ?? defaultScheduler;
    this.reconnectDelays = options.reconnectDelays ?? [300, 1000, 2000, 3000];
    // About 20 s of attempts, then the answer says the connection is lost and offers Retry.
    this.maxReconnects = options.maxReconnects ?? 9;
    this.now = options.now ?? Date.now;
  }

  /** True while a run is followed. */
  get busy(): boolean {
    return this.lives.size > 0;
  }

  /**
   * Follow a new exchange whose placeholders the core shows: `key` is the assistant's
   * placeholder, `local` what to take back if the server never accepts it. Resolves true once
   * the server has named the exchange (its `run` event), false if it was not sent.
   */
  start(key: string, conversationId: string, local: NonNullable<Live["local"]>, connect: Connect): Promise<boolean> {
    const live = this.add(key, conversationId, local);
    this.publishLive();
    const accepted = new Promise<boolean>((resolve) => (live.accepted = resolve));
    void this.drive(live, () => connect(live.controller.signal));
    return accepted;
  }

  /** Follow, from the start of its run, every answer of the shown messages still streaming. */
  resume(conversationId: string, messages: MessageMap): void {
    for (const message of Object.values(messages)) {
      if (message.status !== "streaming" || !message.run_id || this.lives.has(message.id)) continue;
      const live = this.add(message.id, conversationId, null);
      live.runId = message.run_id;
      live.previous = message.content;
      live.previousToolCalls = (message.tool_calls ?? []).map(toToolCall).filter((call) => call !== null);
      this.resumeReasoning(live, message);
      this.publishLive();
      const runId = message.run_id;
      void this.drive(live, () => this.host.api.followRun(runId, null, live.controller.signal));
    }
  }

  /**
   * A run followed again from its start replays its reasoning at once: date it from the saved
   * message instead (its creation is when the run started), so the counter goes on, not over.
   */
  private resumeReasoning(live: Live, message: Message): void {
    const now = this.now();
    const created = Date.parse(message.created_at);
    live.startHint = Number.isFinite(created) ? Math.min(created, now) : now;
    live.previousReasoning = message.reasoning ?? "";
    if (live.previousReasoning === "") return;
    live.reasoningSince = live.startHint;
    if (message.reasoning_seconds != null) live.answerSince = live.startHint + message.reasoning_seconds * 1000;
    else if (message.content !== "") live.answerSince = now;
  }

  /** Stop following every run (the runs go on on the server). */
  stopAll(): void {
    for (const live of this.lives.values()) {
      live.controller.abort();
      live.accepted?.(true);
    }
    this.lives.clear();
    if (Object.keys(this.host.getState().live).length > 0) this.host.set({ live: {} });
  }

  /**
   * Retry answer `key` if it is followed: reconnect if its connection was given up on. Returns
   * false when it is not followed (the core regenerates it instead).
   */
  retry(key: string): boolean {
    const live = this.lives.get(key);
    if (!live) return false;
    if (live.connection === "lost" && live.runId !== null) {
      live.attempts = 0;
      this.setConnection(live, "reconnecting");
      const runId = live.runId;
      void this.drive(live, () => this.host.api.followRun(runId, resumeFrom(live.progress), live.controller.signal));
    }
    return true;
  }

  /** The browser came back online: reconnect every run now, even one given up on. */
  reconnectNow(): void {
    for (const live of [...this.lives.values()]) {
      if (live.connection === "lost") this.retry(live.key);
      else live.wake?.();
    }
  }

  /** Stop the answers being generated. */
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
      const info = await this.host.api.cancelRun(live.runId);
      // If the stream is alive, its `done` event finishes the answer; if not, this does.
      if (!live.finished && live.connection !== "open" && isFinalStatus(info.status)) {
        live.progress = { ...live.progress, text: info.text };
        this.finish(live, { status: info.status, finish_reason: info.finish_reason, usage: info.usage });
        live.controller.abort();
      }
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return; // already over
      live.stopping = false;
      this.publishLive();
      this.host.notify(describe(error, "The answer could not be stopped."));
    }
  }

  private add(key: string, conversationId: string, local: Live["local"]): Live {
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
      open = () => this.host.api.followRun(runId, resumeFrom(live.progress), live.controller.signal);
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
        // One comparison per token for a plain answer: it never reasoned.
        if (live.reasoningSince !== null && live.answerSince === null && event.text !== "") {
          live.answerSince = this.now();
          this.publishLive();
        }
        live.dirty = true;
        this.scheduleFlush();
        break;
      case "reasoning":
        if (live.reasoningSince === null) {
          live.reasoningSince = live.startHint ?? this.now();
          this.publishLive();
        }
        live.dirty = true;
        this.scheduleFlush();
        break;
      case "tool_call":
      case "tool_decision":
      case "tool_result":
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
    const state = this.host.getState();
    let messages: MessageMap = state.messages;
    let leafId = state.leafId;
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
    this.host.set({ messages, leafId });
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

  /** Publish the text gathered since the last frame, for every run in one update. */
  private flush(): void {
    const current = this.host.getState().messages;
    let messages: Record<string, Message> | null = null;
    for (const live of this.lives.values()) {
      if (!live.dirty) continue;
      live.dirty = false;
      const message = (messages ?? current)[live.key];
      if (!message) continue;
      messages ??= { ...current };
      const next: Message = {
        ...message,
        content: shownText(live.progress, live.previous),
        error: live.progress.error ? errorText(live.progress.error) : message.error,
      };
      if (live.reasoningSince !== null) next.reasoning = shownReasoning(live.progress, live.previousReasoning);
      // Two length checks per token for a plain answer, which never calls a tool.
      if (live.progress.toolCalls.length > 0 || live.previousToolCalls.length > 0) {
        next.tool_calls = [...shownToolCalls(live.progress, live.previousToolCalls)];
      }
      messages[live.key] = next;
    }
    if (messages !== null) this.host.set({ messages });
  }

  private finish(live: Live, done: RunDone): void {
    live.finished = true;
    live.dirty = false;
    this.lives.delete(live.key);
    const current = this.host.getState().messages;
    const message = current[live.key];
    const messages = { ...current };
    if (message) {
      const finished: Message = {
        ...message,
        content: shownText(live.progress, live.previous),
        status: done.status,
        finish_reason: done.finish_reason,
        usage: done.usage ?? message.usage,
        error: live.progress.error ? errorText(live.progress.error) : message.error,
        run_id: null,
      };
      const calls = shownToolCalls(live.progress, live.previousToolCalls);
      if (calls.length > 0) finished.tool_calls = [...calls];
      else if (done.tool_calls?.length) finished.tool_calls = done.tool_calls;
      if (live.reasoningSince !== null) {
        finished.reasoning = shownReasoning(live.progress, live.previousReasoning);
        // Until the server's figure (first to last token) arrives with the reload after the run.
        const ended = live.answerSince ?? this.now();
        finished.reasoning_seconds = message.reasoning_seconds ?? Math.max(0, (ended - live.reasoningSince) / 1000);
      }
      messages[live.key] = finished;
    }
    this.host.set({ messages });
    this.publishLive();
    void this.host.afterRun(live.conversationId);
  }

  /** The exchange never started: take the placeholders back and give the text back. */
  private async failedToStart(live: Live, failure: unknown): Promise<void> {
    this.lives.delete(live.key);
    const state = this.host.getState();
    const messages = { ...state.messages };
    delete messages[live.key];
    if (live.local?.userId) delete messages[live.local.userId];
    const leafId = state.leafId === live.key ? (live.local?.previousLeaf ?? null) : state.leafId;
    this.host.set({ messages, leafId });
    this.publishLive();
    live.accepted?.(false);
    live.accepted = null;
    if (failure === null) {
      this.host.notify("The server ended the answer before it began. Your message was kept.");
    } else if (!isAbort(failure)) {
      this.host.notify(`${describe(failure, "The message could not be sent.")} Your message was kept.`);
    }
    // The request may have reached the server before the connection broke.
    if (!(failure instanceof ApiError)) await this.host.reload();
  }

  /** Following the run failed with an HTTP error (it expired, or the server restarted). */
  private async runGone(live: Live): Promise<void> {
    this.lives.delete(live.key);
    live.finished = true;
    try {
      const detail = await this.host.api.getConversation(live.conversationId);
      if (this.host.getState().currentId !== live.conversationId) return;
      const saved = detail.messages.find((m) => m.id === live.key);
      if (saved && saved.status === "streaming") {
        // The server still says it is streaming, but its run is gone: show it as interrupted.
        saved.status = "interrupted";
        saved.run_id = null;
      }
      this.host.showDetail(detail);
    } catch (error) {
      this.host.notify(describe(error, "The answer could not be loaded."));
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
      live[item.key] = {
        runId: item.runId,
        connection: item.connection,
        stopping: item.stopping,
        reasoningSince: item.reasoningSince,
        answerSince: item.answerSince,
      };
    }
    this.host.set({ live });
  }
}
