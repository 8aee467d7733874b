/**
 * Tool calls in an answer, sans-IO: the data of a run's `tool_call`, `tool_decision` and
 * `tool_result` events read into typed events, those events applied to an answer's list of
 * calls (the stored `message.tool_calls` shape), the answer's text cut into the slices the
 * cards sit between, and what a card says about its call.
 *
 * Everything a tool call carries (its arguments, its result) comes from the model or from an MCP
 * server and is untrusted: this module only reads and reshapes it, it must never turn it into
 * HTML. It touches no DOM and does no IO.
 */

import type { ToolCall, ToolResult } from "./api";

export type ToolDecisionValue = NonNullable<ToolCall["decision"]>;
export type ToolApproval = NonNullable<ToolCall["approval"]>;

/** The three tool events of a run, in the run's id sequence like every other event. */
export type ToolEvent =
  /** The model called a function; `call` has no decision and no result yet. */
  | { type: "tool_call"; id: number; call: ToolCall }
  | { type: "tool_decision"; id: number; callId: string; decision: ToolDecisionValue }
  | { type: "tool_result"; id: number; callId: string; result: ToolResult };

const DECISIONS: readonly string[] = ["approved", "denied", "expired"] satisfies readonly ToolDecisionValue[];
const APPROVALS: readonly string[] = ["ask", "always"] satisfies readonly ToolApproval[];

const text = (value: unknown): string | null => (typeof value === "string" ? value : null);

/** A tool event from its SSE type and parsed data; null when the data is not what it should be. */
export function toToolEvent(type: string, id: number, record: Record<string, unknown>): ToolEvent | null {
  switch (type) {
    case "tool_call": {
      const call = toToolCall(record);
      return call === null ? null : { type, id, call: { ...call, decision: null, result: null } };
    }
    case "tool_decision": {
      const callId = text(record.id);
      const decision = text(record.decision);
      if (callId === null || decision === null || !DECISIONS.includes(decision)) return null;
      return { type, id, callId, decision: decision as ToolDecisionValue };
    }
    case "tool_result": {
      const callId = text(record.id);
      const content = text(record.content);
      if (callId === null || content === null) return null;
      return { type, id, callId, result: { content, is_error: record.is_error === true } };
    }
    default:
      return null;
  }
}

/**
 * A call as the server stores or sends it, every optional key filled (older messages carry only
 * id, name and arguments: the rest is null); null when it has no id or name.
 */
export function toToolCall(value: unknown): ToolCall | null {
  if (typeof value !== "object" || value === null) return null;
  const record = value as Record<string, unknown>;
  const id = text(record.id);
  const name = text(record.name);
  if (id === null || name === null) return null;
  const approval = text(record.approval);
  const decision = text(record.decision);
  const offset = record.offset;
  const result = record.result as Record<string, unknown> | null | undefined;
  return {
    id,
    name,
    arguments: text(record.arguments) ?? "",
    server: text(record.server),
    tool: text(record.tool),
    approval: approval !== null && APPROVALS.includes(approval) ? (approval as ToolApproval) : null,
    decision: decision !== null && DECISIONS.includes(decision) ? (decision as ToolDecisionValue) : null,
    offset: typeof offset === "number" && Number.isInteger(offset) && offset >= 0 ? offset : null,
    result:
      typeof result === "object" && result !== null && typeof result.content === "string"
        ? { content: result.content, is_error: result.is_error === true }
        : null,
  };
}

/** The calls after `event`: a new call appended, or the call it names given its decision or result. */
export function applyToolEvent(calls: readonly ToolCall[], event: ToolEvent): readonly ToolCall[] {
  switch (event.type) {
    case "tool_call":
      return [...calls.filter((c) => c.id !== event.call.id), event.call];
    case "tool_decision":
      return calls.map((c) => (c.id === event.callId ? { ...c, decision: event.decision } : c));
    case "tool_result":
      return calls.map((c) => (c.id === event.callId ? { ...c, result: event.result } : c));
  }
}

/**
 * The calls to show for a run resumed from its start over `previous` (the stored message's calls
 * so far), as `shownText` does for the text: the page never shows fewer cards, nor a card less far
 * along, than before, until the rebuilt list has caught up. A decision or a result, once known,
 * never goes away.
 */
export function mergeToolCalls(rebuilt: readonly ToolCall[], previous: readonly ToolCall[]): readonly ToolCall[] {
  if (previous.length === 0) return rebuilt;
  const byId = new Map(rebuilt.map((c) => [c.id, c]));
  let same = true; // caught up: the rebuilt list itself, its calls unchanged (memoized cards stay)
  const merged = previous.map((old) => {
    const now = byId.get(old.id);
    if (now === undefined) {
      same = false;
      return old;
    }
    byId.delete(old.id);
    if ((now.decision != null || old.decision == null) && (now.result != null || old.result == null)) return now;
    same = false;
    return { ...now, decision: now.decision ?? old.decision ?? null, result: now.result ?? old.result ?? null };
  });
  if (same) return rebuilt;
  return byId.size === 0 ? merged : [...merged, ...byId.values()];
}

// --- the answer with its cards ------------------------------------------------------------------

export type AnswerPart =
  | { readonly kind: "text"; readonly key: string; readonly text: string }
  | { readonly kind: "call"; readonly key: string; readonly call: ToolCall };

/**
 * The answer's text cut at its calls' offsets (Unicode code points, as the server counts them:
 * an emoji is one), each call between the slices. Calls without an offset go after the text; an
 * offset past the text (the text shown lags the calls) is the text's end. Keys stay the same as
 * the answer grows, so a slice already rendered is not rendered again.
 */
export function interleave(text: string, calls: readonly ToolCall[]): AnswerPart[] {
  if (calls.length === 0) return [{ kind: "text", key: "text", text }];
  const ordered = calls
    .map((call, index) => ({ call, index, at: call.offset ?? Number.POSITIVE_INFINITY }))
    .sort((a, b) => a.at - b.at || a.index - b.index);
  const parts: AnswerPart[] = [];
  let from = 0; // UTF-16 index where the next slice starts
  let scan = 0; // UTF-16 index reached by the code point count
  let points = 0;
  let after = "text";
  for (const { call, at } of ordered) {
    // One walk over the text, up to the last offset only: a long answer's tail is never counted.
    while (points < at && scan < text.length) {
      const code = text.charCodeAt(scan);
      scan += code >= 0xd800 && code <= 0xdbff && scan + 1 < text.length ? 2 : 1;
      points += 1;
    }
    if (scan > from) parts.push({ kind: "text", key: after, text: text.slice(from, scan) });
    from = scan;
    parts.push({ kind: "call", key: `call:${call.id}`, call });
    after = `text:${call.id}`;
  }
  if (from < text.length) parts.push({ kind: "text", key: after, text: text.slice(from) });
  return parts;
}

// --- what a card says ---------------------------------------------------------------------------

export type CardState = "waiting" | "running" | "done" | "failed" | "denied" | "expired" | "stopped";

/** The state of `call` in an answer; `live`: its run is still going. */
export function cardState(call: ToolCall, live: boolean): CardState {
  if (call.decision === "denied") return "denied";
  if (call.decision === "expired") return "expired";
  if (call.result) return call.result.is_error ? "failed" : "done";
  if (!live) return "stopped";
  return call.approval === "ask" && call.decision == null ? "waiting" : "running";
}

export const CARD_STATE_TEXT: Readonly<Record<CardState, string>> = {
  waiting: "Waiting for your approval",
  running: "Running…",
  done: "Done",
  failed: "Failed",
  denied: "Denied",
  expired: "Expired: not approved in time",
  stopped: "Not run",
};

/** "server › tool", or the function name the model used when it named no tool of ours. */
export function toolTitle(call: ToolCall): string {
  return call.server && call.tool ? `${call.server} › ${call.tool}` : call.name;
}

/** "server/tool", as conversations name tools; the function name for an unknown one. */
export function toolKey(call: ToolCall): string {
  return call.server && call.tool ? `${call.server}/${call.tool}` : call.name;
}

/** The arguments as indented JSON when they parse, else as the model wrote them. */
export function prettyArguments(args: string): string {
  if (args.trim() === "") return "{}";
  try {
    return JSON.stringify(JSON.parse(args), null, 2);
  } catch {
    return args;
  }
}

// --- the tools picker ---------------------------------------------------------------------------

export interface PickerTool {
  readonly key: string;
  readonly tool: string;
  readonly description: string;
  readonly approval: ToolApproval | null;
  readonly checked: boolean;
  /** Why it cannot be chosen now; null: it can. */
  readonly unavailable: string | null;
}

export interface PickerGroup {
  readonly server: string;
  readonly tools: readonly PickerTool[];
}

interface OfferedTool {
  readonly key: string;
  readonly server: string;
  readonly tool: string;
  readonly description: string;
  readonly approval: ToolApproval;
  readonly available: boolean;
}

/**
 * The picker's checkboxes, grouped by server in the order the server lists them. A chosen tool
 * the server no longer offers is listed too (checked, so it can be unchecked), marked as gone.
 */
export function pickerGroups(offered: readonly OfferedTool[], chosen: readonly string[]): PickerGroup[] {
  const groups = new Map<string, PickerTool[]>();
  const add = (server: string, item: PickerTool): void => {
    const list = groups.get(server) ?? [];
    list.push(item);
    groups.set(server, list);
  };
  const known = new Set<string>();
  for (const t of offered) {
    known.add(t.key);
    const checked = chosen.includes(t.key);
    add(t.server, {
      key: t.key,
      tool: t.tool,
      description: t.description,
      approval: t.approval,
      checked,
      unavailable: t.available ? null : "its server is not running",
    });
  }
  for (const key of chosen) {
    if (known.has(key)) continue;
    const slash = key.indexOf("/");
    const server = slash > 0 ? key.slice(0, slash) : key;
    add(server, {
      key,
      tool: slash > 0 ? key.slice(slash + 1) : key,
      description: "",
      approval: null,
      checked: true,
      unavailable: "no longer offered",
    });
  }
  return [...groups].map(([server, tools]) => ({ server, tools }));
}

/** The chosen keys with `key` turned on or off, in a stable order (as first chosen). */
export function toggledTools(chosen: readonly string[], key: string, on: boolean): string[] {
  const rest = chosen.filter((k) => k !== key);
  return on ? [...rest, key] : rest;
}

export const APPROVAL_TEXT: Readonly<Record<ToolApproval, string>> = {
  ask: "asks before each call",
  always: "runs without asking",
};
