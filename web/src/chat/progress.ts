/**
 * What one run has produced so far, advanced event by event: the resume bookkeeping.
 *
 * Every run event carries its sequence number as `id`. An event whose id is not above the last
 * one applied is a replay (a reconnect asked for too much, or a second stream overlapped) and
 * is ignored, so text is never duplicated. A stream followed from the start replays the `run`
 * event (id 0) and every delta, so the text is rebuilt from nothing: the caller shows what it had
 * until the rebuilt text has caught up (`shownText`). Reasoning events (the model's thinking)
 * share the id sequence and are gathered the same way, apart from the answer's text. Tool events
 * (`tool_call`, `tool_decision`, `tool_result`) build the answer's calls in the stored shape, so
 * a run followed from its start rebuilds the same cards.
 */

import type { ErrorInfo, RunDone, RunEvent, RunStarted, ToolCall } from "../api";
import { applyToolEvent, mergeToolCalls } from "../tools";

export interface RunProgress {
  /** The id of the last event applied; -1 before any. Sent as Last-Event-ID on reconnect. */
  readonly lastEventId: number;
  readonly text: string;
  /** The model's thinking so far; "" when it has none (a plain answer). */
  readonly reasoning: string;
  /** The model's tool calls so far, in call order, as `message.tool_calls` stores them. */
  readonly toolCalls: readonly ToolCall[];
  readonly started: RunStarted | null;
  readonly error: ErrorInfo | null;
  readonly done: RunDone | null;
}

export const NO_PROGRESS: RunProgress = {
  lastEventId: -1,
  text: "",
  reasoning: "",
  toolCalls: [],
  started: null,
  error: null,
  done: null,
};

/** The progress after `event`, or null when the event was already applied (a replay). */
export function advance(progress: RunProgress, event: RunEvent): RunProgress | null {
  if (event.id <= progress.lastEventId) return null;
  const lastEventId = event.id;
  switch (event.type) {
    case "run":
      // The first event of a run; from here the text is rebuilt from its deltas.
      return { ...progress, lastEventId, started: event.run, text: "", reasoning: "", toolCalls: [] };
    case "delta":
      return { ...progress, lastEventId, text: progress.text + event.text };
    case "reasoning":
      return { ...progress, lastEventId, reasoning: progress.reasoning + event.text };
    case "tool_call":
    case "tool_decision":
    case "tool_result":
      return { ...progress, lastEventId, toolCalls: applyToolEvent(progress.toolCalls, event) };
    case "error":
      return { ...progress, lastEventId, error: event.error };
    case "done":
      return { ...progress, lastEventId, done: event.done };
  }
}

/** The id to resume after: null = follow from the start (nothing applied yet). */
export function resumeFrom(progress: RunProgress): number | null {
  return progress.lastEventId >= 0 ? progress.lastEventId : null;
}

/**
 * The text to show for a run resumed over `previous` (what the page showed before, e.g. the
 * content saved in the database): never shorter than that until the run has finished, so a
 * resume from the start does not flash an empty answer.
 */
export function shownText(progress: RunProgress, previous: string): string {
  return caughtUp(progress, progress.text, previous);
}

/** The reasoning to show, over what was shown before, as `shownText` does for the answer. */
export function shownReasoning(progress: RunProgress, previous: string): string {
  return caughtUp(progress, progress.reasoning, previous);
}

/**
 * The tool calls to show over those shown before: never fewer, nor less far along, until the
 * run has finished (then the run's own list).
 */
export function shownToolCalls(progress: RunProgress, previous: readonly ToolCall[]): readonly ToolCall[] {
  return progress.done !== null ? progress.toolCalls : mergeToolCalls(progress.toolCalls, previous);
}

function caughtUp(progress: RunProgress, rebuilt: string, previous: string): string {
  if (progress.done !== null || rebuilt.length >= previous.length) return rebuilt;
  return previous;
}
