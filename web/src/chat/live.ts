/**
 * One run being followed: where its text stands (RunProgress), how its connection is, and the
 * pause between reconnect attempts. Owned and mutated by the RunFollower only.
 */

import type { ToolCall } from "../api";
import type { Connection } from "./state";
import { NO_PROGRESS, type RunProgress } from "./progress";

export interface Live {
  key: string;
  readonly conversationId: string;
  runId: string | null;
  progress: RunProgress;
  /** The content shown before this follower started (a resume over saved text). */
  previous: string;
  /** The reasoning shown before this follower started, as `previous` is for the answer. */
  previousReasoning: string;
  /** The tool calls shown before this follower started (the saved message's calls so far). */
  previousToolCalls: readonly ToolCall[];
  /**
   * When the model started reasoning, and when its answer started (ms since the epoch; null:
   * not yet, or never). For a run resumed from its start, reasoning is dated from the saved
   * message's creation (`startHint`), not from when its replayed events arrive.
   */
  reasoningSince: number | null;
  answerSince: number | null;
  startHint: number | null;
  retryMs: number | null;
  attempts: number;
  readonly controller: AbortController;
  connection: Connection;
  stopping: boolean;
  finished: boolean;
  dirty: boolean;
  wake: (() => void) | null;
  /** Placeholders added before the server knew the exchange; removed if it fails to start. */
  local: { userId: string | null; previousLeaf: string | null } | null;
  accepted: ((ok: boolean) => void) | null;
}

export function newLive(key: string, conversationId: string, local: Live["local"]): Live {
  return {
    key,
    conversationId,
    runId: null,
    progress: NO_PROGRESS,
    previous: "",
    previousReasoning: "",
    previousToolCalls: [],
    reasoningSince: null,
    answerSince: null,
    startHint: null,
    retryMs: null,
    attempts: 0,
    controller: new AbortController(),
    connection: "connecting",
    stopping: false,
    finished: false,
    dirty: false,
    wake: null,
    local,
    accepted: null,
  };
}

/**
 * Wait before reconnect attempt `live.attempts`: the listed delays first, then the server's
 * `retry:`. Resolves false if the run stops being followed meanwhile; `live.wake()` (the browser
 * came back online) ends the wait at once.
 */
export function pauseBeforeReconnect(live: Live, delays: readonly number[]): Promise<boolean> {
  let ms = delays[Math.min(live.attempts - 1, delays.length - 1)] ?? 1000;
  if (live.retryMs !== null && live.attempts >= delays.length) ms = live.retryMs;
  return new Promise((resolve) => {
    const signal = live.controller.signal;
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      live.wake = null;
      resolve(ok);
    };
    const onAbort = (): void => done(false);
    const timer = setTimeout(() => done(true), ms);
    signal.addEventListener("abort", onAbort, { once: true });
    live.wake = () => done(true);
  });
}
