import { describe, expect, it } from "vitest";

import { EventStreamParser, LineSplitter, type ServerSentEvent } from "./sse";

const utf8 = new TextEncoder();

function parseChunks(chunks: Uint8Array[]): { events: ServerSentEvent[]; parser: EventStreamParser } {
  const parser = new EventStreamParser();
  const events: ServerSentEvent[] = [];
  for (const chunk of chunks) events.push(...parser.feed(chunk));
  events.push(...parser.end());
  return { events, parser };
}

function parseBytes(bytes: Uint8Array, cuts: number[] = []): ServerSentEvent[] {
  const chunks: Uint8Array[] = [];
  let start = 0;
  for (const cut of cuts) {
    chunks.push(bytes.subarray(start, cut));
    start = cut;
  }
  chunks.push(bytes.subarray(start));
  return parseChunks(chunks).events;
}

const parse = (text: string, cuts: number[] = []): ServerSentEvent[] => parseBytes(utf8.encode(text), cuts);

/** The server's own run stream, as ARCHITECTURE.md draws it, with a multi-byte answer. */
const RUN_STREAM =
  "retry: 3000\n\n" +
  'id: 0\nevent: run\ndata: {"run_id":"r1","message_id":"m2"}\n\n' +
  ": ping\n\n" +
  'id: 1\nevent: delta\ndata: {"text":"Héllo wörld 🙂 — 日本"}\n\n' +
  'id: 2\nevent: delta\ndata: {"text":"\\n\\n| a |"}\n\n' +
  'id: 3\nevent: done\ndata: {"status":"complete","finish_reason":"stop","usage":null}\n\n';

const EXPECTED: ServerSentEvent[] = [
  { type: "run", data: '{"run_id":"r1","message_id":"m2"}', lastEventId: "0" },
  { type: "delta", data: '{"text":"Héllo wörld 🙂 — 日本"}', lastEventId: "1" },
  { type: "delta", data: '{"text":"\\n\\n| a |"}', lastEventId: "2" },
  {
    type: "done",
    data: '{"status":"complete","finish_reason":"stop","usage":null}',
    lastEventId: "3",
  },
];

describe("EventStreamParser", () => {
  it("parses a run stream in one chunk", () => {
    const { events, parser } = parseChunks([utf8.encode(RUN_STREAM)]);
    expect(events).toEqual(EXPECTED);
    expect(parser.retry).toBe(3000);
    expect(parser.lastEventId).toBe("3");
  });

  it("gives the same events however the bytes are split in two", () => {
    const bytes = utf8.encode(RUN_STREAM);
    for (let cut = 0; cut <= bytes.length; cut++) {
      expect(parseBytes(bytes, [cut]), `cut at ${cut}`).toEqual(EXPECTED);
    }
  });

  it("gives the same events one byte at a time", () => {
    const bytes = utf8.encode(RUN_STREAM);
    const cuts = Array.from({ length: bytes.length - 1 }, (_, i) => i + 1);
    expect(parseBytes(bytes, cuts)).toEqual(EXPECTED);
  });

  it.each([
    ["LF", "\n"],
    ["CR", "\r"],
    ["CRLF", "\r\n"],
  ])("accepts %s line endings, split at every offset", (_name, eol) => {
    const text = RUN_STREAM.replaceAll("\n", eol);
    const bytes = utf8.encode(text);
    for (let cut = 0; cut <= bytes.length; cut++) {
      expect(parseBytes(bytes, [cut])).toEqual(EXPECTED);
    }
  });

  it("accepts mixed line endings split between CR and LF", () => {
    const text = "data: a\r\ndata: b\rdata: c\n\r\nid: 7\r\rdata: d\r\n\r\n";
    const bytes = utf8.encode(text);
    const expected = [
      { type: "message", data: "a\nb\nc", lastEventId: "" },
      { type: "message", data: "d", lastEventId: "7" },
    ];
    for (let a = 0; a <= bytes.length; a++) {
      for (let b = a; b <= bytes.length; b++) {
        expect(parseBytes(bytes, [a, b])).toEqual(expected);
      }
    }
  });

  it("does not read CR then a later LF as two blank lines", () => {
    // "data: x\r" + "\n" must be one line ending, so no event yet; then "\n" dispatches.
    const parser = new EventStreamParser();
    expect(parser.feedText("data: x\r")).toEqual([]);
    expect(parser.feedText("\n")).toEqual([]);
    expect(parser.feedText("\n")).toEqual([{ type: "message", data: "x", lastEventId: "" }]);
  });

  it("decodes multi-byte characters split across chunks", () => {
    const text = "data: 🙂é日\n\n";
    const bytes = utf8.encode(text);
    // every split point inside the 4-byte emoji, the 2-byte é and the 3-byte 日
    for (let cut = 6; cut <= 15; cut++) {
      expect(parseBytes(bytes, [cut])).toEqual([{ type: "message", data: "🙂é日", lastEventId: "" }]);
    }
  });

  it("drops one leading BOM only", () => {
    const bom = new Uint8Array([0xef, 0xbb, 0xbf]);
    const body = utf8.encode("data: a\n\n");
    const withBom = new Uint8Array([...bom, ...body]);
    for (let cut = 0; cut <= withBom.length; cut++) {
      expect(parseBytes(withBom, [cut])).toEqual([{ type: "message", data: "a", lastEventId: "" }]);
    }
    // A second BOM is part of the first line's field name, so that line is ignored.
    const twoBoms = new Uint8Array([...bom, ...bom, ...body, ...utf8.encode("data: b\n\n")]);
    expect(parseBytes(twoBoms)).toEqual([{ type: "message", data: "b", lastEventId: "" }]);
  });

  it("skips comments and heartbeats", () => {
    expect(parse(": ping\n\n:\n: x\ndata: a\n: inside\n\n")).toEqual([{ type: "message", data: "a", lastEventId: "" }]);
  });

  it("strips exactly one space after the colon", () => {
    expect(parse("data:a\n\ndata:  b\n\ndata\n\ndata:\n\n")).toEqual([
      { type: "message", data: "a", lastEventId: "" },
      { type: "message", data: " b", lastEventId: "" },
      { type: "message", data: "", lastEventId: "" },
      { type: "message", data: "", lastEventId: "" },
    ]);
  });

  it("joins data lines with LF and drops the last LF only", () => {
    expect(parse("data: a\ndata:\ndata: b\n\n")).toEqual([{ type: "message", data: "a\n\nb", lastEventId: "" }]);
  });

  it("does not dispatch an event without data, but takes its id", () => {
    const { events, parser } = parseChunks([utf8.encode("id: 5\nevent: x\n\ndata: y\n\n")]);
    expect(events).toEqual([{ type: "message", data: "y", lastEventId: "5" }]);
    expect(parser.lastEventId).toBe("5");
  });

  it("keeps the last event id across events and resets it with an empty id", () => {
    expect(parse("id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\n")).toEqual([
      { type: "message", data: "a", lastEventId: "1" },
      { type: "message", data: "b", lastEventId: "1" },
      { type: "message", data: "c", lastEventId: "" },
    ]);
  });

  it("ignores an id holding NULL", () => {
    expect(parse("id: 1\ndata: a\n\nid: 2\0\ndata: b\n\n")).toEqual([
      { type: "message", data: "a", lastEventId: "1" },
      { type: "message", data: "b", lastEventId: "1" },
    ]);
  });

  it("takes retry only when it is ASCII digits", () => {
    const cases: [string, number | null][] = [
      ["retry: 1500\n", 1500],
      ["retry: 0\n", 0],
      ["retry: 15x\n", null],
      ["retry: -1\n", null],
      ["retry: 1.5\n", null],
      ["retry:  1500\n", null],
      ["retry:\n", null],
      ["retry: ١٢\n", null],
    ];
    for (const [text, expected] of cases) {
      expect(parseChunks([utf8.encode(text)]).parser.retry, text).toBe(expected);
    }
    expect(parseChunks([utf8.encode("retry: 10\nretry: x\n")]).parser.retry).toBe(10);
  });

  it("ignores unknown fields and field names are case-sensitive", () => {
    expect(parse("foo: bar\nData: x\nEVENT: y\ndata: z\n\n")).toEqual([
      { type: "message", data: "z", lastEventId: "" },
    ]);
  });

  it("drops an event that is not terminated by a blank line", () => {
    expect(parse("data: a\n\ndata: b\n")).toEqual([{ type: "message", data: "a", lastEventId: "" }]);
    expect(parse("data: a\n\ndata: b")).toEqual([{ type: "message", data: "a", lastEventId: "" }]);
  });

  it("resets the event type after each dispatch", () => {
    expect(parse("event: delta\ndata: a\n\ndata: b\n\n")).toEqual([
      { type: "delta", data: "a", lastEventId: "" },
      { type: "message", data: "b", lastEventId: "" },
    ]);
  });

  it("replaces invalid UTF-8 with U+FFFD", () => {
    const bytes = new Uint8Array([...utf8.encode("data: a"), 0xff, ...utf8.encode("b\n\n")]);
    expect(parseBytes(bytes)).toEqual([{ type: "message", data: "a\uFFFDb", lastEventId: "" }]);
  });
});

describe("LineSplitter", () => {
  it("handles a long line arriving one character at a time", () => {
    const splitter = new LineSplitter();
    const long = "x".repeat(10_000);
    const lines: string[] = [];
    for (const ch of long) lines.push(...splitter.feed(ch));
    lines.push(...splitter.feed("\r"));
    lines.push(...splitter.feed("\ny\r"));
    expect(lines).toEqual([long, "y"]);
    expect(splitter.rest()).toBe("");
  });

  it("keeps an unterminated line as the rest", () => {
    const splitter = new LineSplitter();
    expect(splitter.feed("a\nb")).toEqual(["a"]);
    expect(splitter.rest()).toBe("b");
  });

  it("treats empty chunks as nothing", () => {
    const splitter = new LineSplitter();
    expect(splitter.feed("a\r")).toEqual(["a"]);
    expect(splitter.feed("")).toEqual([]);
    expect(splitter.feed("\n\n")).toEqual([""]);
  });
});
