/**
 * The Thinking block above an answer: the model's reasoning, as a disclosure. While the model
 * reasons it is open, labelled "Thinking (12 s)" with a live counter, its text streaming in;
 * when the answer starts it closes to "Thought for N s". A real <button aria-expanded
 * aria-controls> opens and closes it (click, Enter, Space). The reasoning is untrusted model
 * output: it reaches the page only through <Markdown>, like an answer. A closed block renders no
 * Markdown at all, so a long stored reasoning costs nothing until it is opened. The state logic
 * is in thinkingState.ts.
 */

import { memo, useEffect, useId, useState } from "react";

import { Icon } from "./Icon";
import { Markdown } from "./Markdown";
import {
  type DisclosureChoice,
  isOpen,
  thinkingLabel,
  thinkingPhase,
  type ThinkingPhase,
  thinkingSeconds,
  toggled,
} from "./thinkingState";

interface Props {
  reasoning: string;
  streaming: boolean;
  answerStarted: boolean;
  /** When reasoning started and the answer started (ms since the epoch), while a run is live. */
  since: number | null;
  answerSince: number | null;
  /** A saved message's `reasoning_seconds`. */
  storedSeconds: number | null;
}

export const Thinking = memo(function Thinking(props: Props) {
  const phase = thinkingPhase(props);
  const [choice, setChoice] = useState<DisclosureChoice | null>(null);
  const open = isOpen(choice, phase);
  const panelId = useId();
  return (
    // The phase's class is prefixed: a bare "thinking" is the Generating dots' class, whose rule
    // (an inline-flex row, every span inside a blinking dot) made each token lay out the whole
    // reasoning again and styled its code and math spans as dots.
    <div className={`reasoning reasoning-${phase}`}>
      <button
        type="button"
        className="reasoning-toggle"
        aria-expanded={open}
        aria-controls={panelId}
        onClick={() => setChoice(toggled(choice, phase))}
      >
        <Chevron />
        <ThinkingLabel
          phase={phase}
          since={props.since}
          answerSince={props.answerSince}
          storedSeconds={props.storedSeconds}
        />
      </button>
      {/* Not a region landmark: one per answer would crowd the landmark list. */}
      <div id={panelId} className="reasoning-body" hidden={!open}>
        {open && <Markdown text={props.reasoning} />}
      </div>
    </div>
  );
});

interface LabelProps {
  phase: ThinkingPhase;
  since: number | null;
  answerSince: number | null;
  storedSeconds: number | null;
}

/**
 * The label alone re-renders each second while thinking, not the reasoning's Markdown; and it
 * is memoized on its times, so a reasoning token does not re-render it.
 */
const ThinkingLabel = memo(function ThinkingLabel({ phase, since, answerSince, storedSeconds }: LabelProps) {
  const [now, setNow] = useState(() => Date.now());
  const ticking = phase === "thinking" && since !== null;
  useEffect(() => {
    if (!ticking) return;
    setNow(Date.now());
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, [ticking]);
  const seconds = thinkingSeconds(phase, { since, answerSince, storedSeconds, now });
  return <span className="reasoning-label">{thinkingLabel(phase, seconds)}</span>;
});

function Chevron() {
  return (
    <span className="reasoning-chevron">
      <Icon size={14} round>
        <path d="m9 6 6 6-6 6" />
      </Icon>
    </span>
  );
}
