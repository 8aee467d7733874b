import { describe, expect, it } from "vitest";

import { Api, ApiError, readRunStream, type StreamItem } from "./api";

const utf8 = new TextEncoder();

const RUN =
  'id: 0\nevent: run\ndata: {"run_id":"r","conversation_id":"c","user_message_id":"u","message_id":"m","model":"demo"}\n\n' +
  'id: 1\nevent: delta\ndata: {"text":"Let me look 👀"}\n\n' +
  'id: 2\nevent: tool_call\ndata: {"id":"call_1","name":"fs__read","arguments":"{\\"path\\":\\"a\\"}",' +
  '"server":"fs","tool":"read","approval":"ask","offset":13}\n\n' +
  'id: 3\nevent: tool_decision\ndata: {"id":"call_1","decision":"approved"}\n\n' +
  'id: 4\nevent: tool_result\ndata: {"id":"call_1","content":"# Title","is_error":false}\n\n' +
  'id: 5\nevent: tool_result\ndata: {"content":"no id"}\n\n' +
  'id: 6\nevent: done\ndata: {"status":"complete","finish_reason":"stop","usage":null,"tool_calls":' +
  '[{"id":"call_1","name":"fs__read","arguments":"{}","server":"fs","tool":"read","approval":"ask",' +
  '"decision":"approved","offset":13,"result":{"content":"# Title","is_error":false}},{"bad":1}]}\n\n';

function body(bytes: Uint8Array, size: number): ReadableStream<Uint8Array> {
  let offset = 0;
  return new ReadableStream({
    pull(controller) {
      if (offset < bytes.length) {
        controller.enqueue(bytes.slice(offset, offset + size));
        offset += size;
      } else {
        controller.close();
      }
    },
  });
}

async function collect(stream: AsyncIterable<StreamItem>): Promise<StreamItem[]> {
  const items: StreamItem[] = [];
  for await (const item of stream) items.push(item);
  return items;
}

describe("tool events in a run stream", () => {
  it("are typed events in the run's id sequence, whatever the chunk size", async () => {
    const bytes = utf8.encode(RUN);
    for (const size of [1, 5, 64, bytes.length]) {
      const items = await collect(readRunStream(body(bytes, size), new AbortController(), 10_000));
      expect(items.map((i) => i.type)).toEqual(["run", "delta", "tool_call", "tool_decision", "tool_result", "done"]);
      expect(items[2]).toEqual({
        type: "tool_call",
        id: 2,
        call: {
          id: "call_1",
          name: "fs__read",
          arguments: '{"path":"a"}',
          server: "fs",
          tool: "read",
          approval: "ask",
          offset: 13,
          decision: null,
          result: null,
        },
      });
      expect(items[3]).toEqual({ type: "tool_decision", id: 3, callId: "call_1", decision: "approved" });
      expect(items[4]).toEqual({
        type: "tool_result",
        id: 4,
        callId: "call_1",
        result: { content: "# Title", is_error: false },
      });
      const done = items[5];
      expect(done?.type === "done" && done.done.tool_calls).toEqual([
        {
          id: "call_1",
          name: "fs__read",
          arguments: "{}",
          server: "fs",
          tool: "read",
          approval: "ask",
          decision: "approved",
          offset: 13,
          result: { content: "# Title", is_error: false },
        },
      ]);
    }
  });
});

describe("Api tool calls", () => {
  it("POSTs approve and deny to the call's URL, and lists tools and MCP servers", async () => {
    const seen: string[] = [];
    const api = new Api({
      fetch: async (input, init) => {
        const method = init?.method ?? "GET";
        const url = String(input);
        seen.push(`${method} ${url}${typeof init?.body === "string" ? ` ${init.body}` : ""}`);
        if (url.endsWith("/deny") && url.includes("late")) {
          return new Response(JSON.stringify({ error: { code: "conflict", message: "not waiting" } }), {
            status: 409,
          });
        }
        if (method === "DELETE") return new Response(null, { status: 204 });
        if (url.endsWith("/approve")) return Response.json({ id: "call 1", decision: "approved" });
        if (url.endsWith("/api/tools")) return Response.json({ tools: [] });
        if (url.endsWith("/api/admin/mcp") && method === "GET") return Response.json({ servers: [] });
        return Response.json({ name: "fs" });
      },
    });
    expect(await api.decideToolCall("r/1", "call 1", "approve")).toEqual({ id: "call 1", decision: "approved" });
    const late = await api.decideToolCall("r1", "late", "deny").catch((e: unknown) => e);
    expect(late).toBeInstanceOf(ApiError);
    expect((late as ApiError).status).toBe(409);
    expect(await api.listTools()).toEqual({ tools: [] });
    expect(await api.listMcpServers()).toEqual({ servers: [] });
    await api.addMcpServer({ name: "fs", config: { command: "x" } });
    await api.updateMcpServer("fs", { enabled: false });
    await api.deleteMcpServer("fs");
    expect(seen).toEqual([
      "POST /api/runs/r%2F1/tool_calls/call%201/approve",
      "POST /api/runs/r1/tool_calls/late/deny",
      "GET /api/tools",
      "GET /api/admin/mcp",
      'POST /api/admin/mcp {"name":"fs","config":{"command":"x"}}',
      'PATCH /api/admin/mcp/fs {"enabled":false}',
      "DELETE /api/admin/mcp/fs",
    ]);
  });
});
