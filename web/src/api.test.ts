import { describe, expect, it } from "vitest";

import { Api, ApiError, NetworkError, readRunStream, type StreamItem } from "./api";

const utf8 = new TextEncoder();

const RUN =
  "retry: 3000\n\n" +
  'id: 0\nevent: run\ndata: {"run_id":"r","conversation_id":"c","user_message_id":"u","message_id":"m","model":"demo"}\n\n' +
  ": ping\n\n" +
  'id: 1\nevent: delta\ndata: {"text":"Grüß "}\n\n' +
  "id: 2\nevent: unknown\ndata: {}\n\n" +
  "id: 3\nevent: delta\ndata: not json\n\n" +
  'id: 4\nevent: delta\ndata: {"text":"dich 👋"}\n\n' +
  'id: 5\nevent: error\ndata: {"code":"upstream_status","message":"boom","retryable":true}\n\n' +
  'id: 6\nevent: done\ndata: {"status":"error","finish_reason":null,"usage":null}\n\n';

/** A body that delivers `bytes` in pieces of `size` bytes, then ends (or hangs, or fails). */
function body(bytes: Uint8Array, size: number, end: "close" | "hang" | "fail" = "close"): ReadableStream<Uint8Array> {
  let offset = 0;
  return new ReadableStream({
    pull(controller) {
      if (offset < bytes.length) {
        controller.enqueue(bytes.slice(offset, offset + size));
        offset += size;
      } else if (end === "close") {
        controller.close();
      } else if (end === "fail") {
        controller.error(new TypeError("network error"));
      }
      // "hang": never resolves
    },
  });
}

async function collect(stream: AsyncIterable<StreamItem>): Promise<StreamItem[]> {
  const items: StreamItem[] = [];
  for await (const item of stream) items.push(item);
  return items;
}

describe("readRunStream", () => {
  it("turns a run stream into typed events, whatever the chunk size", async () => {
    const bytes = utf8.encode(RUN);
    for (const size of [1, 2, 3, 7, 64, bytes.length]) {
      const items = await collect(readRunStream(body(bytes, size), new AbortController(), 10_000));
      expect(items.map((i) => i.type)).toEqual(["retry", "run", "delta", "delta", "error", "done"]);
      const text = items.map((i) => (i.type === "delta" ? i.text : "")).join("");
      expect(text).toBe("Grüß dich 👋");
      expect(items[0]).toEqual({ type: "retry", ms: 3000 });
      expect(items.at(-1)).toMatchObject({ type: "done", id: 6, done: { status: "error" } });
      expect(items[4]).toMatchObject({ type: "error", id: 5, error: { message: "boom", retryable: true } });
    }
  });

  it("reports a broken connection as a NetworkError", async () => {
    const stream = readRunStream(body(utf8.encode(RUN.slice(0, 200)), 50, "fail"), new AbortController(), 10_000);
    await expect(collect(stream)).rejects.toBeInstanceOf(NetworkError);
  });

  it("aborts a connection that goes silent", async () => {
    const connection = new AbortController();
    const bytes = utf8.encode("retry: 10\n\n");
    const stream = readRunStream(body(bytes, bytes.length, "hang"), connection, 30);
    await expect(collect(stream)).rejects.toBeInstanceOf(NetworkError);
    expect(connection.signal.aborted).toBe(true);
  });

  it("cancels the body when the reader stops early", async () => {
    let cancelled = false;
    const source = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(utf8.encode('id: 1\nevent: delta\ndata: {"text":"a"}\n\n'));
      },
      cancel() {
        cancelled = true;
      },
    });
    for await (const item of readRunStream(source, new AbortController(), 10_000)) {
      expect(item.type).toBe("delta");
      break;
    }
    expect(cancelled).toBe(true);
  });
});

describe("Api", () => {
  it("sends Last-Event-ID when following a run after an event", async () => {
    const seen: { url: string; headers: Headers }[] = [];
    const api = new Api({
      fetch: async (input, init) => {
        seen.push({ url: String(input), headers: new Headers(init?.headers) });
        return new Response(body(utf8.encode(RUN), 4096), {
          headers: { "Content-Type": "text/event-stream" },
        });
      },
    });
    await collect(await api.followRun("r 1", 41, new AbortController().signal));
    await collect(await api.followRun("r1", null, new AbortController().signal));
    expect(seen[0]?.url).toBe("/api/runs/r%201/events");
    expect(seen[0]?.headers.get("Last-Event-ID")).toBe("41");
    expect(seen[0]?.headers.get("Accept")).toBe("text/event-stream");
    expect(seen[1]?.headers.has("Last-Event-ID")).toBe(false);
  });

  it("turns an error answer into an ApiError with the server's code and message", async () => {
    const api = new Api({
      fetch: async () =>
        new Response(JSON.stringify({ error: { code: "not_found", message: "no such conversation" } }), {
          status: 404,
          headers: { "Content-Type": "application/json" },
        }),
    });
    const error = await api.getConversation("x").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ status: 404, code: "not_found", message: "no such conversation" });
  });

  it("turns an unreachable server into a NetworkError", async () => {
    const api = new Api({
      fetch: async () => {
        throw new TypeError("Failed to fetch");
      },
    });
    await expect(api.health()).rejects.toBeInstanceOf(NetworkError);
  });

  it("posts a message with a null parent as JSON asking for a stream", async () => {
    let sent: RequestInit | undefined;
    const api = new Api({
      fetch: async (_input, init) => {
        sent = init;
        return new Response(body(utf8.encode(RUN), 4096));
      },
    });
    await collect(await api.sendMessage("c", { content: "hi", parent_id: null }, new AbortController().signal));
    expect(sent?.method).toBe("POST");
    expect(sent?.body).toBe('{"content":"hi","parent_id":null}');
    const headers = new Headers(sent?.headers);
    expect(headers.get("Accept")).toBe("text/event-stream");
    expect(headers.get("Content-Type")).toBe("application/json");
  });
});

describe("reasoning run events", () => {
  it("reads reasoning events, in the same id sequence as deltas, whatever the chunk size", async () => {
    const wire =
      'id: 0\nevent: run\ndata: {"run_id":"r","conversation_id":"c","user_message_id":"u","message_id":"m","model":"x"}\n\n' +
      'id: 1\nevent: reasoning\ndata: {"text":"Hmm, "}\n\n' +
      'id: 2\nevent: reasoning\ndata: {"text":"größer?"}\n\n' +
      "id: 3\nevent: reasoning\ndata: {}\n\n" +
      'id: 4\nevent: delta\ndata: {"text":"Ja."}\n\n' +
      'id: 5\nevent: done\ndata: {"status":"complete","finish_reason":"tool_calls","usage":null,' +
      '"tool_calls":[{"id":"call_1","name":"get_weather","arguments":"{\\"city\\":\\"Paris\\"}"},{"id":1}]}\n\n';
    const bytes = utf8.encode(wire);
    for (const size of [1, 5, bytes.length]) {
      const items = await collect(readRunStream(body(bytes, size), new AbortController(), 10_000));
      expect(items.map((i) => `${i.type}:${"id" in i ? i.id : ""}`)).toEqual([
        "run:0",
        "reasoning:1",
        "reasoning:2",
        "delta:4",
        "done:5",
      ]);
      const thought = items.map((i) => (i.type === "reasoning" ? i.text : "")).join("");
      expect(thought).toBe("Hmm, größer?");
      // The malformed call is dropped; the whole one is kept as sent.
      expect(items.at(-1)).toMatchObject({
        done: {
          finish_reason: "tool_calls",
          tool_calls: [{ id: "call_1", name: "get_weather", arguments: '{"city":"Paris"}' }],
        },
      });
    }
  });
});
