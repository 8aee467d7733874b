/**
 * Test support for the chat core and its follower: a fake server (`FakeApi`) whose run streams
 * are `Channel`s the test pushes events into, fixtures, and waiting helpers. Imported by tests
 * only; never by the app.
 */

import {
  ApiError,
  type Conversation,
  type ConversationDetail,
  type Health,
  type Message,
  type RunInfo,
  type RunStream,
  type StreamItem,
  type ToolDecision,
  type ToolInfo,
  type ToolList,
} from "../api";
import type { ChatApi } from "./core";

/** An async stream the test pushes items into, then ends or breaks. */
export class Channel implements AsyncIterable<StreamItem> {
  private items: StreamItem[] = [];
  private waiting: (() => void) | null = null;
  private ended = false;
  private failure: Error | null = null;

  push(...items: StreamItem[]): void {
    this.items.push(...items);
    this.wakeUp();
  }

  end(): void {
    this.ended = true;
    this.wakeUp();
  }

  fail(error: Error): void {
    this.failure = error;
    this.wakeUp();
  }

  /** Every item pushed has been taken, and the reader waits for more. */
  get drained(): boolean {
    return this.items.length === 0 && this.waiting !== null;
  }

  private wakeUp(): void {
    this.waiting?.();
    this.waiting = null;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<StreamItem> {
    for (;;) {
      const item = this.items.shift();
      if (item) {
        yield item;
        continue;
      }
      if (this.failure) throw this.failure;
      if (this.ended) return;
      await new Promise<void>((resolve) => (this.waiting = resolve));
    }
  }
}

const T0 = Date.UTC(2025, 0, 1);
let tick = 0;
const stamp = (): string => new Date(T0 + ++tick * 1000).toISOString();

export function conversation(id: string, extra: Partial<Conversation> = {}): Conversation {
  return {
    id,
    title: null,
    model: null,
    system_prompt: null,
    owner: null,
    created_at: stamp(),
    updated_at: stamp(),
    current_leaf_id: null,
    tools: [],
    ...extra,
  };
}

export function message(
  id: string,
  parent: string | null,
  role: Message["role"],
  extra: Partial<Message> = {},
): Message {
  const at = stamp();
  return {
    id,
    conversation_id: "c1",
    parent_id: parent,
    role,
    content: `${id} text`,
    status: "complete",
    model: "demo",
    finish_reason: null,
    usage: null,
    error: null,
    created_at: at,
    updated_at: at,
    run_id: null,
    reasoning: null,
    reasoning_seconds: null,
    tool_calls: null,
    ...extra,
  };
}

export const runEvent = (userId: string, messageId: string): StreamItem => ({
  type: "run",
  id: 0,
  run: { run_id: "r1", conversation_id: "c1", user_message_id: userId, message_id: messageId, model: "demo" },
});
export const delta = (id: number, text: string): StreamItem => ({ type: "delta", id, text });
export const done = (id: number, status: "complete" | "stopped" = "complete"): StreamItem => ({
  type: "done",
  id,
  done: { status, finish_reason: "stop", usage: { prompt_tokens: 3, completion_tokens: 5, total_tokens: 8 } },
});

export class FakeApi implements ChatApi {
  conversations: Conversation[] = [];
  details = new Map<string, ConversationDetail>();
  calls: string[] = [];
  streams: Channel[] = [];
  sendError: Error | null = null;
  follows: { runId: string; lastEventId: number | null }[] = [];
  patches: unknown[] = [];
  /** The bodies of createConversation, in order. */
  created: unknown[] = [];
  tools: ToolInfo[] = [];
  /** The decisions POSTed: "runId callId approve|deny". */
  decisions: string[] = [];
  decisionError: Error | null = null;
  /** When set, getConversation waits for it. */
  gate: Promise<void> | null = null;

  private next(): Channel {
    const channel = new Channel();
    this.streams.push(channel);
    return channel;
  }

  async health(): Promise<Health> {
    return { status: "ok", version: "0", default_model: "demo", demo: true };
  }
  async models() {
    return { models: [{ id: "demo", provider: "demo" }], default: "demo" };
  }
  async listConversations(options: { limit?: number; cursor?: string | null } = {}) {
    this.calls.push("list");
    const start = Number(options.cursor ?? 0);
    const end = start + (options.limit ?? 50);
    const next = end < this.conversations.length ? String(end) : null;
    return { conversations: this.conversations.slice(start, end), next_cursor: next };
  }
  async createConversation(body: { tools?: string[] | null } = {}) {
    this.created.push(body);
    const created = conversation("c1", { tools: body.tools ?? [] });
    this.conversations = [created, ...this.conversations];
    this.details.set("c1", { ...created, messages: [] });
    return created;
  }
  async getConversation(id: string) {
    this.calls.push(`get ${id}`);
    if (this.gate) await this.gate;
    const detail = this.details.get(id);
    if (!detail) throw new ApiError(404, "not_found", "no such conversation");
    return structuredClone(detail);
  }
  async updateConversation(id: string, patch: object) {
    this.patches.push(patch);
    const detail = this.details.get(id) as ConversationDetail;
    Object.assign(detail, patch);
    return structuredClone(detail);
  }
  async deleteConversation(id: string) {
    this.conversations = this.conversations.filter((c) => c.id !== id);
  }
  async getRun(): Promise<RunInfo> {
    throw new Error("unused");
  }
  async cancelRun(id: string): Promise<RunInfo> {
    this.calls.push(`cancel ${id}`);
    return {
      id,
      status: "running",
      text: "",
      message_id: "a1",
      user_message_id: "u1",
      conversation_id: "c1",
      model: "demo",
      finish_reason: null,
      usage: null,
      error: null,
      last_event_id: 0,
    };
  }
  async sendMessage(conversationId: string, body: object): Promise<RunStream> {
    this.calls.push(`send ${conversationId} ${JSON.stringify(body)}`);
    if (this.sendError) throw this.sendError;
    return this.next();
  }
  async regenerate(messageId: string): Promise<RunStream> {
    this.calls.push(`regenerate ${messageId}`);
    return this.next();
  }
  async followRun(runId: string, lastEventId: number | null): Promise<RunStream> {
    this.follows.push({ runId, lastEventId });
    return this.next();
  }
  async listTools(): Promise<ToolList> {
    return { tools: structuredClone(this.tools) };
  }
  async decideToolCall(runId: string, callId: string, decision: "approve" | "deny"): Promise<ToolDecision> {
    this.decisions.push(`${runId} ${callId} ${decision}`);
    if (this.decisionError) throw this.decisionError;
    return { id: callId, decision: decision === "approve" ? "approved" : "denied" };
  }
}

/** What the fake server holds for c1 once an answer is saved. */
export function saved(api: FakeApi, leaf: string, ...messages: Message[]): void {
  api.details.set("c1", { ...conversation("c1", { current_leaf_id: leaf }), messages });
}

/**
 * Wait until `condition` holds, checking it after each turn of the event loop. The timeout is
 * generous: it only turns a hang into a failure, it measures nothing.
 */
export async function waitFor(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
}

/** Wait until the core has applied everything pushed into `stream`. */
export const consumed = (stream: Channel): Promise<void> => waitFor(() => stream.drained, "the stream to be read");
