/**
 * The chat core following a run that calls tools: tool events build the answer's `tool_calls`
 * in the stored shape (applied by id, once), a reload mid-call rebuilds the same cards from the
 * run's start without ever showing fewer, and the conversation's tools are chosen (PATCH, or
 * sent with the creation of a new chat).
 */

import { beforeEach, describe, expect, it } from "vitest";

import type { Message, StreamItem, ToolCall } from "../api";
import { ChatCore } from "./core";
import {
  type Channel,
  consumed,
  conversation,
  delta,
  done,
  FakeApi,
  message,
  runEvent,
  saved,
  waitFor,
} from "./testkit";

const callEvent = (id: number, callId: string, offset: number, approval: "ask" | "always" = "ask"): StreamItem => ({
  type: "tool_call",
  id,
  call: {
    id: callId,
    name: `demo__echo`,
    arguments: '{"text":"hi"}',
    server: "demo",
    tool: "echo",
    approval,
    offset,
    decision: null,
    result: null,
  },
});
const decision = (id: number, callId: string, value: "approved" | "denied"): StreamItem => ({
  type: "tool_decision",
  id,
  callId,
  decision: value,
});
const result = (id: number, callId: string, content: string, isError = false): StreamItem => ({
  type: "tool_result",
  id,
  callId,
  result: { content, is_error: isError },
});

describe("ChatCore with tool calls", () => {
  let api: FakeApi;
  let frames: (() => void)[];
  let core: ChatCore;
  const frame = (): void => {
    const pending = frames;
    frames = [];
    for (const callback of pending) callback();
  };
  const a1 = (): Message | undefined => core.getState().messages.a1;
  const stream = async (n: number): Promise<Channel> => {
    await waitFor(() => api.streams.length > n, `stream ${n} to open`);
    return api.streams[n] as Channel;
  };
  const brief = (calls: readonly ToolCall[] | null | undefined): string[] =>
    (calls ?? []).map((c) => `${c.id}:${c.offset}:${c.decision ?? "-"}:${c.result?.content ?? "-"}`);

  beforeEach(() => {
    api = new FakeApi();
    frames = [];
    core = new ChatCore(api, { schedule: (cb) => frames.push(cb), reconnectDelays: [0] });
  });

  it("builds the answer's calls from the events, and ignores replays after a reconnect", async () => {
    await core.start(null);
    void core.send("Echo hi");
    const first = await stream(0);
    first.push(runEvent("u1", "a1"), delta(1, "Let me 👋 check."), callEvent(2, "call_1", 15));
    await consumed(first);
    frame();
    expect(a1()?.content).toBe("Let me 👋 check.");
    expect(brief(a1()?.tool_calls)).toEqual(["call_1:15:-:-"]);
    expect(a1()?.tool_calls?.[0]).toMatchObject({ server: "demo", tool: "echo", approval: "ask" });

    first.push(decision(3, "call_1", "approved"));
    await consumed(first);
    first.fail(new TypeError("network error"));
    const second = await stream(1);
    expect(api.follows.at(-1)).toEqual({ runId: "r1", lastEventId: 3 });
    // The server replays from an older id: the call and its decision must not be applied twice.
    second.push(callEvent(2, "call_1", 15), decision(3, "call_1", "approved"), result(4, "call_1", "hi"));
    second.push(delta(5, " It said hi."));
    await consumed(second);
    frame();
    expect(brief(a1()?.tool_calls)).toEqual(["call_1:15:approved:hi"]);
    expect(a1()?.content).toBe("Let me 👋 check. It said hi.");

    api.gate = new Promise(() => {}); // hold the reload after the run, to see the local view
    second.push(done(6));
    await waitFor(() => a1()?.status === "complete", "the answer to complete");
    expect(brief(a1()?.tool_calls)).toEqual(["call_1:15:approved:hi"]);
  });

  it("rebuilds the same cards after a reload, never showing fewer meanwhile", async () => {
    const savedCalls: ToolCall[] = [
      {
        id: "call_1",
        name: "demo__echo",
        arguments: '{"text":"hi"}',
        server: "demo",
        tool: "echo",
        approval: "always",
        decision: null,
        offset: 5,
        result: { content: "one", is_error: false },
      },
      {
        id: "call_2",
        name: "demo__echo",
        arguments: '{"text":"hi"}',
        server: "demo",
        tool: "echo",
        approval: "ask",
        decision: null,
        offset: 10,
        result: null,
      },
    ];
    saved(
      api,
      "a1",
      message("u1", null, "user"),
      message("a1", "u1", "assistant", {
        content: "Firstthen",
        status: "streaming",
        run_id: "r1",
        tool_calls: savedCalls,
      }),
    );
    await core.start("c1");
    const replay = await stream(0);
    expect(api.follows).toEqual([{ runId: "r1", lastEventId: null }]);
    expect(brief(a1()?.tool_calls)).toEqual(["call_1:5:-:one", "call_2:10:-:-"]);

    // The replay has reached only the first call: both cards stay, the first with its result.
    replay.push(runEvent("u1", "a1"), delta(1, "First"), callEvent(2, "call_1", 5, "always"));
    await consumed(replay);
    frame();
    expect(brief(a1()?.tool_calls)).toEqual(["call_1:5:-:one", "call_2:10:-:-"]);
    expect(a1()?.content).toBe("Firstthen");

    replay.push(result(3, "call_1", "one"), delta(4, "then"), callEvent(5, "call_2", 10));
    await consumed(replay);
    frame();
    // Caught up: exactly what the stored message had, rebuilt from the events.
    expect(a1()?.tool_calls).toEqual(savedCalls);

    // Live from here: the user denies the call waiting for approval.
    await core.decideTool("r1", "call_2", "deny");
    expect(api.decisions).toEqual(["r1 call_2 deny"]);
    replay.push(decision(6, "call_2", "denied"), result(7, "call_2", "The user denied this tool call.", true));
    await consumed(replay);
    frame();
    expect(brief(a1()?.tool_calls)).toEqual(["call_1:5:-:one", "call_2:10:denied:The user denied this tool call."]);
  });

  it("leaves a plain answer without tool calls", async () => {
    await core.start(null);
    void core.send("Hi");
    const first = await stream(0);
    first.push(runEvent("u1", "a1"), delta(1, "Hello"));
    await consumed(first);
    frame();
    expect(a1()?.tool_calls).toBeNull();
  });
});

describe("ChatCore's choice of tools", () => {
  let api: FakeApi;
  let core: ChatCore;

  beforeEach(() => {
    api = new FakeApi();
    api.tools = [{ key: "demo/echo", server: "demo", tool: "echo", description: "", approval: "ask", available: true }];
    core = new ChatCore(api, { schedule: (cb) => cb(), reconnectDelays: [0] });
  });

  it("loads the tools offered, and sends a new chat's choice with its creation", async () => {
    await core.start(null);
    await waitFor(() => core.getState().tools !== null, "the tools to load");
    expect(core.getState().tools?.map((t) => t.key)).toEqual(["demo/echo"]);

    await core.setTools(["demo/echo"]);
    expect(core.currentTools()).toEqual(["demo/echo"]);
    expect(api.patches).toEqual([]); // no conversation yet: nothing to PATCH
    void core.send("Echo");
    await waitFor(() => api.created.length === 1, "the conversation to be created");
    expect(api.created).toEqual([{ tools: ["demo/echo"] }]);
    expect(core.currentTools()).toEqual(["demo/echo"]);
    expect(core.getState().newChat.tools).toEqual([]);
  });

  it("creates a chat without tools when none were chosen", async () => {
    await core.start(null);
    void core.send("Hi");
    await waitFor(() => api.created.length === 1, "the conversation to be created");
    expect(api.created).toEqual([{}]);
  });

  it("PATCHes an open conversation's tools, and puts them back if the server refuses", async () => {
    saved(api, "a1", message("u1", null, "user"), message("a1", "u1", "assistant"));
    api.conversations = [conversation("c1")];
    await core.start("c1");
    await core.setTools(["demo/echo"]);
    expect(api.patches).toEqual([{ tools: ["demo/echo"] }]);
    expect(core.currentTools()).toEqual(["demo/echo"]);

    api.updateConversation = async () => {
      throw new TypeError("network error");
    };
    await core.setTools([]);
    expect(core.currentTools()).toEqual(["demo/echo"]);
    expect(core.getState().notice?.text).toBe("The tools could not be changed.");
  });
});
