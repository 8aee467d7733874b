// @vitest-environment jsdom
/**
 * Tool call cards in a DOM: a disclosure open while the call waits, with Approve and Deny that
 * call the server once (disabled in flight, an error shown, a 409 taken quietly); the card's
 * state as text; arguments as text; the result, untrusted, through the sanitized Markdown
 * rendering; and the answer's text cut around its cards.
 */

import { act, createElement } from "react";
import { createRoot, type Root } from "react-dom/client";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { ApiError, type Message, type ToolCall } from "../api";
import { type MessageActions, MessageItem } from "./MessageItem";
import { ToolCallCard } from "./ToolCallCard";
import { ToolsPicker } from "./ToolsPicker";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

let host: HTMLDivElement;
let root: Root;

beforeEach(() => {
  host = document.createElement("div");
  document.body.append(host);
  root = createRoot(host);
});

afterEach(() => {
  act(() => root.unmount());
  host.remove();
});

const CALL: ToolCall = {
  id: "call_1",
  name: "demo__echo",
  arguments: '{"text":"<b>hi</b>"}',
  server: "demo",
  tool: "echo",
  approval: "ask",
  decision: null,
  offset: 0,
  result: null,
};

type Decide = (runId: string, callId: string, decision: "approve" | "deny") => Promise<void>;

function render(call: ToolCall, live: boolean, onDecide: Decide = async () => {}): void {
  act(() => root.render(createElement(ToolCallCard, { call, live, runId: "run 1", onDecide })));
}

const card = (): HTMLElement => host.querySelector('[role="group"]') as HTMLElement;
const toggle = (): HTMLButtonElement => host.querySelector("button.tool-call-toggle") as HTMLButtonElement;
const body = (): HTMLElement => document.getElementById(toggle().getAttribute("aria-controls") ?? "") as HTMLElement;
const buttonNamed = (name: string): HTMLButtonElement | undefined =>
  [...host.querySelectorAll("button")].find((b) => b.textContent === name);
const status = (): string => host.querySelector('[role="status"]')?.textContent ?? "";

async function click(button: Element): Promise<void> {
  await act(async () => {
    button.dispatchEvent(new MouseEvent("click", { bubbles: true }));
  });
}

describe("<ToolCallCard>", () => {
  it("waits open, named for its tool, with its arguments as text, and Approve calls the server", async () => {
    const decided: string[] = [];
    let release: () => void = () => {};
    render(CALL, true, (runId, callId, decision) => {
      decided.push(`${runId} ${callId} ${decision}`);
      return new Promise<void>((resolve) => (release = resolve));
    });
    expect(card().getAttribute("aria-label")).toBe("Tool call demo/echo");
    expect(toggle().textContent).toBe("demo › echo");
    expect(toggle().getAttribute("aria-expanded")).toBe("true");
    expect(status()).toBe("Waiting for your approval");
    const args = body().querySelector("pre") as HTMLElement;
    expect(args.textContent).toBe('{\n  "text": "<b>hi</b>"\n}');
    expect(args.querySelector("b")).toBeNull();

    await click(buttonNamed("Approve") as HTMLButtonElement);
    expect(decided).toEqual(["run 1 call_1 approve"]);
    // In flight: neither button can send a second decision.
    expect(buttonNamed("Approve")?.disabled).toBe(true);
    expect(buttonNamed("Deny")?.disabled).toBe(true);
    await click(buttonNamed("Deny") as HTMLButtonElement);
    expect(decided).toHaveLength(1);
    await act(async () => release());
    expect(buttonNamed("Approve")?.disabled).toBe(true); // sent: the events follow

    // The decision arrives: running, then done and closed.
    render({ ...CALL, decision: "approved" }, true);
    expect(status()).toBe("Running…");
    expect(buttonNamed("Approve")).toBeUndefined();
    render({ ...CALL, decision: "approved", result: { content: "**hi**", is_error: false } }, false);
    expect(status()).toBe("Done");
    expect(toggle().getAttribute("aria-expanded")).toBe("false");
    expect(body().hidden).toBe(true);
  });

  it("shows a failed decision and lets the user try again; a 409 is taken quietly", async () => {
    let failure: Error = new TypeError("offline");
    render(CALL, true, async () => {
      throw failure;
    });
    await click(buttonNamed("Deny") as HTMLButtonElement);
    expect(host.querySelector('[role="alert"]')?.textContent).toBe("The decision could not be sent.");
    expect(buttonNamed("Deny")?.disabled).toBe(false);

    failure = new ApiError(409, "conflict", "The call is not waiting for a decision.");
    await click(buttonNamed("Deny") as HTMLButtonElement);
    expect(host.querySelector('[role="alert"]')).toBeNull();
    expect(buttonNamed("Deny")?.disabled).toBe(true);
  });

  it("renders the result through the sanitizer: an XSS payload stays inert", async () => {
    const payload = 'Found <img src=x onerror="alert(1)"> and <script>alert(2)</script> [x](javascript:alert(3))';
    render({ ...CALL, decision: "approved", result: { content: payload, is_error: false } }, false);
    await click(toggle());
    const result = host.querySelector(".tool-call-result") as HTMLElement;
    expect(result.querySelector(".markdown")).not.toBeNull();
    expect(result.textContent).toContain("Found");
    expect(result.querySelector("img, script")).toBeNull();
    expect(result.querySelector("[onerror]")).toBeNull();
    for (const element of result.querySelectorAll("*")) {
      for (const attribute of element.attributes) expect(attribute.name.startsWith("on")).toBe(false);
    }
    for (const link of result.querySelectorAll("a")) expect(link.getAttribute("href") ?? "").not.toMatch(/javascript/i);
  });

  it("marks an error result, and names denied, expired and never-run calls", async () => {
    render({ ...CALL, approval: "always", result: { content: "it broke", is_error: true } }, false);
    expect(status()).toBe("Failed");
    await click(toggle());
    expect(host.querySelector(".tool-call-result.is-error .tool-call-label")?.textContent).toBe("Error");

    render({ ...CALL, decision: "denied", result: { content: "denied", is_error: true } }, false);
    expect(status()).toBe("Denied");
    render({ ...CALL, decision: "expired" }, false);
    expect(status()).toBe("Expired: not approved in time");
    render({ ...CALL, name: "nope", server: null, tool: null }, false);
    expect(status()).toBe("Not run");
    expect(card().getAttribute("aria-label")).toBe("Tool call nope");
  });
});

describe("an answer with tool calls", () => {
  const actions: MessageActions = {
    onEdit: async () => true,
    onRegenerate: () => {},
    onRetry: () => {},
    onSibling: () => {},
    onToolDecision: async () => {},
  };
  const answer = (content: string, calls: ToolCall[]): Message => ({
    id: "a1",
    conversation_id: "c1",
    parent_id: "u1",
    role: "assistant",
    content,
    status: "complete",
    model: "demo",
    finish_reason: "stop",
    usage: null,
    error: null,
    created_at: "2025-01-01T00:00:00Z",
    updated_at: "2025-01-01T00:00:00Z",
    run_id: null,
    reasoning: null,
    reasoning_seconds: null,
    tool_calls: calls,
  });

  it("shows each card between the text slices, at its offset in code points", () => {
    const message = answer("Checking 😀 now.Here it is.", [
      { ...CALL, offset: 15, result: { content: "hi", is_error: false } },
    ]);
    act(() =>
      root.render(
        createElement(MessageItem, {
          message,
          siblingIndex: 0,
          siblingCount: 1,
          isLast: true,
          live: undefined,
          busy: false,
          actions,
        }),
      ),
    );
    const article = host.querySelector("article") as HTMLElement;
    const order = [...article.children]
      .filter((el) => el.matches(".markdown, .tool-call"))
      .map((el) => (el.matches(".tool-call") ? "[card]" : el.textContent?.trim()));
    expect(order).toEqual(["Checking 😀 now.", "[card]", "Here it is."]);
  });
});

describe("<ToolsPicker>", () => {
  const tools = [
    {
      key: "demo/echo",
      server: "demo",
      tool: "echo",
      description: "Says it back",
      approval: "ask" as const,
      available: true,
    },
    { key: "web/get", server: "web", tool: "get", description: "", approval: "always" as const, available: false },
  ];

  it("opens a list of checkboxes labelled by key, and reports the new choice", async () => {
    const changes: string[][] = [];
    let opened = 0;
    act(() =>
      root.render(
        createElement(ToolsPicker, {
          tools,
          chosen: [],
          onChange: (keys: string[]) => changes.push(keys),
          onOpen: () => opened++,
        }),
      ),
    );
    const button = host.querySelector("button.tools-toggle") as HTMLButtonElement;
    expect(button.textContent).toBe("Tools");
    expect(button.getAttribute("aria-expanded")).toBe("false");
    await click(button);
    expect(opened).toBe(1);
    expect(button.getAttribute("aria-expanded")).toBe("true");
    const boxes = [...host.querySelectorAll<HTMLInputElement>('input[type="checkbox"]')];
    const labels = boxes.map((box) => box.labels?.[0]?.textContent);
    expect(labels).toEqual(["demo/echo", "web/get"]);
    expect(boxes.map((b) => b.disabled)).toEqual([false, true]);
    const about = document.getElementById(boxes[1]?.getAttribute("aria-describedby") ?? "");
    expect(about?.textContent).toContain("its server is not running");
    await click(boxes[0] as HTMLInputElement);
    expect(changes).toEqual([["demo/echo"]]);
  });

  it("counts the chosen tools, and is hidden when the server offers none", () => {
    act(() =>
      root.render(createElement(ToolsPicker, { tools, chosen: ["demo/echo"], onChange: () => {}, onOpen: () => {} })),
    );
    expect(host.querySelector("button.tools-toggle")?.textContent).toBe("Tools (1)");
    act(() => root.render(createElement(ToolsPicker, { tools: [], chosen: [], onChange: () => {}, onOpen: () => {} })));
    expect(host.querySelector("button.tools-toggle")).toBeNull();
  });
});
