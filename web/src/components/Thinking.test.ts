// @vitest-environment jsdom
/**
 * The Thinking block in a DOM: a real button disclosure (aria-expanded, aria-controls) that is
 * open while the model thinks, closes when the answer starts and opens again on a click; the
 * reasoning is model output and stays inert markup.
 */

import { act, createElement } from "react";
import { createRoot, type Root } from "react-dom/client";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { Thinking } from "./Thinking";

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

type Props = Parameters<typeof Thinking>[0];
const base: Props = {
  reasoning: "First **check** the facts.",
  streaming: true,
  answerStarted: false,
  since: Date.now(),
  answerSince: null,
  storedSeconds: null,
};

function render(props: Partial<Props>): void {
  act(() => root.render(createElement(Thinking, { ...base, ...props })));
}

const button = (): HTMLButtonElement => host.querySelector("button.reasoning-toggle") as HTMLButtonElement;
const panel = (): HTMLElement => document.getElementById(button().getAttribute("aria-controls") ?? "") as HTMLElement;

describe("<Thinking>", () => {
  it("is open while thinking, with its text rendered as Markdown, and closes when the answer starts", () => {
    render({});
    expect(button().getAttribute("aria-expanded")).toBe("true");
    expect(button().textContent).toMatch(/^Thinking \(\d+ s\)$/);
    expect(panel().hidden).toBe(false);
    expect(panel().querySelector("strong")?.textContent).toBe("check");

    render({ answerStarted: true, answerSince: (base.since ?? 0) + 4_000 });
    expect(button().getAttribute("aria-expanded")).toBe("false");
    expect(button().textContent).toBe("Thought for 4 s");
    expect(panel().hidden).toBe(true);
    expect(panel().textContent).toBe("");
  });

  it("opens again on a click, and shows a stored message's reasoning closed", () => {
    render({ streaming: false, since: null, storedSeconds: 31 });
    expect(button().getAttribute("aria-expanded")).toBe("false");
    expect(button().textContent).toBe("Thought for 31 s");
    act(() => button().click());
    expect(button().getAttribute("aria-expanded")).toBe("true");
    expect(panel().textContent).toContain("First check the facts.");
    act(() => button().click());
    expect(button().getAttribute("aria-expanded")).toBe("false");
  });

  it("never carries the Generating dots' class, whose rule would make the block a row of dots", () => {
    // The dots' `.thinking` rule turns its box into an inline-flex row and every span inside into
    // a blinking dot: on the block it restyled the reasoning's code and math and made each token
    // lay out the whole reasoning again (the render benchmark's reasoning mode).
    render({ reasoning: "Try `x` and **y**: <span>z</span>" });
    expect(host.querySelector(".reasoning")).not.toBeNull();
    expect(host.querySelector(".thinking")).toBeNull();
    render({ answerStarted: true, answerSince: (base.since ?? 0) + 1_000 });
    expect(host.querySelector(".thinking, .thought")).toBeNull();
  });

  it("keeps markup in the reasoning inert", () => {
    render({ reasoning: 'Hm <img src=x onerror="window.pwned=1"> <script>window.pwned=2</script>' });
    expect(panel().querySelector("img[onerror], script")).toBeNull();
    expect((window as { pwned?: number }).pwned).toBeUndefined();
  });
});
