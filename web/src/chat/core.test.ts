import { beforeEach, describe, expect, it } from "vitest";

import { ApiError, type ConversationDetail, type Message, NetworkError } from "../api";
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
import { threadTo } from "./tree";

describe("ChatCore", () => {
  let api: FakeApi;
  let frames: (() => void)[];
  let core: ChatCore;
  const frame = (): void => {
    const pending = frames;
    frames = [];
    for (const callback of pending) callback();
  };
  const shown = (): string[] =>
    threadTo(core.getState().messages, core.getState().leafId).map((e) => `${e.message.role}:${e.message.content}`);
  const a1 = (): Message | undefined => core.getState().messages.a1;
  /** The stream the fake server opened `n`-th (0: the first), once it has. */
  const stream = async (n: number): Promise<Channel> => {
    await waitFor(() => api.streams.length > n, `stream ${n} to open`);
    return api.streams[n] as Channel;
  };
  const lists = (): number => api.calls.filter((c) => c === "list").length;

  beforeEach(() => {
    api = new FakeApi();
    frames = [];
    core = new ChatCore(api, { schedule: (cb) => frames.push(cb), reconnectDelays: [0] });
  });

  it("creates the conversation on the first message and streams the answer", async () => {
    await core.start(null);
    const accepted = core.send("Hi there");
    const first = await stream(0);
    expect(core.getState().currentId).toBe("c1");
    expect(shown()).toEqual(["user:Hi there", "assistant:"]);

    first.push(runEvent("u1", "a1"));
    expect(await accepted).toBe(true);
    expect(core.getState().leafId).toBe("a1");
    expect(core.getState().live.a1?.runId).toBe("r1");

    first.push(delta(1, "Hel"), delta(2, "lo"));
    await consumed(first);
    expect(shown()).toEqual(["user:Hi there", "assistant:"]); // not before the next frame
    frame();
    expect(shown()).toEqual(["user:Hi there", "assistant:Hello"]);

    api.details.set("c1", {
      ...conversation("c1", { title: "Greeting", current_leaf_id: "a1" }),
      messages: [
        message("u1", null, "user", { content: "Hi there" }),
        message("a1", "u1", "assistant", { content: "Hello" }),
      ],
    });
    const listed = lists();
    first.push(done(3));
    await waitFor(() => lists() > listed, "the list to be re-read after the answer");
    expect(a1()?.status).toBe("complete");
    expect(core.getState().live).toEqual({});
    expect(api.calls.filter((c) => c === "get c1")).toHaveLength(1); // re-read after the answer, for the title
    expect(core.getState().conversation?.title).toBe("Greeting");
  });

  it("publishes many deltas in one frame as one update", async () => {
    await core.start(null);
    void core.send("x");
    const first = await stream(0);
    first.push(runEvent("u1", "a1"));
    await consumed(first);
    let updates = 0;
    core.subscribe(() => updates++);
    for (let i = 1; i <= 50; i++) first.push(delta(i, "t"));
    await consumed(first);
    expect(updates).toBe(0);
    frame();
    expect(updates).toBe(1);
    expect(a1()?.content).toBe("t".repeat(50));
  });

  // The reconnect tests check the text while the run is still streaming: after `done` the
  // conversation is re-read from the server, whose saved text would hide a duplicated piece.

  it("reconnects after the last event id and never duplicates text", async () => {
    await core.start(null);
    void core.send("x");
    const first = await stream(0);
    first.push(runEvent("u1", "a1"), delta(1, "one "), delta(2, "two "));
    await consumed(first);
    first.fail(new NetworkError("cut"));
    const second = await stream(1);
    expect(api.follows).toEqual([{ runId: "r1", lastEventId: 2 }]);
    expect(core.getState().live.a1?.connection).toBe("open");
    // The server may replay an event we have; it is skipped.
    second.push(delta(2, "two "), delta(3, "three"));
    await consumed(second);
    frame();
    expect(a1()?.content).toBe("one two three");
    expect(a1()?.status).toBe("streaming");

    saved(api, "a1", message("u1", null, "user"), message("a1", "u1", "assistant", { content: "one two three" }));
    second.push(done(4));
    await waitFor(() => a1()?.status === "complete", "the answer to complete");
    expect(a1()?.content).toBe("one two three");
  });

  it("reconnects when a stream ends without done", async () => {
    await core.start(null);
    void core.send("x");
    const first = await stream(0);
    first.push(runEvent("u1", "a1"), delta(1, "a"));
    first.end();
    const second = await stream(1);
    expect(api.follows).toEqual([{ runId: "r1", lastEventId: 1 }]);
    second.push(delta(1, "a"), delta(2, "b"));
    await consumed(second);
    frame();
    expect(a1()?.content).toBe("ab");

    saved(api, "a1", message("u1", null, "user"), message("a1", "u1", "assistant", { content: "ab" }));
    second.push(done(3));
    await waitFor(() => a1()?.status === "complete", "the answer to complete");
    expect(a1()?.content).toBe("ab");
  });

  it("gives up after the reconnect limit, then Retry resumes from the same id", async () => {
    core = new ChatCore(api, { schedule: (cb) => frames.push(cb), reconnectDelays: [0], maxReconnects: 1 });
    await core.start(null);
    void core.send("x");
    const first = await stream(0);
    first.push(runEvent("u1", "a1"), delta(1, "a"));
    await consumed(first);
    first.fail(new NetworkError("cut"));
    (await stream(1)).fail(new NetworkError("cut again"));
    await waitFor(() => core.getState().live.a1?.connection === "lost", "the connection to be given up");
    expect(api.streams).toHaveLength(2);

    await core.retry("a1");
    const third = await stream(2);
    expect(api.follows).toEqual([
      { runId: "r1", lastEventId: 1 },
      { runId: "r1", lastEventId: 1 },
    ]);
    third.push(delta(1, "a"), delta(2, "b"));
    await consumed(third);
    frame();
    expect(a1()?.content).toBe("ab");

    saved(api, "a1", message("u1", null, "user"), message("a1", "u1", "assistant", { content: "ab" }));
    third.push(done(3));
    await waitFor(() => a1()?.status === "complete", "the answer to complete");
    expect(a1()?.content).toBe("ab");
  });

  it("takes the placeholders back when the send is refused, so the text can be restored", async () => {
    api.details.set("c1", {
      ...conversation("c1", { current_leaf_id: "a0" }),
      messages: [message("u0", null, "user"), message("a0", "u0", "assistant")],
    });
    api.conversations = [conversation("c1")];
    await core.start("c1");
    api.sendError = new ApiError(400, "invalid_request", "model 'x' is not available");
    const accepted = await core.send("hello");
    expect(accepted).toBe(false);
    expect(shown()).toEqual(["user:u0 text", "assistant:a0 text"]);
    expect(core.getState().notice?.text).toContain("model 'x' is not available");
    expect(core.isBusy()).toBe(false);
  });

  it("resumes a streaming answer on open, from the start, without flashing shorter text", async () => {
    api.details.set("c1", {
      ...conversation("c1", { current_leaf_id: "a1" }),
      messages: [
        message("u1", null, "user"),
        message("a1", "u1", "assistant", { content: "Hello wo", status: "streaming", run_id: "r1" }),
      ],
    });
    await core.start("c1");
    const first = await stream(0);
    expect(api.follows).toEqual([{ runId: "r1", lastEventId: null }]);
    first.push(runEvent("u1", "a1"), delta(1, "Hel"));
    await consumed(first);
    frame();
    expect(a1()?.content).toBe("Hello wo");
    first.push(delta(2, "lo world"));
    await consumed(first);
    frame();
    expect(a1()?.content).toBe("Hello world");

    // A drop now resumes after the last event applied; a replayed delta is not shown twice.
    first.fail(new NetworkError("cut"));
    const second = await stream(1);
    expect(api.follows.at(-1)).toEqual({ runId: "r1", lastEventId: 2 });
    second.push(delta(2, "lo world"), delta(3, "!"));
    await consumed(second);
    frame();
    expect(a1()?.content).toBe("Hello world!");
  });

  it("stops following runs on close, and takes them up again on start", async () => {
    api.details.set("c1", {
      ...conversation("c1", { current_leaf_id: "a1" }),
      messages: [
        message("u1", null, "user"),
        message("a1", "u1", "assistant", { content: "Hel", status: "streaming", run_id: "r1" }),
      ],
    });
    await core.start("c1");
    await stream(0);
    expect(core.isBusy()).toBe(true);
    core.close();
    expect(core.isBusy()).toBe(false);
    expect(core.getState().live).toEqual({});
    await core.start("c1");
    await stream(1);
    expect(api.follows).toEqual([
      { runId: "r1", lastEventId: null },
      { runId: "r1", lastEventId: null },
    ]);
    expect(core.isBusy()).toBe(true);
  });

  it("waits for a conversation still loading before sending, to continue its branch", async () => {
    api.details.set("c1", {
      ...conversation("c1", { current_leaf_id: "a1" }),
      messages: [message("u1", null, "user"), message("a1", "u1", "assistant")],
    });
    let release = (): void => {};
    api.gate = new Promise((resolve) => (release = resolve));
    const starting = core.start("c1");
    const sent = core.send("follow-up");
    // Everything but the conversation has loaded: a send that did not wait would have gone.
    await waitFor(() => core.getState().ready && api.calls.includes("get c1"), "the rest to load");
    expect(api.calls.some((c) => c.startsWith("send"))).toBe(false);
    release();
    await starting;
    const first = await stream(0);
    expect(api.calls.at(-1)).toBe('send c1 {"content":"follow-up","parent_id":"a1"}');
    expect(shown()).toEqual(["user:u1 text", "assistant:a1 text", "user:follow-up", "assistant:"]);
    first.push(runEvent("u2", "a2"));
    expect(await sent).toBe(true);
  });

  it("edits a user message into a sibling branch and moves between siblings", async () => {
    api.details.set("c1", {
      ...conversation("c1", { current_leaf_id: "a1" }),
      messages: [message("u1", null, "user"), message("a1", "u1", "assistant")],
    });
    await core.start("c1");
    void core.edit("u1", "better question");
    const first = await stream(0);
    expect(api.calls.at(-1)).toBe('send c1 {"content":"better question","parent_id":null}');
    let thread = threadTo(core.getState().messages, core.getState().leafId);
    expect(thread[0]?.siblingCount).toBe(2);
    expect(thread[0]?.siblingIndex).toBe(1);

    const before = (api.details.get("c1") as ConversationDetail).messages;
    saved(api, "a2", ...before, message("u2", null, "user"), message("a2", "u2", "assistant"));
    const listed = lists();
    first.push(runEvent("u2", "a2"), delta(1, "ok"), done(2));
    await waitFor(() => lists() > listed, "the conversation to be re-read after the answer");
    expect(core.getState().leafId).toBe("a2");

    await core.selectSibling("u2", -1);
    expect(core.getState().leafId).toBe("a1");
    expect(api.patches.at(-1)).toEqual({ current_leaf_id: "a1" });
    thread = threadTo(core.getState().messages, core.getState().leafId);
    expect(thread.map((e) => e.message.id)).toEqual(["u1", "a1"]);
  });

  it("regenerates an answer as a sibling", async () => {
    api.details.set("c1", {
      ...conversation("c1", { current_leaf_id: "a1" }),
      messages: [message("u1", null, "user"), message("a1", "u1", "assistant")],
    });
    await core.start("c1");
    void core.regenerate("a1");
    const first = await stream(0);
    expect(api.calls).toContain("regenerate a1");
    first.push(runEvent("u1", "a1b"), delta(1, "again"));
    await consumed(first);
    frame();
    const thread = threadTo(core.getState().messages, core.getState().leafId);
    expect(thread.map((e) => [e.message.id, e.siblingIndex, e.siblingCount])).toEqual([
      ["u1", 0, 1],
      ["a1b", 1, 2],
    ]);
    expect(core.getState().messages.a1b?.content).toBe("again");
  });

  it("stops a run: cancel, then the stream's done says stopped", async () => {
    await core.start(null);
    void core.send("x");
    const first = await stream(0);
    void core.stop(); // before the run is even named: cancelled when it is
    first.push(runEvent("u1", "a1"), delta(1, "part"));
    await waitFor(() => api.calls.includes("cancel r1"), "the run to be cancelled");
    expect(core.getState().live.a1?.stopping).toBe(true);
    saved(
      api,
      "a1",
      message("u1", null, "user"),
      message("a1", "u1", "assistant", { content: "part", status: "stopped" }),
    );
    first.push(done(2, "stopped"));
    await waitFor(() => a1()?.status === "stopped", "the answer to stop");
    expect(a1()?.content).toBe("part");
  });

  it("pages the conversation list and keeps older pages when refreshing", async () => {
    api.conversations = Array.from({ length: 120 }, (_, i) => conversation(`k${i}`));
    await core.start(null);
    expect(core.getState().conversations).toHaveLength(50);
    expect(core.getState().nextCursor).toBe("50");
    await core.loadMoreConversations();
    expect(core.getState().conversations).toHaveLength(100);
    api.conversations = [conversation("fresh"), ...api.conversations];
    await core.refreshConversations();
    const ids = core.getState().conversations.map((c) => c.id);
    expect(ids[0]).toBe("fresh");
    expect(ids).toHaveLength(101);
    expect(new Set(ids).size).toBe(101);
    await core.loadMoreConversations();
    expect(
      core
        .getState()
        .conversations.map((c) => c.id)
        .at(-1),
    ).toBe("k119");
  });

  it("shows an expired run as interrupted", async () => {
    api.details.set("c1", {
      ...conversation("c1", { current_leaf_id: "a1" }),
      messages: [
        message("u1", null, "user"),
        message("a1", "u1", "assistant", { content: "half", status: "streaming", run_id: "r9" }),
      ],
    });
    const follow = api.followRun.bind(api);
    api.followRun = async (runId, lastEventId) => {
      await follow(runId, lastEventId);
      throw new ApiError(404, "not_found", "no such run");
    };
    await core.start("c1");
    await waitFor(() => a1()?.status === "interrupted", "the answer to show as interrupted");
    expect(a1()?.content).toBe("half");
    expect(core.getState().live).toEqual({});
  });

  describe("opening a search hit", () => {
    /*
     * u1 ─ a1 ─ u2 ─ a2      (the current branch)
     *        └ u2b ─ a2b     (an edit of u2, older)
     */
    const tree = (): Message[] => [
      message("u1", null, "user"),
      message("a1", "u1", "assistant"),
      message("u2b", "a1", "user"),
      message("a2b", "u2b", "assistant"),
      message("u2", "a1", "user"),
      message("a2", "u2", "assistant"),
    ];

    it("switches to the branch holding the message, remembers it, and asks for it to be shown", async () => {
      saved(api, "a2", ...tree());
      await core.start("c1", "u2b");
      expect(core.getState().leafId).toBe("a2b");
      expect(core.getState().focus?.messageId).toBe("u2b");
      expect(shown()).toEqual(["user:u1 text", "assistant:a1 text", "user:u2b text", "assistant:a2b text"]);
      await waitFor(() => api.patches.length > 0, "the branch to be remembered");
      expect(api.patches).toEqual([{ current_leaf_id: "a2b" }]);
    });

    it("keeps the current branch when it holds the message, and asks for it again each time", async () => {
      saved(api, "a2", ...tree());
      await core.start("c1", "a1");
      const first = core.getState().focus;
      expect(core.getState().leafId).toBe("a2");
      expect(first?.messageId).toBe("a1");
      await core.open("c1", "a1");
      expect(core.getState().focus?.messageId).toBe("a1");
      expect(core.getState().focus?.seq).not.toBe(first?.seq);
      expect(api.patches).toEqual([]);
    });

    it("opens a title hit, or a message no longer there, as the conversation is", async () => {
      saved(api, "a2", ...tree());
      await core.start("c1", "gone");
      expect(core.getState().leafId).toBe("a2");
      expect(core.getState().focus).toBeNull();
      await core.open(null);
      await core.open("c1");
      expect(core.getState().focus).toBeNull();
      expect(api.patches).toEqual([]);
    });
  });
});
