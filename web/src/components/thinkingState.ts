/**
 * The Thinking block's state, as pure functions: which phase it is in, its label, and whether
 * it is open. While the model reasons the block is open, with a live counter; when the answer
 * starts it closes to "Thought for N s"; the reader may open or close it at any time, and that
 * choice holds until the phase changes. This module must never touch the DOM or a clock: the
 * caller passes the time.
 */

/** "thinking": the model is reasoning now; "thought": its answer started, or the run is over. */
export type ThinkingPhase = "thinking" | "thought";

export interface ThinkingFacts {
  /** The answer is being generated (a run is followed, or the message is still streaming). */
  readonly streaming: boolean;
  /** The answer's first token has arrived. */
  readonly answerStarted: boolean;
}

export function thinkingPhase({ streaming, answerStarted }: ThinkingFacts): ThinkingPhase {
  return streaming && !answerStarted ? "thinking" : "thought";
}

export interface ThinkingTimes {
  /** When reasoning started (ms since the epoch), if known. */
  readonly since: number | null;
  /** When the answer started (ms since the epoch), if known. */
  readonly answerSince: number | null;
  /** The stored duration, in seconds (a saved message's `reasoning_seconds`). */
  readonly storedSeconds: number | null;
  readonly now: number;
}

/** Whole seconds to show, or null when unknown: elapsed while thinking, the duration after. */
export function thinkingSeconds(phase: ThinkingPhase, times: ThinkingTimes): number | null {
  const { since, answerSince, storedSeconds, now } = times;
  if (phase === "thinking") return since === null ? null : Math.max(0, Math.floor((now - since) / 1000));
  if (storedSeconds !== null) return Math.max(0, Math.round(storedSeconds));
  if (since === null || answerSince === null) return null;
  return Math.max(0, Math.round((answerSince - since) / 1000));
}

export function thinkingLabel(phase: ThinkingPhase, seconds: number | null): string {
  if (phase === "thinking") return seconds === null ? "Thinking" : `Thinking (${seconds} s)`;
  if (seconds === null) return "Thought";
  return seconds < 1 ? "Thought for under 1 s" : `Thought for ${seconds} s`;
}

/** The reader's click, remembered for the phase it was made in; null: none. */
export interface DisclosureChoice {
  readonly phase: ThinkingPhase;
  readonly open: boolean;
}

/** Open while thinking and closed after, unless the reader chose otherwise in this phase. */
export function isOpen(choice: DisclosureChoice | null, phase: ThinkingPhase): boolean {
  return choice !== null && choice.phase === phase ? choice.open : phase === "thinking";
}

/** The choice after a click (or Enter, or Space) on the block's button. */
export function toggled(choice: DisclosureChoice | null, phase: ThinkingPhase): DisclosureChoice {
  return { phase, open: !isOpen(choice, phase) };
}
