/**
 * Every call the UI makes to the ssechat server, typed, and the reading of run streams.
 *
 * Run streams are read with `fetch` and a `ReadableStream` reader, decoded by `sse.ts`, and
 * turned into typed `RunEvent`s. Resuming (after a reload, a dropped connection, in a second
 * tab) is `followRun` with the last event id seen. This module holds no UI state and never
 * touches React or the DOM: the chat core (`chat/core.ts`) decides what to do with events.
 *
 * Accounts: the session is an HttpOnly cookie the page never sees; every request is
 * same-origin, so `fetch`'s default credentials carry it. Any 401 (the session ended, the account
 * was disabled), on any call including a run stream or its resume, is reported to the listeners
 * of `onUnauthenticated`, so the app can go to the sign-in page; the calls whose 401 is an
 * ordinary answer (sign-in, setup, sign-up, "who am I") do not report it.
 */

import type { components } from "../generated/api";
import { EventStreamParser, type ServerSentEvent } from "./sse";
import { toToolCall, toToolEvent, type ToolEvent } from "./tools";
import { type UploadOptions, uploadImport } from "./transfer";

// --- the server's shapes -------------------------------------------------------------------
//
// Generated from the server's OpenAPI document (`web/openapi.json` -> `web/generated/api.ts`, by
// `npm run gen:api`, which the build runs). A test (tests/test_openapi_types.py) fails when
// either file drifts from the server; the compiler then checks every use of the new shapes.

type Schemas = components["schemas"];

export type Conversation = Schemas["Conversation"];
export type ConversationDetail = Schemas["ConversationDetail"];
export type ConversationPage = Schemas["ConversationPage"];
export type Message = Schemas["Message"];
export type Health = Schemas["Health"];
export type ModelInfo = Schemas["ModelInfo"];
export type ModelList = Schemas["ModelList"];
export type RunInfo = Schemas["RunState"];
export type Usage = Schemas["Usage"];
/** What an SSE `error` event carries, and a failed run's `error`. */
export type ErrorInfo = Schemas["ErrorInfo"];

export type ConversationCreate = Schemas["ConversationCreate"];
export type ConversationPatch = Schemas["ConversationPatch"];
export type GenerateOptions = Schemas["GenerateOptions"];
/** `parent_id` omitted: continue from the current leaf; null: a new root message. */
export type MessageCreate = Schemas["MessageCreate"];

export type AuthStatus = Schemas["AuthStatus"];
export type SignupPolicy = AuthStatus["signup"];
export type SetupRequest = Schemas["SetupRequest"];
export type SignupRequest = Schemas["SignupRequest"];
export type SignupResult = Schemas["SignupResult"];
export type LoginRequest = Schemas["LoginRequest"];
export type Me = Schemas["Me"];
export type PasswordChange = Schemas["PasswordChange"];
export type ApiKeyCreate = Schemas["ApiKeyCreate"];
export type ApiKeyCreated = Schemas["ApiKeyCreated"];
export type ApiKeyInfo = Schemas["ApiKeyInfo"];
export type ApiKeyList = Schemas["ApiKeyList"];
export type UserInfo = Schemas["UserInfo"];
export type UserList = Schemas["UserList"];
export type UserCreate = Schemas["UserCreate"];
export type UserPatch = Schemas["UserPatch"];
export type UserRole = UserInfo["role"];
export type UserStatus = UserInfo["status"];

export type MessageRole = Message["role"];
export type MessageStatus = Message["status"];
export type RunStatus = RunInfo["status"];

/**
 * Whether an answer with this status is over: the one runtime list of statuses. A Record over
 * the generated type, so a status the server adds fails the type check until it is sorted here.
 */
const STATUS_IS_FINAL: Readonly<Record<MessageStatus | RunStatus, boolean>> = {
  streaming: false,
  running: false,
  complete: true,
  length: true,
  stopped: true,
  error: true,
  interrupted: true,
};

/** The status of an answer that is over (saved, no run writes it any more). */
export type FinalStatus = Exclude<MessageStatus | RunStatus, "streaming" | "running">;

export function isFinalStatus(status: string): status is FinalStatus {
  return Object.hasOwn(STATUS_IS_FINAL, status) && STATUS_IS_FINAL[status as FinalStatus];
}

/** A tool call the model made, and what became of it (`message.tool_calls`, `done`'s). */
export type ToolCall = Schemas["ToolCallOut"];
export type ToolResult = Schemas["ToolResultOut"];
/** A tool a conversation may offer its model (`GET /api/tools`). */
export type ToolInfo = Schemas["ToolInfo"];
export type ToolList = Schemas["ToolList"];
export type ToolDecision = Schemas["ToolDecision"];
export type McpServer = Schemas["McpServer"];
export type McpServerList = Schemas["McpServerList"];
export type McpServerCreate = Schemas["McpServerCreate"];
export type McpServerPatch = Schemas["McpServerPatch"];
export type McpTool = Schemas["McpTool"];

/** A page of search hits (`GET /api/search`); a hit's snippet is plain text parts, never markup. */
export type SearchPage = Schemas["SearchPage"];
export type SearchHit = Schemas["SearchHitOut"];
export type SnippetPart = Schemas["SnippetPartOut"];
/** What `POST /api/import` did: conversations written, and those already here. */
export type ImportResult = Schemas["ImportResult"];

// --- run stream events ---------------------------------------------------------------------
//
// HAND-WRITTEN from generated parts: the document describes an event stream's frames (event,
// id, data as a string), not the JSON inside each event's data.

/** The `run` event: the server named the exchange (a 202's body, less its events URL). */
export type RunStarted = Omit<Schemas["GenerationAccepted"], "events_url">;

/** The `done` event: how the answer ended. */
export interface RunDone {
  status: FinalStatus;
  finish_reason: string | null;
  usage: Usage | null;
  /** The calls the model asked for, when it ended with `finish_reason: "tool_calls"`. */
  tool_calls?: ToolCall[];
}

export type RunEvent =
  | { type: "run"; id: number; run: RunStarted }
  | { type: "delta"; id: number; text: string }
  /** The model's thinking, in the same id sequence as `delta`. */
  | { type: "reasoning"; id: number; text: string }
  | { type: "error"; id: number; error: ErrorInfo }
  /** tool_call, tool_decision, tool_result (`tools.ts`), in the same id sequence. */
  | ToolEvent
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

/** Told of a 401 on a call made with the session: it ended, or the account was disabled. */
export type UnauthenticatedListener = (error: ApiError) => void;

interface RequestOptions {
  signal?: AbortSignal;
  /** A 401 here is an ordinary answer (wrong password, not signed in): do not report it. */
  expect401?: boolean;
}

export class Api {
  private readonly base: string;
  private readonly fetchFn: typeof fetch;
  private readonly stallMs: number;
  private readonly unauthenticated = new Set<UnauthenticatedListener>();

  constructor(options: ApiOptions = {}) {
    this.base = options.baseUrl ?? "";
    this.fetchFn = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.stallMs = options.stallMs ?? 45_000;
  }

  /** Call `listener` on every 401 the session gets; returns the function that stops it. */
  onUnauthenticated(listener: UnauthenticatedListener): () => void {
    this.unauthenticated.add(listener);
    return () => this.unauthenticated.delete(listener);
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

  // --- accounts ----------------------------------------------------------------------------

  /** Whether accounts are on, whether the first admin is still to be made, the sign-up policy. */
  authStatus(): Promise<AuthStatus> {
    return this.json("GET", "/api/auth/status");
  }

  /** Make the first admin with the setup link's token; signs them in (the cookie is set). */
  setup(body: SetupRequest): Promise<Me> {
    return this.json("POST", "/api/auth/setup", body, { expect401: true });
  }

  signup(body: SignupRequest): Promise<SignupResult> {
    return this.json("POST", "/api/auth/signup", body, { expect401: true });
  }

  /** Sign in; a wrong email or password is an ApiError 401, a pending or disabled account 403. */
  login(body: LoginRequest): Promise<Me> {
    return this.json("POST", "/api/auth/login", body, { expect401: true });
  }

  async logout(): Promise<void> {
    await this.request("POST", "/api/auth/logout", undefined, { Accept: JSON_TYPE });
  }

  /** Who is signed in; an ApiError 401 when nobody is. */
  me(): Promise<Me> {
    return this.json("GET", "/api/auth/me", undefined, { expect401: true });
  }

  /** A wrong current password is an ApiError 403 (not 401: the session is still good). */
  async changePassword(body: PasswordChange): Promise<void> {
    await this.request("POST", "/api/auth/password", body, { Accept: JSON_TYPE });
  }

  listKeys(): Promise<ApiKeyList> {
    return this.json("GET", "/api/keys");
  }

  /** A new API key: its `key` is in this answer only, never again. */
  createKey(body: ApiKeyCreate): Promise<ApiKeyCreated> {
    return this.json("POST", "/api/keys", body);
  }

  async revokeKey(id: string): Promise<void> {
    await this.request("DELETE", `/api/keys/${enc(id)}`, undefined, { Accept: JSON_TYPE });
  }

  listUsers(): Promise<UserList> {
    return this.json("GET", "/api/admin/users");
  }

  createUser(body: UserCreate): Promise<UserInfo> {
    return this.json("POST", "/api/admin/users", body);
  }

  /** Approve, disable, enable (`status`), change the role of, or set the password of a user. */
  updateUser(id: string, patch: UserPatch): Promise<UserInfo> {
    return this.json("PATCH", `/api/admin/users/${enc(id)}`, patch);
  }

  async deleteUser(id: string): Promise<void> {
    await this.request("DELETE", `/api/admin/users/${enc(id)}`, undefined, { Accept: JSON_TYPE });
  }

  // --- tools ---------------------------------------------------------------------------------

  /** The tools a conversation may offer its model. */
  listTools(): Promise<ToolList> {
    return this.json("GET", "/api/tools");
  }

  /** Approve or deny a call waiting for a decision; 409 when it no longer waits. */
  decideToolCall(runId: string, callId: string, decision: "approve" | "deny"): Promise<ToolDecision> {
    return this.json("POST", `/api/runs/${enc(runId)}/tool_calls/${enc(callId)}/${decision}`);
  }

  listMcpServers(): Promise<McpServerList> {
    return this.json("GET", "/api/admin/mcp");
  }

  addMcpServer(body: McpServerCreate): Promise<McpServer> {
    return this.json("POST", "/api/admin/mcp", body);
  }

  updateMcpServer(name: string, patch: McpServerPatch): Promise<McpServer> {
    return this.json("PATCH", `/api/admin/mcp/${enc(name)}`, patch);
  }

  async deleteMcpServer(name: string): Promise<void> {
    await this.request("DELETE", `/api/admin/mcp/${enc(name)}`, undefined, { Accept: JSON_TYPE });
  }

  // --- search and import ---------------------------------------------------------------------

  /** The user's conversations whose title or messages match `query`; 400 for a blank query. */
  search(
    query: string,
    options: { limit?: number; cursor?: string | null; signal?: AbortSignal } = {},
  ): Promise<SearchPage> {
    const params = new URLSearchParams({ q: query });
    if (options.limit) params.set("limit", String(options.limit));
    if (options.cursor) params.set("cursor", options.cursor);
    return this.json("GET", `/api/search?${params.toString()}`, undefined, { signal: options.signal });
  }

  /**
   * Import an export file (ours, ChatGPT's, LibreChat's) with upload progress (`transfer.ts`);
   * a 401 is reported like any other call's.
   */
  async importFile(file: Blob, options: Omit<UploadOptions, "baseUrl"> = {}): Promise<ImportResult> {
    try {
      return await uploadImport(file, { ...options, baseUrl: this.base });
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) this.reportUnauthenticated(error);
      throw error;
    }
  }

  // --- plumbing ----------------------------------------------------------------------------

  private async json<T>(method: string, path: string, body?: unknown, options?: RequestOptions): Promise<T> {
    const response = await this.request(method, path, body, { Accept: JSON_TYPE }, options);
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
      const response = await this.request(method, path, body, headers, { signal: connection.signal });
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
    options: RequestOptions = {},
  ): Promise<Response> {
    let response: Response;
    try {
      response = await this.fetchFn(this.base + path, {
        method,
        headers: body === undefined ? headers : { ...headers, "Content-Type": JSON_TYPE },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: options.signal,
        cache: "no-store",
        // fetch's default, said out loud: the session cookie goes to the page's own origin only.
        credentials: "same-origin",
      });
    } catch (error) {
      if (isAbort(error)) throw error;
      throw new NetworkError("The server could not be reached.", { cause: error });
    }
    if (response.ok) return response;
    const error = await toApiError(response);
    if (response.status === 401 && !options.expect401) this.reportUnauthenticated(error);
    throw error;
  }

  private reportUnauthenticated(error: ApiError): void {
    for (const listener of [...this.unauthenticated]) listener(error);
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
    case "reasoning":
      return typeof record.text === "string" ? { type: "reasoning", id, text: record.text } : null;
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
    case "done": {
      const done: RunDone = {
        status: typeof record.status === "string" && isFinalStatus(record.status) ? record.status : "complete",
        finish_reason: (record.finish_reason as string | null | undefined) ?? null,
        usage: (record.usage as Usage | null | undefined) ?? null,
      };
      if (Array.isArray(record.tool_calls)) {
        done.tool_calls = record.tool_calls.map(toToolCall).filter((call) => call !== null);
      }
      return { type: "done", id, done };
    }
    default:
      return toToolEvent(event.type, id, record);
  }
}
