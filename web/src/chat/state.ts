/**
 * The chat core's shapes: what it needs from the server (ChatApi), the state it publishes
 * (ChatState), and small pure helpers. Nothing here holds state or does IO.
 */

import {
  ApiError,
  type Conversation,
  type ConversationCreate,
  type ConversationDetail,
  type ConversationPage,
  type ConversationPatch,
  type GenerateOptions,
  type Health,
  type Message,
  type MessageCreate,
  type ModelInfo,
  type ModelList,
  type RunInfo,
  type RunStream,
  type ToolDecision,
  type ToolInfo,
  type ToolList,
} from "../api";
import type { MessageMap } from "./tree";

/** The part of `Api` the core uses; tests pass a fake. */
export interface ChatApi {
  health(): Promise<Health>;
  models(): Promise<ModelList>;
  listConversations(options?: { limit?: number; cursor?: string | null }): Promise<ConversationPage>;
  createConversation(body: ConversationCreate): Promise<Conversation>;
  getConversation(id: string): Promise<ConversationDetail>;
  updateConversation(id: string, patch: ConversationPatch): Promise<ConversationDetail>;
  deleteConversation(id: string): Promise<void>;
  getRun(id: string): Promise<RunInfo>;
  cancelRun(id: string): Promise<RunInfo>;
  sendMessage(conversationId: string, body: MessageCreate, signal: AbortSignal): Promise<RunStream>;
  regenerate(messageId: string, body: GenerateOptions, signal: AbortSignal): Promise<RunStream>;
  followRun(runId: string, lastEventId: number | null, signal: AbortSignal): Promise<RunStream>;
  listTools(): Promise<ToolList>;
  decideToolCall(runId: string, callId: string, decision: "approve" | "deny"): Promise<ToolDecision>;
}

export type Connection = "connecting" | "open" | "reconnecting" | "lost";

/** What the UI needs to know about a run in progress, by the id of its assistant message. */
export interface LiveView {
  readonly runId: string | null;
  readonly connection: Connection;
  readonly stopping: boolean;
  /** When the model started reasoning (ms since the epoch); null: it has not (yet). */
  readonly reasoningSince: number | null;
  /** When the answer started after reasoning; null: still reasoning, or no reasoning. */
  readonly answerSince: number | null;
}

export interface Notice {
  readonly text: string;
  readonly seq: number;
}

export interface ChatState {
  readonly ready: boolean;
  readonly health: Health | null;
  readonly models: readonly ModelInfo[];
  readonly defaultModel: string;
  readonly conversations: readonly Conversation[];
  readonly nextCursor: string | null;
  /** The open conversation's id; null = a new chat, created on its first message. */
  readonly currentId: string | null;
  readonly conversation: Conversation | null;
  readonly loadingConversation: boolean;
  readonly messages: MessageMap;
  /** The leaf of the displayed branch. */
  readonly leafId: string | null;
  /**
   * A message to bring into view and highlight (a search hit opened); `seq` changes each time,
   * so opening the same hit again scrolls to it again.
   */
  readonly focus: { readonly messageId: string; readonly seq: number } | null;
  readonly live: Readonly<Record<string, LiveView>>;
  readonly notice: Notice | null;
  /** The tools conversations may offer their model (`GET /api/tools`); null: not loaded (yet). */
  readonly tools: readonly ToolInfo[] | null;
  /** Model, system prompt and tools chosen for a new chat before it exists. */
  readonly newChat: {
    readonly model: string | null;
    readonly systemPrompt: string;
    readonly tools: readonly string[];
  };
}

export type Scheduler = (callback: () => void) => void;

export interface ChatCoreOptions {
  /** Runs a callback before the next paint; defaults to requestAnimationFrame (with a timer
   * fallback, as hidden tabs get no frames). Tests pass a synchronous or manual one. */
  schedule?: Scheduler;
  /** Delays between reconnect attempts, in ms; the server's `retry:` caps the later ones. */
  reconnectDelays?: readonly number[];
  maxReconnects?: number;
  /** The clock that dates reasoning (ms since the epoch); defaults to Date.now. */
  now?: () => number;
}

export const INITIAL_STATE: ChatState = {
  ready: false,
  health: null,
  models: [],
  defaultModel: "",
  conversations: [],
  nextCursor: null,
  currentId: null,
  conversation: null,
  loadingConversation: false,
  messages: {},
  leafId: null,
  focus: null,
  live: {},
  notice: null,
  tools: null,
  newChat: { model: null, systemPrompt: "", tools: [] },
};

/** Runs a callback before the next paint, or after 100 ms in a hidden tab (no frames there). */
export function defaultScheduler(callback: () => void): void {
  let done = false;
  const run = (): void => {
    if (done) return;
    done = true;
    callback();
  };
  if (typeof requestAnimationFrame === "function") requestAnimationFrame(run);
  setTimeout(run, 100);
}

/** Messages shown before the server has named them carry a local id until their `run` event. */
const LOCAL_PREFIX = "local:";
let localCounter = 0;
export const isLocalId = (id: string): boolean => id.startsWith(LOCAL_PREFIX);

export function placeholder(
  conversationId: string,
  role: "user" | "assistant",
  parentId: string | null,
  model: string | null,
): Message {
  const now = new Date().toISOString();
  return {
    id: `${LOCAL_PREFIX}${++localCounter}`,
    conversation_id: conversationId,
    parent_id: parentId,
    role,
    content: "",
    status: role === "assistant" ? "streaming" : "complete",
    model: role === "assistant" ? model : null,
    finish_reason: null,
    usage: null,
    error: null,
    created_at: now,
    updated_at: now,
    run_id: null,
    reasoning: null,
    reasoning_seconds: null,
    tool_calls: null,
  };
}

/** A sentence for the user about `error`. */
export function describe(error: unknown, fallback: string): string {
  if (error instanceof ApiError) return error.message || fallback;
  if (error instanceof Error && error.name === "NetworkError") return "The server could not be reached.";
  return fallback;
}
