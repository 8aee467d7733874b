import { describe, expect, it } from "vitest";

import type { ToolCall, ToolInfo } from "./api";
import {
  applyToolEvent,
  cardState,
  interleave,
  mergeToolCalls,
  pickerGroups,
  prettyArguments,
  toggledTools,
  toolKey,
  toolTitle,
  toToolCall,
  toToolEvent,
} from "./tools";

const call = (id: string, offset: number | null, extra: Partial<ToolCall> = {}): ToolCall => ({
  id,
  name: `demo__${id}`,
  arguments: "{}",
  server: "demo",
  tool: id,
  approval: "ask",
  decision: null,
  offset,
  result: null,
  ...extra,
});

describe("tool events", () => {
  it("reads a tool_call's data into a call with no decision and no result yet", () => {
    const data = {
      id: "call_1",
      name: "fs__read",
      arguments: '{"path":"a.txt"}',
      server: "fs",
      tool: "read",
      approval: "ask",
      offset: 12,
    };
    expect(toToolEvent("tool_call", 3, data)).toEqual({
      type: "tool_call",
      id: 3,
      call: { ...data, decision: null, result: null },
    });
  });

  it("reads decisions and results, and refuses malformed data", () => {
    expect(toToolEvent("tool_decision", 4, { id: "c", decision: "denied" })).toEqual({
      type: "tool_decision",
      id: 4,
      callId: "c",
      decision: "denied",
    });
    expect(toToolEvent("tool_result", 5, { id: "c", content: "ok", is_error: true })).toEqual({
      type: "tool_result",
      id: 5,
      callId: "c",
      result: { content: "ok", is_error: true },
    });
    expect(toToolEvent("tool_decision", 4, { id: "c", decision: "maybe" })).toBeNull();
    expect(toToolEvent("tool_result", 5, { id: "c" })).toBeNull();
    expect(toToolEvent("tool_call", 3, { name: "x" })).toBeNull();
    expect(toToolEvent("tool_other", 3, { id: "c" })).toBeNull();
  });

  it("fills the keys an older stored call lacks with null, and drops nonsense values", () => {
    expect(toToolCall({ id: "c", name: "f", arguments: "{}" })).toEqual({
      id: "c",
      name: "f",
      arguments: "{}",
      server: null,
      tool: null,
      approval: null,
      decision: null,
      offset: null,
      result: null,
    });
    expect(toToolCall({ id: "c", name: "f", offset: -1, approval: "sometimes" })).toMatchObject({
      offset: null,
      approval: null,
    });
    expect(toToolCall({ name: "f" })).toBeNull();
  });

  it("applies a call, its decision and its result to the answer's list", () => {
    let calls: readonly ToolCall[] = [];
    calls = applyToolEvent(calls, { type: "tool_call", id: 1, call: call("a", 0) });
    calls = applyToolEvent(calls, { type: "tool_call", id: 2, call: call("b", 0, { approval: "always" }) });
    calls = applyToolEvent(calls, { type: "tool_decision", id: 3, callId: "a", decision: "approved" });
    calls = applyToolEvent(calls, {
      type: "tool_result",
      id: 4,
      callId: "a",
      result: { content: "x", is_error: false },
    });
    expect(calls.map((c) => [c.id, c.decision, c.result?.content ?? null])).toEqual([
      ["a", "approved", "x"],
      ["b", null, null],
    ]);
  });

  it("never shows fewer calls, nor a call less far along, than before a resume", () => {
    const previous = [call("a", 0, { decision: "approved", result: { content: "r", is_error: false } }), call("b", 5)];
    // The replay has only reached a's call so far.
    const rebuilt = [call("a", 0)];
    const merged = mergeToolCalls(rebuilt, previous);
    expect(merged.map((c) => c.id)).toEqual(["a", "b"]);
    expect(merged[0]).toMatchObject({ decision: "approved", result: { content: "r" } });
    // Caught up and beyond: a new call the saved message did not have yet is shown too.
    const further = mergeToolCalls([...previous, call("c", 9)], previous);
    expect(further.map((c) => c.id)).toEqual(["a", "b", "c"]);
    expect(mergeToolCalls(rebuilt, [])).toBe(rebuilt);
    // Caught up: the rebuilt list as it is, so cards already drawn are not drawn again.
    const caughtUp = [...previous];
    expect(mergeToolCalls(caughtUp, previous)).toBe(caughtUp);
  });
});

describe("interleave", () => {
  it("puts each card at its offset in code points, astral characters counting one", () => {
    // "👋 hi" is 4 code points but 5 UTF-16 units: a UTF-16 cut would split the text wrongly.
    const text = "👋 hi😀, then done";
    const parts = interleave(text, [call("a", 4), call("b", 5)]);
    expect(parts.map((p) => (p.kind === "text" ? `text:${p.text}` : `call:${p.call.id}`))).toEqual([
      "text:👋 hi",
      "call:a",
      "text:😀",
      "call:b",
      "text:, then done",
    ]);
    expect(parts.map((p) => (p.kind === "text" ? p.text : "")).join("")).toBe(text);
  });

  it("keeps calls made at one place together, and in call order", () => {
    const parts = interleave("Let me check.Done.", [call("b", 13), call("a", 13)]);
    expect(parts.map((p) => (p.kind === "call" ? p.call.id : p.text))).toEqual(["Let me check.", "b", "a", "Done."]);
  });

  it("puts a card at the start, at the end, and after the text when it has no offset", () => {
    expect(interleave("Hi", [call("a", 0)]).map((p) => p.kind)).toEqual(["call", "text"]);
    expect(interleave("Hi", [call("a", 2)]).map((p) => p.kind)).toEqual(["text", "call"]);
    expect(interleave("Hi", [call("a", 99)]).map((p) => p.kind)).toEqual(["text", "call"]);
    expect(
      interleave("Hi", [call("a", null), call("b", 1)]).map((p) => (p.kind === "call" ? p.call.id : p.text)),
    ).toEqual(["H", "b", "i", "a"]);
  });

  it("gives each slice a key that does not change as the answer grows", () => {
    const before = interleave("Looking", [call("a", 7)]);
    const after = interleave("Looking it up. Found it", [call("a", 7)]);
    expect(before.map((p) => p.key)).toEqual(["text", "call:a"]);
    expect(after.map((p) => p.key)).toEqual(["text", "call:a", "text:a"]);
    expect(interleave("plain", []).map((p) => p.key)).toEqual(["text"]);
  });
});

describe("card state", () => {
  it("follows the call from waiting to its end", () => {
    expect(cardState(call("a", 0), true)).toBe("waiting");
    expect(cardState(call("a", 0, { decision: "approved" }), true)).toBe("running");
    expect(cardState(call("a", 0, { approval: "always" }), true)).toBe("running");
    expect(cardState(call("a", 0, { result: { content: "ok", is_error: false } }), true)).toBe("done");
    expect(cardState(call("a", 0, { result: { content: "boom", is_error: true } }), false)).toBe("failed");
    expect(
      cardState(call("a", 0, { decision: "denied", result: { content: "The user denied", is_error: true } }), true),
    ).toBe("denied");
    expect(cardState(call("a", 0, { decision: "expired" }), false)).toBe("expired");
    // The run ended (stopped, failed) before the call got a result: it never ran.
    expect(cardState(call("a", 0), false)).toBe("stopped");
    expect(cardState(call("a", 0, { decision: "approved" }), false)).toBe("stopped");
  });

  it("names a known tool by server and tool, an unknown one by the model's function name", () => {
    expect(toolTitle(call("echo", 0))).toBe("demo › echo");
    expect(toolKey(call("echo", 0))).toBe("demo/echo");
    const unknown = call("x", 0, { name: "made_up", server: null, tool: null });
    expect(toolTitle(unknown)).toBe("made_up");
    expect(toolKey(unknown)).toBe("made_up");
  });

  it("shows arguments as indented JSON when they parse, else as written", () => {
    expect(prettyArguments('{"a":1,"b":[true]}')).toBe('{\n  "a": 1,\n  "b": [\n    true\n  ]\n}');
    expect(prettyArguments('{"a":')).toBe('{"a":');
    expect(prettyArguments("")).toBe("{}");
  });
});

describe("tools picker", () => {
  const info = (key: string, extra: Partial<ToolInfo> = {}): ToolInfo => {
    const [server = "", tool = ""] = key.split("/");
    return { key, server, tool, description: `${tool} things`, approval: "ask", available: true, ...extra };
  };

  it("groups tools by server, checked as chosen, a stopped server's tools disabled with why", () => {
    const groups = pickerGroups(
      [info("fs/read"), info("web/get", { available: false }), info("fs/write", { approval: "always" })],
      ["fs/write", "gone/tool"],
    );
    expect(groups.map((g) => [g.server, g.tools.map((t) => `${t.key}:${t.checked}:${t.unavailable ?? "ok"}`)])).toEqual(
      [
        ["fs", ["fs/read:false:ok", "fs/write:true:ok"]],
        ["web", ["web/get:false:its server is not running"]],
        ["gone", ["gone/tool:true:no longer offered"]],
      ],
    );
  });

  it("turns a key on and off, keeping the others", () => {
    expect(toggledTools(["a/x"], "b/y", true)).toEqual(["a/x", "b/y"]);
    expect(toggledTools(["a/x", "b/y"], "a/x", false)).toEqual(["b/y"]);
    expect(toggledTools(["a/x"], "a/x", true)).toEqual(["a/x"]);
  });
});
