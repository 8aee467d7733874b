/**
 * Every call the UI makes to the ssechat server, typed, and the reading of run streams.
 *
 * Run streams are read with `fetch` and a `ReadableStream` reader, decoded by `sse.ts`, and
 * turned into typed `RunEvent`s. Resuming (after a reload, a dropped connection, in a second
 * tab) is `followRun` with the last event id seen. This module holds no UI state and never
 * touches React or the DOM: the chat core (`chat/core.ts`) decides what to do with events.
 */

import { EventStreamParser, type ServerSentEvent } from "./sse";

// --- the server's shapes -------------------------------------------------------------------

export type MessageRole = "user" | "assistant" | "system";
export type MessageStatus = "complete" | "streaming" | "length" | "stopped" | "error" | "interrupted";
export type RunStatus = MessageStatus | "running" | "pending";

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export interface ErrorInfo {
  code: string;
  message: string;
  retryable?: boolean;
}

export interface Conversation {
  id: string;
  title: string | null;
  model: string | null;
  system_prompt: string | null;
  owner?: string;
  created_at: string;
  updated_at: string;
  current_leaf_id: string | null;
}

export interface Message {
  id: string;
  conversation_id: string;
  parent_id: string | null;
  role: MessageRole;
  content: string;
  status: MessageStatus;
  model: string | null;
  finish_reason: string | null;
  usage: Usage | null;
  error: ErrorInfo | string | null;
  created_at: string;
  updated_at: string;
  run_id: string | null;
}

export interface ConversationDetail extends Conversation {
  messages: Message[];
}

export interface ConversationPage {
  conversations: Conversation[];
  next_cursor: string | null;
}

export interface Health {
  status: string;
  version: string;
  default_model: string;
  demo: boolean;
}

export interface ModelInfo {
  id: string;
  provider: string;
}

export interface ModelList {
  models: ModelInfo[];
  default: string;
}

export interface RunInfo {
  id: string;
  status: RunStatus;
  text: string;
  message_id: string;
  conversation_id: string;
  model: string;
  finish_reason: string | null;
  usage: Usage | null;
  error: ErrorInfo | string | null;
  last_event_id: number | string | null;
}

export interface ConversationCreate {
  title?: string;
  model?: string;
  system_prompt?: string;
}

export interface ConversationPatch {
  title?: string;
  model?: string;
  system_prompt?: string;
  current_leaf_id?: string;
}

export interface GenerateOptions {
  model?: string;
  temperature?: number;
  max_tokens?: number;
}

export interface MessageCreate extends GenerateOptions {
  content: string;
  /** Omitted: continue from the current leaf. null: a new root message. */
  parent_id?: string | null;
}

// --- run stream events ---------------------------------------------------------------------

export interface RunStarted {
  run_id: string;
  conversation_id: string;
  user_message_id: string;
  message_id: string;
  model: string;
}

export interface RunDone {
  status: MessageStatus;
  finish_reason: string | null;
  usage: Usage | null;
}

export type RunEvent =
  | { type: "run"; id: number; run: RunStarted }
  | { type: "delta"; id: number; text: string }
  | { type: "error"; id: number; error: ErrorInfo }
  | { type: "done"; id: number; done: RunDone };

/** What a run stream yields: its events, and the reconnection delay when the server sets one. */
export type StreamItem = RunEvent | { type: "retry"; ms: number };

export type RunStream = AsyncIterable<StreamItem>;

// --- errors --------------------------------------------------------------------------------

/** The server answered with an error status: `{"error": {"code", "message"}}`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/** The server could not be reached, or the connection broke, or went silent too long. */
export class NetworkError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "NetworkError";
  }
}

export function errorText(error: ErrorInfo | string | null | undefined): string {
  if (!error) return "";
  return typeof error === "string" ? error : error.message || error.code;
}

// --- the client ----------------------------------------------------------------------------

export interface ApiOptions {
  /** Where the API lives; "" = the page's own origin. */
  baseUrl?: string;
  fetch?: typeof fetch;
  /** A stream with no bytes for this long (not even a heartbeat) is treated as dead. */
  stallMs?: number;
}

const JSON_TYPE = "application/json";
const STREAM_TYPE = "text/event-stream";

export class Api {
  private readonly base: string;
  private readonly fetchFn: typeof fetch;
  private readonly stallMs: number;

  constructor(options: ApiOptions = {}) {
    this.base = options.baseUrl ?? "";
    this.fetchFn = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.stallMs = options.stallMs ?? 45_000;
  }

  health(): Promise<Health> {
    return this.json("GET", "/api/health");
  }

  models(): Promise<ModelList> {
    return this.json("GET", "/api/models");
  }

  listConversations(options: { limit?: number; cursor?: string | null } = {}): Promise<ConversationPage> {
    const query = new URLSearchParams();
    if (options.limit) query.set("limit", String(options.limit));
    if (options.cursor) query.set("cursor", options.cursor);
    const qs = query.toString();
    return this.json("GET", `/api/conversations${qs ? `?${qs}` : ""}`);
  }

  createConversation(body: ConversationCreate): Promise<Conversation> {
    return this.json("POST", "/api/conversations", body);
  }

  getConversation(id: string): Promise<ConversationDetail> {
    return this.json("GET", `/api/conversations/${enc(id)}`);
  }

  updateConversation(id: string, patch: ConversationPatch): Promise<ConversationDetail> {
    return this.json("PATCH", `/api/conversations/${enc(id)}`, patch);
  }

  async deleteConversation(id: string): Promise<void> {
    await this.request("DELETE", `/api/conversations/${enc(id)}`, undefined, { Accept: JSON_TYPE });
  }

  getRun(id: string): Promise<RunInfo> {
    return this.json("GET", `/api/runs/${enc(id)}`);
  }

  cancelRun(id: string): Promise<RunInfo> {
    return this.json("POST", `/api/runs/${enc(id)}/cancel`);
  }

  /** Send a message and stream its answer (the `run` event comes first). */
  sendMessage(conversationId: string, body: MessageCreate, signal: AbortSignal): Promise<RunStream> {
    return this.stream("POST", `/api/conversations/${enc(conversationId)}/messages`, body, signal);
  }

  /** A new answer beside assistant message `messageId`, streamed. */
  regenerate(messageId: string, body: GenerateOptions, signal: AbortSignal): Promise<RunStream> {
    return this.stream("POST", `/api/messages/${enc(messageId)}/regenerate`, body, signal);
  }

  /**
   * Follow a run's events: all of them (lastEventId null, the `run` event first), or only those
   * after `lastEventId`, sent as the Last-Event-ID header.
   */
  followRun(runId: string, lastEventId: number | null, signal: AbortSignal): Promise<RunStream> {
    const headers: Record<string, string> = { Accept: STREAM_TYPE };
    if (lastEventId !== null && lastEventId >= 0) headers["Last-Event-ID"] = String(lastEventId);
    return this.streamRequest("GET", `/api/runs/${enc(runId)}/events`, undefined, headers, signal);
  }

  // --- plumbing ----------------------------------------------------------------------------

  private async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const response = await this.request(method, path, body, { Accept: JSON_TYPE });
    return (await response.json()) as T;
  }

  private stream(method: string, path: string, body: unknown, signal: AbortSignal): Promise<RunStream> {
    return this.streamRequest(method, path, body, { Accept: STREAM_TYPE }, signal);
  }

  private async streamRequest(
    method: string,
    path: string,
    body: unknown,
    headers: Record<string, string>,
    signal: AbortSignal,
  ): Promise<RunStream> {
    // One controller per connection: the caller's signal, or the stall watchdog, aborts it.
    const connection = new AbortController();
    const onAbort = (): void => connection.abort(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
    try {
      const response = await this.request(method, path, body, headers, connection.signal);
      if (!response.body) throw new NetworkError("the server sent an empty stream");
      return readRunStream(response.body, connection, this.stallMs, () => signal.removeEventListener("abort", onAbort));
    } catch (error) {
      signal.removeEventListener("abort", onAbort);
      throw error;
    }
  }

  private async request(
    method: string,
    path: string,
    body: unknown,
    headers: Record<string, string>,
    signal?: AbortSignal,
  ): Promise<Response> {
    let response: Response;
    try {
      response = await this.fetchFn(this.base + path, {
        method,
        headers: body === undefined ? headers : { ...headers, "Content-Type": JSON_TYPE },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
        cache: "no-store",
      });
    } catch (error) {
      if (isAbort(error)) throw error;
      throw new NetworkError("The server could not be reached.", { cause: error });
    }
    if (!response.ok) throw await toApiError(response);
    return response;
  }
}

function enc(id: string): string {
  return encodeURIComponent(id);
}

export function isAbort(error: unknown): boolean {
  return error instanceof DOMException && error.name === "AbortError";
}

async function toApiError(response: Response): Promise<ApiError> {
  let code = `http_${response.status}`;
  let message = `${response.status} ${response.statusText}`.trim();
  try {
    const payload = (await response.json()) as { error?: { code?: string; message?: string } };
    if (payload.error?.code) code = payload.error.code;
    if (payload.error?.message) message = payload.error.message;
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(response.status, code, message);
}

/**
 * Reads a run stream to its end. Closing the iteration early (break, return, an exception in
 * the consumer) cancels the reader, which closes the connection. A connection that sends nothing
 * for `stallMs` (the server sends `: ping` well within that) is aborted as dead.
 */
export async function* readRunStream(
  body: ReadableStream<Uint8Array>,
  connection: AbortController,
  stallMs: number,
  release: () => void = () => {},
): AsyncGenerator<StreamItem> {
  const reader = body.getReader();
  const parser = new EventStreamParser();
  let retry: number | null = null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stalled = false;
  const arm = (): void => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      // Dead, not slow: the server sends a heartbeat well within stallMs.
      stalled = true;
      connection.abort(new NetworkError("the stream went silent"));
      reader.cancel().catch(() => {});
    }, stallMs);
  };
  try {
    arm();
    for (;;) {
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await reader.read();
      } catch (error) {
        if (stalled) throw new NetworkError("The stream went silent.", { cause: error });
        if (isAbort(error)) throw error;
        throw new NetworkError("The connection to the server broke.", { cause: error });
      }
      if (stalled) throw new NetworkError("The stream went silent.");
      if (chunk.done) break;
      arm();
      const events = parser.feed(chunk.value);
      if (parser.retry !== null && parser.retry !== retry) {
        retry = parser.retry;
        yield { type: "retry", ms: retry };
      }
      for (const event of events) {
        const item = toRunEvent(event);
        if (item) yield item;
      }
    }
    for (const event of parser.end()) {
      const item = toRunEvent(event);
      if (item) yield item;
    }
  } finally {
    clearTimeout(timer);
    release();
    reader.cancel().catch(() => {});
  }
}

/** A parsed SSE event as a typed run event; unknown types and malformed data are skipped. */
export function toRunEvent(event: ServerSentEvent): RunEvent | null {
  const id = event.lastEventId === "" ? Number.NaN : Number(event.lastEventId);
  let data: unknown;
  try {
    data = JSON.parse(event.data);
  } catch {
    return null;
  }
  if (typeof data !== "object" || data === null || !Number.isInteger(id)) return null;
  const record = data as Record<string, unknown>;
  switch (event.type) {
    case "run":
      return typeof record.message_id === "string" ? { type: "run", id, run: data as RunStarted } : null;
    case "delta":
      return typeof record.text === "string" ? { type: "delta", id, text: record.text } : null;
    case "error":
      return {
        type: "error",
        id,
        error: {
          code: String(record.code ?? "error"),
          message: String(record.message ?? "The answer failed."),
          retryable: Boolean(record.retryable),
        },
      };
    case "done":
      return {
        type: "done",
        id,
        done: {
          status: (record.status as MessageStatus | undefined) ?? "complete",
          finish_reason: (record.finish_reason as string | null | undefined) ?? null,
          usage: (record.usage as Usage | null | undefined) ?? null,
        },
      };
    default:
      return null;
  }
}
