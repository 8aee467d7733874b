/**
 * The rendering benchmark page: streams a long Markdown answer token by token into the real
 * <Markdown> component (finished blocks memoized, only the open block re-rendered) and into a
 * naive one that parses, sanitizes and replaces the whole answer on every token; and, as
 * `reasoning`, the same text streamed as a model's thinking into the open <Thinking> block (its
 * live counter running), which must cost what an answer costs. Each token is one synchronous
 * React commit followed by a forced layout, timed on the main thread. `runPair` streams an
 * answer and a reasoning side by side, token for token, so both are timed at the same moments
 * of a machine whose speed drifts. Driven by bench/ui/render_bench.py through `window.runBench`
 * and `window.runPair`.
 */

import "katex/dist/katex.min.css";
import "../src/styles.css";

import { flushSync } from "react-dom";
import { createRoot, type Root } from "react-dom/client";

import { Markdown } from "../src/components/Markdown";
import { Thinking } from "../src/components/Thinking";
import { StreamingMarkdown } from "../src/markdown/incremental";
import { createMarkdown } from "../src/markdown/md";
import { sanitizeHtml } from "../src/markdown/sanitize";
import { makeAnswer, tokenize } from "./answer";

const md = createMarkdown();

function NaiveMarkdown({ text }: { text: string }) {
  return <div className="markdown" dangerouslySetInnerHTML={{ __html: sanitizeHtml(md.render(text)) }} />;
}

export interface BenchResult {
  mode: string;
  chars: number;
  tokens: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
  totalMs: number;
  /** p50 and p99 over the first and the last quarter of the tokens: flat means alike. */
  firstQuarter: { p50: number; p99: number };
  lastQuarter: { p50: number; p99: number };
  /** The slowest tokens, with the text just before them: where the time goes. */
  slowest: { index: number; ms: number; context: string }[];
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  const index = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, index)] as number;
}

/** The parser and renderer alone, with no React and no DOM: the floor of the cost. */
function engineOnly(tokens: string[], sanitize = true): number[] {
  const engine = new StreamingMarkdown(md, sanitize ? sanitizeHtml : (html) => html);
  const times: number[] = [];
  let text = "";
  for (const token of tokens) {
    text += token;
    const t0 = performance.now();
    engine.update(text);
    times.push(performance.now() - t0);
  }
  return times;
}

function quantiles(times: number[]): { p50: number; p99: number } {
  const sorted = [...times].sort((a, b) => a - b);
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
}

type StreamMode = "incremental" | "naive" | "reasoning";

function view(mode: StreamMode, text: string, since: number) {
  if (mode === "naive") return <NaiveMarkdown text={text} />;
  if (mode === "reasoning") {
    return (
      <Thinking
        key="t"
        reasoning={text}
        streaming
        answerStarted={false}
        since={since}
        answerSince={null}
        storedSeconds={null}
      />
    );
  }
  return <Markdown key="m" text={text} />;
}

/** One token: a synchronous commit, then a forced layout (style and layout are part of the cost). */
function step(root: Root, host: HTMLElement, node: ReturnType<typeof view>): number {
  const t0 = performance.now();
  flushSync(() => root.render(node));
  void host.offsetHeight;
  return performance.now() - t0;
}

function stream(root: Root, host: HTMLElement, tokens: string[], mode: StreamMode): number[] {
  const times: number[] = [];
  const since = Date.now();
  let text = "";
  for (const token of tokens) {
    text += token;
    times.push(step(root, host, view(mode, text, since)));
  }
  return times;
}

/** A second stream host after #bench, styled alike, for runPair. */
function pairHost(): HTMLElement {
  const host = document.createElement("div");
  host.className = "thread";
  document.body.append(host);
  return host;
}

async function runBench(options: { mode: StreamMode | "engine" | "engine-raw"; chars: number }): Promise<BenchResult> {
  const host = document.getElementById("bench") as HTMLElement;
  const answer = makeAnswer(options.chars);
  const tokens = tokenize(answer);
  // Warm up the JIT on a different text, then start from an empty host.
  const warm = createRoot(host);
  const streamed: StreamMode = options.mode === "naive" || options.mode === "reasoning" ? options.mode : "incremental";
  stream(warm, host, tokenize(makeAnswer(3000).replaceAll("Part", "Warm-up")), streamed);
  warm.unmount();
  await new Promise((resolve) => setTimeout(resolve, 50));
  const root = createRoot(host);
  const started = performance.now();
  const times = options.mode.startsWith("engine")
    ? engineOnly(tokens, options.mode === "engine")
    : stream(root, host, tokens, streamed);
  const totalMs = performance.now() - started;
  root.unmount();
  return summarize(options.mode, answer, tokens, times, totalMs);
}

const PAIRED = ["incremental", "reasoning"] as const;
type Paired = (typeof PAIRED)[number];

/**
 * The same text streamed as an answer and as a reasoning into two hosts, alternating token by
 * token (which goes first swaps each token), so a slow spell of the machine hits both alike.
 */
async function runPair(options: { chars: number }): Promise<Record<Paired, BenchResult>> {
  const hosts: Record<Paired, HTMLElement> = {
    incremental: document.getElementById("bench") as HTMLElement,
    reasoning: pairHost(),
  };
  for (const mode of PAIRED) {
    const warm = createRoot(hosts[mode]);
    stream(warm, hosts[mode], tokenize(makeAnswer(3000).replaceAll("Part", "Warm-up")), mode);
    warm.unmount();
  }
  await new Promise((resolve) => setTimeout(resolve, 50));
  const answer = makeAnswer(options.chars);
  const tokens = tokenize(answer);
  const roots: Record<Paired, Root> = {
    incremental: createRoot(hosts.incremental),
    reasoning: createRoot(hosts.reasoning),
  };
  const times: Record<Paired, number[]> = { incremental: [], reasoning: [] };
  const swapped = [...PAIRED].reverse();
  const since = Date.now();
  const started = performance.now();
  let text = "";
  tokens.forEach((token, index) => {
    text += token;
    for (const mode of index % 2 === 0 ? PAIRED : swapped) {
      times[mode].push(step(roots[mode], hosts[mode], view(mode, text, since)));
    }
  });
  const totalMs = performance.now() - started;
  for (const mode of PAIRED) roots[mode].unmount();
  hosts.reasoning.remove();
  return {
    incremental: summarize("incremental", answer, tokens, times.incremental, totalMs),
    reasoning: summarize("reasoning", answer, tokens, times.reasoning, totalMs),
  };
}

function summarize(mode: string, answer: string, tokens: string[], times: number[], totalMs: number): BenchResult {
  const sorted = [...times].sort((a, b) => a - b);
  const round = (x: number): number => Math.round(x * 1000) / 1000;
  return {
    mode,
    chars: answer.length,
    tokens: tokens.length,
    p50: round(percentile(sorted, 50)),
    p95: round(percentile(sorted, 95)),
    p99: round(percentile(sorted, 99)),
    max: round(sorted[sorted.length - 1] ?? 0),
    mean: round(times.reduce((a, b) => a + b, 0) / Math.max(1, times.length)),
    totalMs: round(totalMs),
    firstQuarter: quantiles(times.slice(0, times.length >> 2)),
    lastQuarter: quantiles(times.slice(times.length - (times.length >> 2))),
    slowest: times
      .map((ms, index) => ({
        index,
        ms: round(ms),
        context: tokens.slice(Math.max(0, index - 12), index + 1).join(""),
      }))
      .sort((a, b) => b.ms - a.ms)
      .slice(0, 25),
  };
}

Object.assign(window, { runBench, runPair });

document.body.dataset.ready = "true";
