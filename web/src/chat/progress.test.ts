import { describe, expect, it } from "vitest";

import type { RunEvent } from "../api";
import {
  advance,
  NO_PROGRESS,
  type RunProgress,
  resumeFrom,
  shownReasoning,
  shownText,
  shownToolCalls,
} from "./progress";

const run: RunEvent = {
  type: "run",
  id: 0,
  run: { run_id: "r", conversation_id: "c", user_message_id: "u", message_id: "m", model: "demo" },
};
const delta = (id: number, text: string): RunEvent => ({ type: "delta", id, text });
const done: RunEvent = {
  type: "done",
  id: 4,
  done: { status: "complete", finish_reason: "stop", usage: null },
};

function apply(events: RunEvent[], from: RunProgress = NO_PROGRESS): RunProgress {
  let progress = from;
  for (const event of events) progress = advance(progress, event) ?? progress;
  return progress;
}

describe("run progress", () => {
  it("builds the text from deltas and remembers the last id", () => {
    const p = apply([run, delta(1, "Hel"), delta(2, "lo")]);
    expect(p.text).toBe("Hello");
    expect(p.lastEventId).toBe(2);
    expect(p.started?.message_id).toBe("m");
    expect(resumeFrom(p)).toBe(2);
  });

  it("ignores replayed events, so a reconnect never duplicates text", () => {
    const before = apply([run, delta(1, "Hel"), delta(2, "lo")]);
    // The server replays from an older id: 1 and 2 again, then new ones.
    const after = apply([delta(1, "Hel"), delta(2, "lo"), delta(3, " world"), done], before);
    expect(after.text).toBe("Hello world");
    expect(after.done?.status).toBe("complete");
    expect(advance(after, delta(3, " world"))).toBeNull();
  });

  it("resumes from the start when nothing was applied", () => {
    expect(resumeFrom(NO_PROGRESS)).toBeNull();
  });

  it("rebuilds the text when followed from the start, showing the saved text until caught up", () => {
    const saved = "Hello wo";
    let p = apply([run, delta(1, "Hel")]);
    expect(shownText(p, saved)).toBe(saved);
    p = apply([delta(2, "lo"), delta(3, " world")], p);
    expect(shownText(p, saved)).toBe("Hello world");
  });

  it("shows the rebuilt text once done, even if shorter", () => {
    const p = apply([run, delta(1, "Hi"), done]);
    expect(shownText(p, "something longer")).toBe("Hi");
  });

  it("keeps the error event", () => {
    const p = apply([
      run,
      delta(1, "partial"),
      { type: "error", id: 2, error: { code: "upstream_status", message: "boom", retryable: true } },
    ]);
    expect(p.error?.message).toBe("boom");
    expect(p.text).toBe("partial");
  });
});

describe("run progress with reasoning", () => {
  const reasoning = (id: number, text: string): RunEvent => ({ type: "reasoning", id, text });

  it("gathers reasoning apart from the answer, in the same id sequence", () => {
    const p = apply([run, reasoning(1, "Let me "), reasoning(2, "think."), delta(3, "Yes.")]);
    expect(p.reasoning).toBe("Let me think.");
    expect(p.text).toBe("Yes.");
    expect(resumeFrom(p)).toBe(3);
  });

  it("ignores a replayed reasoning event, so a reconnect never duplicates thinking", () => {
    const before = apply([run, reasoning(1, "a"), reasoning(2, "b")]);
    const after = apply([reasoning(1, "a"), reasoning(2, "b"), reasoning(3, "c"), delta(4, "!")], before);
    expect(after.reasoning).toBe("abc");
    expect(after.text).toBe("!");
    expect(advance(after, reasoning(2, "b"))).toBeNull();
  });

  it("rebuilds the reasoning from the run event, showing the saved reasoning until caught up", () => {
    const saved = "I think";
    let p = apply([reasoning(1, "old")]);
    p = apply([{ ...run, id: 2 }, reasoning(3, "I ")], p);
    expect(p.reasoning).toBe("I ");
    expect(shownReasoning(p, saved)).toBe(saved);
    p = apply([reasoning(4, "think hard")], p);
    expect(shownReasoning(p, saved)).toBe("I think hard");
  });
});

describe("run progress with tool calls", () => {
  const call: RunEvent = {
    type: "tool_call",
    id: 2,
    call: {
      id: "c1",
      name: "demo__echo",
      arguments: "{}",
      server: "demo",
      tool: "echo",
      approval: "ask",
      offset: 3,
      decision: null,
      result: null,
    },
  };
  const result: RunEvent = { type: "tool_result", id: 3, callId: "c1", result: { content: "ok", is_error: false } };

  it("gathers calls by id once, and starts them over with the run's first event", () => {
    const p = apply([run, delta(1, "Hi!"), call, result, call, result]);
    expect(p.toolCalls).toHaveLength(1);
    expect(p.toolCalls[0]?.result).toEqual({ content: "ok", is_error: false });
    expect(apply([run], { ...p, lastEventId: -1 }).toolCalls).toEqual([]);
  });

  it("shows the saved calls until the rebuilt ones have caught up, then the run's own", () => {
    const saved = apply([run, delta(1, "Hi!"), call, result]).toolCalls;
    const replaying = apply([run, delta(1, "Hi!")]);
    expect(shownToolCalls(replaying, saved)).toEqual(saved);
    const finished = apply([call, result, { ...done, id: 5 }], replaying);
    // Over: the run's own list, even if an older view had a call the run never made.
    const stale = { ...call.call, id: "c9" };
    expect(shownToolCalls(finished, [...saved, stale])).toEqual(saved);
    expect(shownToolCalls(replaying, [...saved, stale]).map((c) => c.id)).toEqual(["c1", "c9"]);
  });
});
