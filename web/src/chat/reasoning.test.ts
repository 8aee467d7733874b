/**
 * The chat core following a reasoning model's run: the thinking streams into the message's
 * `reasoning` (applied by id, once), the follower dates when reasoning and the answer started,
 * and a reload mid-reasoning resumes it exactly.
 */

import { beforeEach, describe, expect, it } from "vitest";

import { type Message, NetworkError, type StreamItem } from "../api";
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

const reasoning = (id: number, text: string): StreamItem => ({ type: "reasoning", id, text });

describe("ChatCore with reasoning", () => {
  let api: FakeApi;
  let frames: (() => void)[];
  let clock: number;
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

  beforeEach(() => {
    api = new FakeApi();
    frames = [];
    clock = 1_000_000;
    core = new ChatCore(api, { schedule: (cb) => frames.push(cb), reconnectDelays: [0], now: () => clock });
  });

  it("streams the thinking, then the answer, and dates the switch between them", async () => {
    await core.start(null);
    void core.send("Why?");
    const first = await stream(0);
    first.push(runEvent("u1", "a1"));
    await consumed(first);
    expect(core.getState().live.a1?.reasoningSince).toBeNull();

    first.push(reasoning(1, "Let me "), reasoning(2, "think."));
    await consumed(first);
    frame();
    expect(a1()?.reasoning).toBe("Let me think.");
    expect(a1()?.content).toBe("");
    expect(core.getState().live.a1).toMatchObject({ reasoningSince: 1_000_000, answerSince: null });

    clock += 12_000;
    first.push(delta(3, "Because."));
    await consumed(first);
    frame();
    expect(a1()?.content).toBe("Because.");
    expect(a1()?.reasoning).toBe("Let me think.");
    expect(core.getState().live.a1).toMatchObject({ reasoningSince: 1_000_000, answerSince: 1_012_000 });

    // Done: the message keeps its reasoning and the measured duration until the server's arrives.
    api.gate = new Promise(() => {}); // hold the reload after the run, to see the local view
    first.push(done(4));
    await waitFor(() => a1()?.status === "complete", "the answer to complete");
    expect(a1()).toMatchObject({ content: "Because.", reasoning: "Let me think.", reasoning_seconds: 12 });
  });

  it("applies a replayed reasoning event once, after a reconnect", async () => {
    await core.start(null);
    void core.send("x");
    const first = await stream(0);
    first.push(runEvent("u1", "a1"), reasoning(1, "one "), reasoning(2, "two "));
    await consumed(first);
    first.fail(new NetworkError("cut"));
    const second = await stream(1);
    expect(api.follows).toEqual([{ runId: "r1", lastEventId: 2 }]);
    second.push(reasoning(2, "two "), reasoning(3, "three"), delta(4, "Answer"));
    await consumed(second);
    frame();
    expect(a1()?.reasoning).toBe("one two three");
    expect(a1()?.content).toBe("Answer");
  });

  it("leaves a plain answer without reasoning", async () => {
    await core.start(null);
    void core.send("x");
    const first = await stream(0);
    first.push(runEvent("u1", "a1"), delta(1, "plain"));
    await consumed(first);
    frame();
    expect(a1()?.content).toBe("plain");
    expect(a1()?.reasoning ?? null).toBeNull();
    expect(core.getState().live.a1).toMatchObject({ reasoningSince: null, answerSince: null });
  });

  it("resumes mid-reasoning from the run's start: the saved thinking stays, the counter goes on", async () => {
    const created = new Date(clock - 5_000).toISOString();
    saved(
      api,
      "a1",
      message("u1", null, "user"),
      message("a1", "u1", "assistant", {
        content: "",
        reasoning: "First, the",
        status: "streaming",
        run_id: "r1",
        created_at: created,
      }),
    );
    api.conversations = [conversation("c1")];
    await core.start("c1");
    const first = await stream(0);
    expect(api.follows).toEqual([{ runId: "r1", lastEventId: null }]);
    // Dated from the message's creation, not from the reload.
    expect(core.getState().live.a1).toMatchObject({ reasoningSince: clock - 5_000, answerSince: null });

    first.push(runEvent("u1", "a1"), reasoning(1, "First"));
    await consumed(first);
    frame();
    expect(a1()?.reasoning).toBe("First, the"); // never shorter than what was shown
    first.push(reasoning(2, ", the facts"), reasoning(3, "."));
    await consumed(first);
    frame();
    expect(a1()?.reasoning).toBe("First, the facts.");

    // A second drop resumes after the last event applied; nothing is shown twice.
    first.fail(new NetworkError("cut"));
    const second = await stream(1);
    expect(api.follows.at(-1)).toEqual({ runId: "r1", lastEventId: 3 });
    second.push(reasoning(3, "."), delta(4, "Done"));
    await consumed(second);
    frame();
    expect(a1()?.reasoning).toBe("First, the facts.");
    expect(a1()?.content).toBe("Done");
  });

  it("a second tab opening a run reasoning right now starts its counter at the message's creation", async () => {
    saved(
      api,
      "a1",
      message("u1", null, "user"),
      message("a1", "u1", "assistant", {
        content: "",
        status: "streaming",
        run_id: "r1",
        created_at: new Date(clock - 2_000).toISOString(),
      }),
    );
    await core.start("c1");
    const first = await stream(0);
    // Nothing saved yet: no reasoning, no counter, until the first reasoning event.
    expect(core.getState().live.a1?.reasoningSince).toBeNull();
    first.push(runEvent("u1", "a1"), reasoning(1, "Hm"));
    await consumed(first);
    frame();
    expect(a1()?.reasoning).toBe("Hm");
    expect(core.getState().live.a1?.reasoningSince).toBe(clock - 2_000);
  });
});
