/**
 * Markdown that grows at its end, rendered in top-level blocks so each token costs only the
 * block still being written.
 *
 * The source is split where markdown-it's block parser says one top-level block ends and the
 * next begins. A block is finished, and never parsed or rendered again, once the block after it
 * has started on a complete line: until then, the end of the text can still change what the
 * previous lines mean ("#" alone is a heading, "#x" continues a paragraph). Only the open tail,
 * from the start of the last block, is parsed on each update. Reference definitions are shared
 * from finished blocks to later ones, so a block can use a [label] defined above it (a label
 * used above its definition renders as text while streaming, as the block was finished first).
 *
 * Rendered blocks are also kept in a small cache by source, so reopening a conversation does not
 * highlight its code again. This module must never touch the DOM: `sanitize` is injected.
 */

import type { Env, MarkdownIt, Token } from "markdown-it";

export interface Block {
  /** Stable while the block exists: its offset in the source. */
  readonly key: string;
  readonly source: string;
  /** Sanitized HTML. */
  readonly html: string;
}

export interface Rendered {
  /** Finished blocks: the same objects from one update to the next. */
  readonly done: readonly Block[];
  /** The blocks still open: the last is being written; one before it may still change. */
  readonly open: readonly Block[];
}

/** Applied to each block's HTML; the identity when the caller sanitizes as it inserts. */
export type Sanitize = (html: string) => string;

const CACHE_LIMIT = 400;

export class BlockCache {
  private readonly map = new Map<string, string>();

  get(source: string): string | undefined {
    const html = this.map.get(source);
    if (html !== undefined) {
      this.map.delete(source);
      this.map.set(source, html);
    }
    return html;
  }

  set(source: string, html: string): void {
    this.map.set(source, html);
    if (this.map.size > CACHE_LIMIT) {
      const oldest = this.map.keys().next().value;
      if (oldest !== undefined) this.map.delete(oldest);
    }
  }
}

/** Line endings as markdown-it's own normalize rule makes them, so line numbers match. */
export function normalize(text: string): string {
  return text.replace(/\r\n?/g, "\n").replace(/\0/g, "\uFFFD");
}

export class StreamingMarkdown {
  private text = "";
  private done: Block[] = [];
  private doneEnd = 0;
  /** Reference definitions ("[label]: url") from finished blocks, for the blocks after them. */
  private references: NonNullable<Env["references"]> = {};
  private env: Env = {};
  private last: Rendered = { done: [], open: [] };
  private raw = "";
  /** HTML of the open blocks at the last update, by source. */
  private openHtml = new Map<string, string>();
  /** Parses and renders since creation, for tests and the benchmark. */
  parses = 0;

  constructor(
    private readonly md: MarkdownIt,
    private readonly sanitize: Sanitize,
    private readonly cache: BlockCache | null = null,
  ) {}

  update(source: string): Rendered {
    if (source === this.raw) return this.last;
    let text: string;
    if (source.startsWith(this.raw) && !this.raw.endsWith("\r")) {
      text = this.text + normalize(source.slice(this.raw.length)); // only what is new
    } else {
      text = normalize(source);
      if (!text.startsWith(this.text)) this.reset();
    }
    this.raw = source;
    this.text = text;

    const tail = text.slice(this.doneEnd);
    // A fresh env each time: a definition still being typed must not stick.
    this.env = { references: { ...this.references } };
    const tokens = this.md.parse(tail, this.env);
    this.parses++;
    const starts = blockStarts(tokens);
    const lineOffsets = lineStarts(tail);
    // Lines 0 … newlines-1 have their newline; the line after the last newline is incomplete.
    const newlines = lineOffsets.length - 1;

    // Each block of the tail: its source (up to the next block) and its tokens.
    const pieces = starts.map((start, i) => {
      const next = starts[i + 1];
      const from = i === 0 ? 0 : (lineOffsets[start.line] as number);
      const to = next ? (lineOffsets[next.line] as number) : tail.length;
      return {
        from,
        source: tail.slice(from, to),
        tokens: tokens.slice(start.token, next ? next.token : tokens.length),
      };
    });

    let first = 0; // the first block still open
    while (first + 1 < starts.length && (starts[first + 1] as BlockStart).line < newlines) first++;

    // Blocks of the tail whose source has not changed since the last update keep their HTML:
    // usually only the last block is rendered again.
    // The same source renders differently when reference definitions differ: they are keyed too.
    const refs = this.env.references ?? {};
    const refsKey = Object.keys(refs).length === 0 ? "" : `\0${JSON.stringify(refs)}`;
    const memo = new Map<string, string>();
    const htmlOf = (piece: { source: string; tokens: Token[] }): string => {
      const key = piece.source + refsKey;
      const html = this.openHtml.get(key) ?? this.cache?.get(key) ?? this.render(piece.tokens);
      memo.set(key, html);
      return html;
    };

    if (first > 0) {
      const newDone = [...this.done];
      for (const piece of pieces.slice(0, first)) {
        if (piece.source.includes("]:")) this.collectReferences(piece.source);
        const html = htmlOf(piece);
        this.cache?.set(piece.source + refsKey, html);
        newDone.push({ key: String(this.doneEnd + piece.from), source: piece.source, html });
      }
      this.doneEnd += (pieces[first] as { from: number }).from;
      this.done = newDone;
    }
    const base = this.doneEnd - (pieces[first]?.from ?? 0);
    const open = pieces.slice(first).map((piece) => ({
      key: String(base + piece.from),
      source: piece.source,
      html: htmlOf(piece),
    }));
    this.last = { done: this.done, open };
    this.openHtml = memo;
    return this.last;
  }

  private collectReferences(source: string): void {
    const env: Env = { references: { ...this.references } };
    this.md.block.parse(source, this.md, env, []);
    this.references = env.references ?? this.references;
  }

  private render(tokens: Token[]): string {
    return this.sanitize(this.md.renderer.render(tokens, this.md.options, this.env));
  }

  private reset(): void {
    this.text = "";
    this.done = [];
    this.doneEnd = 0;
    this.references = {};
    this.env = {};
    this.openHtml = new Map();
    this.last = { done: [], open: [] };
    this.raw = "";
  }
}

interface BlockStart {
  token: number;
  line: number;
}

/** Where each top-level block begins: its first token and its first line. */
function blockStarts(tokens: Token[]): BlockStart[] {
  const starts: BlockStart[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i] as Token;
    if (token.level === 0 && token.nesting !== -1 && token.map) starts.push({ token: i, line: token.map[0] });
  }
  return starts;
}

/** The offset of each line's first character; one more entry than there are newlines. */
function lineStarts(text: string): number[] {
  const starts = [0];
  for (let i = text.indexOf("\n"); i !== -1; i = text.indexOf("\n", i + 1)) starts.push(i + 1);
  return starts;
}

/** The whole text at once, the same way (a finished message). */
export function renderAll(md: MarkdownIt, sanitize: Sanitize, text: string, cache?: BlockCache): Rendered {
  return new StreamingMarkdown(md, sanitize, cache ?? null).update(text);
}
