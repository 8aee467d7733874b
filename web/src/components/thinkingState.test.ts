import { describe, expect, it } from "vitest";

import { type DisclosureChoice, isOpen, thinkingLabel, thinkingPhase, thinkingSeconds, toggled } from "./thinkingState";

describe("the Thinking block's phase and label", () => {
  it("is thinking only while streaming and before the answer's first token", () => {
    expect(thinkingPhase({ streaming: true, answerStarted: false })).toBe("thinking");
    expect(thinkingPhase({ streaming: true, answerStarted: true })).toBe("thought");
    expect(thinkingPhase({ streaming: false, answerStarted: false })).toBe("thought");
  });

  it("counts whole seconds while thinking, from when reasoning started", () => {
    const times = { since: 10_000, answerSince: null, storedSeconds: null };
    expect(thinkingSeconds("thinking", { ...times, now: 22_900 })).toBe(12);
    expect(thinkingLabel("thinking", 12)).toBe("Thinking (12 s)");
    // A clock a little behind the start never shows a negative count.
    expect(thinkingSeconds("thinking", { ...times, now: 9_000 })).toBe(0);
    expect(thinkingLabel("thinking", thinkingSeconds("thinking", { ...times, since: null, now: 1 }))).toBe("Thinking");
  });

  it("says how long it thought: the stored figure first, else from the live times", () => {
    expect(thinkingSeconds("thought", { since: 0, answerSince: 7_400, storedSeconds: null, now: 99_000 })).toBe(7);
    expect(thinkingSeconds("thought", { since: 0, answerSince: 7_400, storedSeconds: 31.6, now: 0 })).toBe(32);
    expect(thinkingSeconds("thought", { since: null, answerSince: null, storedSeconds: null, now: 0 })).toBeNull();
    expect(thinkingLabel("thought", 32)).toBe("Thought for 32 s");
    expect(thinkingLabel("thought", 0)).toBe("Thought for under 1 s");
    expect(thinkingLabel("thought", null)).toBe("Thought");
  });
});

describe("the Thinking block's disclosure", () => {
  it("is open while thinking and closes by itself when the answer starts", () => {
    expect(isOpen(null, "thinking")).toBe(true);
    expect(isOpen(null, "thought")).toBe(false);
  });

  it("opens and closes on the reader's click, in either phase", () => {
    let choice: DisclosureChoice | null = null;
    choice = toggled(choice, "thought");
    expect(isOpen(choice, "thought")).toBe(true);
    choice = toggled(choice, "thought");
    expect(isOpen(choice, "thought")).toBe(false);
    expect(isOpen(toggled(null, "thinking"), "thinking")).toBe(false);
  });

  it("forgets a choice made while thinking once the answer starts: it closes all the same", () => {
    // Closed, then opened again, while thinking: the answer's start still closes it.
    const reopened = toggled(toggled(null, "thinking"), "thinking");
    expect(isOpen(reopened, "thinking")).toBe(true);
    expect(isOpen(reopened, "thought")).toBe(false);
  });
});
