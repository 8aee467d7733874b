/**
 * One tool call in an answer, as a card: the tool (`server › tool`), its arguments, its state
 * (waiting for your approval, running, done, failed, denied, expired, not run) and its result;
 * Approve and Deny while it waits. A real <button aria-expanded aria-controls> opens and closes
 * it: open while it waits or runs, closed once it is over, unless the reader chose otherwise.
 *
 * Arguments and results are untrusted (the model wrote the one, an MCP server the other). The
 * arguments are React text in a <pre>; the result reaches the page only through <Markdown>, the
 * same sanitized rendering as answers. This component must never put either in as HTML.
 */

import { memo, useId, useState } from "react";

import { ApiError, type ToolCall } from "../api";
import { describe } from "../chat/state";
import { CARD_STATE_TEXT, cardState, prettyArguments, toolKey, toolTitle } from "../tools";
import { Icon } from "./Icon";
import { Markdown } from "./Markdown";

export type Decide = (runId: string, callId: string, decision: "approve" | "deny") => Promise<void>;

interface Props {
  call: ToolCall;
  /** The answer's run is still going (a call without a result may still get one). */
  live: boolean;
  runId: string | null;
  onDecide: Decide;
}

export const ToolCallCard = memo(function ToolCallCard({ call, live, runId, onDecide }: Props) {
  const state = cardState(call, live);
  const [choice, setChoice] = useState<boolean | null>(null);
  const open = choice ?? (state === "waiting" || state === "running");
  const bodyId = useId();
  const key = toolKey(call);
  return (
    <div className={`tool-call tool-${state}`} role="group" aria-label={`Tool call ${key}`}>
      <div className="tool-call-head">
        <button
          type="button"
          className="tool-call-toggle"
          aria-expanded={open}
          aria-controls={bodyId}
          onClick={() => setChoice(!open)}
        >
          <span className="tool-chevron">
            <Icon size={14} round>
              <path d="m9 6 6 6-6 6" />
            </Icon>
          </span>
          <span className="tool-call-name">{toolTitle(call)}</span>
        </button>
        <span className="tool-call-state" role="status">
          {CARD_STATE_TEXT[state]}
        </span>
      </div>
      <div id={bodyId} className="tool-call-body" hidden={!open}>
        {open && <CallDetails call={call} />}
      </div>
      {state === "waiting" && <Decision call={call} runId={runId} onDecide={onDecide} />}
    </div>
  );
});

function CallDetails({ call }: { call: ToolCall }) {
  const result = call.result;
  return (
    <>
      <p className="tool-call-label">Arguments</p>
      <pre className="tool-call-args" tabIndex={0}>
        <code>{prettyArguments(call.arguments)}</code>
      </pre>
      {result && (
        <div className={`tool-call-result${result.is_error ? " is-error" : ""}`}>
          <p className="tool-call-label">{result.is_error ? "Error" : "Result"}</p>
          {result.content === "" ? <p className="muted">(empty)</p> : <Markdown text={result.content} />}
        </div>
      )}
    </>
  );
}

/** Approve and Deny: disabled while the request is in flight, and after it (the events follow). */
function Decision({ call, runId, onDecide }: { call: ToolCall; runId: string | null; onDecide: Decide }) {
  const [busy, setBusy] = useState(false);
  const [sent, setSent] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const decide = async (decision: "approve" | "deny"): Promise<void> => {
    if (runId === null || busy || sent) return;
    setBusy(true);
    setError(null);
    try {
      await onDecide(runId, call.id, decision);
      setSent(true);
    } catch (failure) {
      // 409: decided already (another tab, or it expired): its events are on their way.
      if (failure instanceof ApiError && failure.status === 409) setSent(true);
      else setError(describe(failure, "The decision could not be sent."));
    }
    setBusy(false);
  };
  const disabled = runId === null || busy || sent;
  return (
    <div className="tool-call-decision">
      <button type="button" className="button primary" disabled={disabled} onClick={() => void decide("approve")}>
        Approve
      </button>
      <button type="button" className="button" disabled={disabled} onClick={() => void decide("deny")}>
        Deny
      </button>
      {error && (
        <p className="tool-call-error" role="alert">
          {error}
        </p>
      )}
    </div>
  );
}
