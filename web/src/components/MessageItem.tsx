import { memo, useMemo, useState } from "react";

import { errorText, type Message, type ToolCall } from "../api";
import type { LiveView } from "../chat/core";
import { interleave } from "../tools";
import { copyText } from "./clipboard";
import { Markdown } from "./Markdown";
import { Icon } from "./Icon";
import { Thinking } from "./Thinking";
import { type Decide, ToolCallCard } from "./ToolCallCard";

export interface MessageActions {
  onEdit(messageId: string, content: string): Promise<boolean>;
  onRegenerate(messageId: string): void;
  onRetry(messageId: string): void;
  onSibling(messageId: string, offset: number): void;
  /** Approve or deny a tool call waiting for a decision (rejects when the server refuses). */
  onToolDecision: Decide;
}

interface Props {
  message: Message;
  siblingIndex: number;
  siblingCount: number;
  isLast: boolean;
  live: LiveView | undefined;
  /** A run is live somewhere in this conversation: no edits, no regenerations meanwhile. */
  busy: boolean;
  actions: MessageActions;
}

export const MessageItem = memo(function MessageItem(props: Props) {
  const { message } = props;
  return message.role === "user" ? <UserMessage {...props} /> : <AssistantMessage {...props} />;
});

function UserMessage({ message, siblingIndex, siblingCount, busy, actions }: Props) {
  const [editing, setEditing] = useState<string | null>(null);
  const [saving, setSaving] = useState(false);

  if (editing !== null) {
    const save = async (): Promise<void> => {
      if (editing.trim() === "" || saving) return;
      setSaving(true);
      const ok = await actions.onEdit(message.id, editing);
      setSaving(false);
      if (ok) setEditing(null);
    };
    return (
      <article className="message user editing" aria-label="Your message" data-message-id={message.id} tabIndex={-1}>
        <textarea
          className="edit-box"
          aria-label="Edit message"
          value={editing}
          autoFocus
          rows={Math.min(12, Math.max(2, editing.split("\n").length))}
          onChange={(e) => setEditing(e.target.value)}
          onKeyDown={(e) => {
            if (e.key === "Enter" && !e.shiftKey && !e.nativeEvent.isComposing) {
              e.preventDefault();
              void save();
            } else if (e.key === "Escape") {
              setEditing(null);
            }
          }}
        />
        <div className="edit-actions">
          <button type="button" className="button" onClick={() => setEditing(null)}>
            Cancel
          </button>
          <button
            type="button"
            className="button primary"
            disabled={editing.trim() === "" || saving || busy}
            onClick={() => void save()}
          >
            Save and send
          </button>
        </div>
      </article>
    );
  }

  return (
    <article className="message user" aria-label="Your message" data-message-id={message.id} tabIndex={-1}>
      <div className="bubble">{message.content}</div>
      <div className="message-actions">
        <SiblingNav message={message} index={siblingIndex} count={siblingCount} disabled={busy} actions={actions} />
        <CopyButton text={message.content} />
        <button
          type="button"
          className="icon-button"
          aria-label="Edit"
          title="Edit"
          disabled={busy}
          onClick={() => setEditing(message.content)}
        >
          <EditIcon />
        </button>
      </div>
    </article>
  );
}

function AssistantMessage({ message, siblingIndex, siblingCount, isLast, live, busy, actions }: Props) {
  const streaming = live !== undefined || message.status === "streaming";
  const failed = message.status === "error" || message.status === "stopped" || message.status === "interrupted";
  const lost = live?.connection === "lost";
  const reasoning = message.reasoning ?? "";
  const calls = message.tool_calls ?? NO_CALLS;
  return (
    <article
      className="message assistant"
      aria-label="Answer"
      aria-busy={streaming}
      data-message-id={message.id}
      tabIndex={-1}
    >
      {reasoning !== "" && (
        <Thinking
          reasoning={reasoning}
          streaming={streaming && !lost}
          answerStarted={message.content !== "" || (live?.answerSince ?? null) !== null}
          since={live?.reasoningSince ?? null}
          answerSince={live?.answerSince ?? null}
          storedSeconds={message.reasoning_seconds ?? null}
        />
      )}
      {message.content === "" && calls.length === 0 && streaming && !lost ? (
        reasoning === "" && (
          <div className="thinking" aria-label="Generating">
            <span />
            <span />
            <span />
          </div>
        )
      ) : calls.length === 0 ? (
        <Markdown text={message.content} />
      ) : (
        <AnswerWithCalls
          text={message.content}
          calls={calls}
          live={streaming}
          generating={streaming && !lost}
          runId={live?.runId ?? message.run_id}
          onDecide={actions.onToolDecision}
        />
      )}
      <StatusLine message={message} live={live} />
      {(failed || lost) && (
        <div className="answer-problem" role="alert">
          <span>{problemText(message, lost)}</span>
          <button type="button" className="button" disabled={busy && !lost} onClick={() => actions.onRetry(message.id)}>
            Retry
          </button>
        </div>
      )}
      {!streaming && (
        <div className="message-actions">
          <SiblingNav message={message} index={siblingIndex} count={siblingCount} disabled={busy} actions={actions} />
          <CopyButton text={message.content} />
          {isLast && (
            <button
              type="button"
              className="icon-button"
              aria-label="Regenerate"
              title="Regenerate"
              disabled={busy}
              onClick={() => actions.onRegenerate(message.id)}
            >
              <RegenerateIcon />
            </button>
          )}
          <Usage message={message} />
        </div>
      )}
    </article>
  );
}

const NO_CALLS: readonly ToolCall[] = [];

/** The answer's text slices with its tool calls' cards between them, each at its offset. */
function AnswerWithCalls({
  text,
  calls,
  live,
  generating,
  runId,
  onDecide,
}: {
  text: string;
  calls: readonly ToolCall[];
  live: boolean;
  /** The run is live and its stream followed: say so when the model works after a call. */
  generating: boolean;
  runId: string | null;
  onDecide: Decide;
}) {
  const parts = useMemo(() => interleave(text, calls), [text, calls]);
  const last = parts.at(-1);
  // The last call is over and the model has not written since: it is working on its next step.
  const next = generating && last?.kind === "call" && (last.call.result != null || last.call.decision === "denied");
  return (
    <>
      {parts.map((part) =>
        part.kind === "text" ? (
          <Markdown key={part.key} text={part.text} />
        ) : (
          <ToolCallCard key={part.key} call={part.call} live={live} runId={runId} onDecide={onDecide} />
        ),
      )}
      {next && (
        <div className="thinking" aria-label="Generating">
          <span />
          <span />
          <span />
        </div>
      )}
    </>
  );
}

function problemText(message: Message, lost: boolean): string {
  if (lost) return "The connection to the server was lost.";
  switch (message.status) {
    case "stopped":
      return "Stopped.";
    case "interrupted":
      return "Interrupted: the server stopped before the answer was finished.";
    default:
      return errorText(message.error) || "The answer failed.";
  }
}

function StatusLine({ message, live }: { message: Message; live: LiveView | undefined }) {
  let text = "";
  if (live?.connection === "reconnecting") text = "Connection lost, reconnecting…";
  else if (live?.stopping) text = "Stopping…";
  else if (!live && message.status === "length") text = "The answer reached its length limit.";
  if (text === "") return null;
  return (
    <p className="status-line" role="status">
      {text}
    </p>
  );
}

function Usage({ message }: { message: Message }) {
  const usage = message.usage;
  if (!usage && !message.model) return null;
  return (
    <span className="usage" title={usage ? `${usage.total_tokens} tokens in total` : undefined}>
      {message.model && <span className="usage-model">{message.model}</span>}
      {usage && (
        <span>
          {usage.prompt_tokens} in · {usage.completion_tokens} out
        </span>
      )}
    </span>
  );
}

function SiblingNav({
  message,
  index,
  count,
  disabled,
  actions,
}: {
  message: Message;
  index: number;
  count: number;
  disabled: boolean;
  actions: MessageActions;
}) {
  if (count < 2) return null;
  return (
    <span className="sibling-nav" role="group" aria-label="Versions">
      <button
        type="button"
        className="icon-button"
        aria-label="Previous version"
        disabled={disabled || index === 0}
        onClick={() => actions.onSibling(message.id, -1)}
      >
        ‹
      </button>
      <span className="sibling-count">
        {index + 1}/{count}
      </span>
      <button
        type="button"
        className="icon-button"
        aria-label="Next version"
        disabled={disabled || index === count - 1}
        onClick={() => actions.onSibling(message.id, +1)}
      >
        ›
      </button>
    </span>
  );
}

function CopyButton({ text }: { text: string }) {
  const [copied, setCopied] = useState(false);
  return (
    <button
      type="button"
      className="icon-button"
      aria-label="Copy"
      title={copied ? "Copied" : "Copy"}
      onClick={() => {
        void copyText(text).then((ok) => {
          if (!ok) return;
          setCopied(true);
          setTimeout(() => setCopied(false), 1500);
        });
      }}
    >
      {copied ? <CheckIcon /> : <CopyIcon />}
    </button>
  );
}

function CopyIcon() {
  return (
    <Icon size={16} round>
      <rect x="9" y="9" width="12" height="12" rx="2" />
      <path d="M5 15H4a1 1 0 0 1-1-1V4a1 1 0 0 1 1-1h10a1 1 0 0 1 1 1v1" />
    </Icon>
  );
}

function CheckIcon() {
  return (
    <Icon size={16} round>
      <path d="M20 6 9 17l-5-5" />
    </Icon>
  );
}

function EditIcon() {
  return (
    <Icon size={16} round>
      <path d="M12 20h9" />
      <path d="M16.5 3.5a2.1 2.1 0 0 1 3 3L7 19l-4 1 1-4Z" />
    </Icon>
  );
}

function RegenerateIcon() {
  return (
    <Icon size={16} round>
      <path d="M21 12a9 9 0 1 1-3-6.7L21 8" />
      <path d="M21 3v5h-5" />
    </Icon>
  );
}
