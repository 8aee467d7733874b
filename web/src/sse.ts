/**
 * The Server-Sent Events wire protocol, sans-IO: bytes in, events out.
 *
 * Follows the HTML Living Standard, "9.2.6 Interpreting an event stream": one leading BOM is
 * dropped; lines end in CR, LF or CRLF, and a CRLF may be split across two chunks; a UTF-8
 * character may be split across chunks too (TextDecoder with `stream: true` keeps the partial
 * bytes); `id` values holding U+0000 are ignored; `retry` must be ASCII digits only; an event
 * with no `data` is not dispatched; an unterminated event at the end of the stream is dropped.
 *
 * It is ours rather than `eventsource-parser`, which fails three cases of `sse.test.ts` (an id
 * in an event without data, a CR ending the stream: the README's "The web UI" names them).
 * This module must never touch the network, timers or the DOM: `api.ts` feeds it chunks.
 */

export interface ServerSentEvent {
  /** The `event:` field, "message" when absent. */
  readonly type: string;
  /** The `data:` lines joined with "\n". */
  readonly data: string;
  /** The last event ID string after this event (sticky across events, as in EventSource). */
  readonly lastEventId: string;
}

/**
 * Splits text into lines on CR, LF or CRLF. A CR at the end of one chunk and an LF at the start
 * of the next are one line ending. A partial line is kept as a list of pieces and joined once,
 * so a long line arriving in many small chunks is not re-copied on every chunk.
 */
export class LineSplitter {
  private pieces: string[] = [];
  private afterCR = false;

  feed(text: string): string[] {
    const lines: string[] = [];
    let start = 0;
    const n = text.length;
    if (this.afterCR && n > 0) {
      this.afterCR = false;
      if (text.charCodeAt(0) === 10) start = 1;
    }
    for (let i = start; i < n; i++) {
      const c = text.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      this.pieces.push(text.slice(start, i));
      lines.push(this.pieces.length === 1 ? (this.pieces[0] as string) : this.pieces.join(""));
      this.pieces = [];
      if (c === 13) {
        if (i + 1 < n) {
          if (text.charCodeAt(i + 1) === 10) i++;
        } else {
          this.afterCR = true;
        }
      }
      start = i + 1;
    }
    if (start < n) this.pieces.push(text.slice(start));
    return lines;
  }

  /** What is left unterminated at the end of the stream (never a complete line). */
  rest(): string {
    const rest = this.pieces.join("");
    this.pieces = [];
    this.afterCR = false;
    return rest;
  }
}

/** Turns lines into events: the field rules of the standard, with no knowledge of bytes. */
export class EventLineParser {
  /** The reconnection time the server asked for, in milliseconds (`retry:`), or null. */
  retry: number | null = null;
  /** The last event ID string, as EventSource keeps it. */
  lastEventId = "";
  private idBuffer = "";
  private data: string[] = [];
  private type = "";

  line(line: string): ServerSentEvent | null {
    if (line === "") return this.dispatch();
    if (line.charCodeAt(0) === 58 /* ":" */) return null; // a comment, e.g. ": ping"
    const colon = line.indexOf(":");
    let field: string;
    let value: string;
    if (colon === -1) {
      field = line;
      value = "";
    } else {
      field = line.slice(0, colon);
      value = line.charCodeAt(colon + 1) === 32 ? line.slice(colon + 2) : line.slice(colon + 1);
    }
    switch (field) {
      case "event":
        this.type = value;
        break;
      case "data":
        this.data.push(value);
        break;
      case "id":
        if (!value.includes("\0")) this.idBuffer = value;
        break;
      case "retry":
        if (/^[0-9]+$/.test(value)) this.retry = Number.parseInt(value, 10);
        break;
      default:
        break; // unknown fields are ignored
    }
    return null;
  }

  private dispatch(): ServerSentEvent | null {
    this.lastEventId = this.idBuffer;
    if (this.data.length === 0) {
      this.type = "";
      return null;
    }
    const event = {
      type: this.type === "" ? "message" : this.type,
      data: this.data.join("\n"),
      lastEventId: this.lastEventId,
    };
    this.data = [];
    this.type = "";
    return event;
  }

  /** Forget the event being built (the stream ended); keep lastEventId and retry. */
  reset(): void {
    this.data = [];
    this.type = "";
    this.idBuffer = this.lastEventId;
  }
}

/**
 * The whole decoder: UTF-8 bytes (or already-decoded text, for tests) in, events out.
 * One instance per connection; `lastEventId` and `retry` survive for the reconnect.
 */
export class EventStreamParser {
  // The BOM is dropped here, not by TextDecoder, so bytes and text take the same path.
  private readonly decoder = new TextDecoder("utf-8", { ignoreBOM: true });
  private readonly lines = new LineSplitter();
  private readonly fields = new EventLineParser();
  private started = false;

  get lastEventId(): string {
    return this.fields.lastEventId;
  }

  get retry(): number | null {
    return this.fields.retry;
  }

  feed(chunk: Uint8Array): ServerSentEvent[] {
    return this.feedText(this.decoder.decode(chunk, { stream: true }));
  }

  feedText(text: string): ServerSentEvent[] {
    if (!this.started && text !== "") {
      this.started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    const events: ServerSentEvent[] = [];
    for (const line of this.lines.feed(text)) {
      const event = this.fields.line(line);
      if (event !== null) events.push(event);
    }
    return events;
  }

  /** The stream ended: flush the decoder; an event with no blank line after it is dropped. */
  end(): ServerSentEvent[] {
    const events = this.feedText(this.decoder.decode());
    this.lines.rest();
    this.fields.reset();
    return events;
  }
}
