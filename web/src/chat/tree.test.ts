import { describe, expect, it } from "vitest";

import type { Message } from "../api";
import {
  branchTo,
  childrenOf,
  deepestLeaf,
  fallbackLeaf,
  leafHolding,
  renameMessage,
  siblingLeaf,
  siblingsOf,
  threadTo,
  toMap,
} from "./tree";

let clock = 0;
function msg(id: string, parent: string | null, role: Message["role"] = "user"): Message {
  clock += 1;
  const at = new Date(Date.UTC(2025, 0, 1, 0, 0, clock)).toISOString();
  return {
    id,
    conversation_id: "c",
    parent_id: parent,
    role,
    content: id,
    status: "complete",
    model: null,
    finish_reason: null,
    usage: null,
    error: null,
    reasoning: null,
    reasoning_seconds: null,
    tool_calls: null,
    created_at: at,
    updated_at: at,
    run_id: null,
  };
}

/*
 * u1 ─ a1 ─ u2 ─ a2
 *   │        └ a2b          (regenerated)
 *   └ a1b ─ u3 ─ a3          (regenerated, then continued)
 * u1e ─ a1e                   (u1 edited: a second root)
 */
const tree = toMap([
  msg("sys", null, "system"),
  msg("u1", null),
  msg("a1", "u1", "assistant"),
  msg("u2", "a1"),
  msg("a2", "u2", "assistant"),
  msg("a2b", "u2", "assistant"),
  msg("a1b", "u1", "assistant"),
  msg("u3", "a1b"),
  msg("a3", "u3", "assistant"),
  msg("u1e", null),
  msg("a1e", "u1e", "assistant"),
]);

const ids = (list: Message[]): string[] => list.map((m) => m.id);

describe("the message tree", () => {
  it("lists children oldest first, without system messages", () => {
    expect(ids(childrenOf(tree, null))).toEqual(["u1", "u1e"]);
    expect(ids(childrenOf(tree, "u1"))).toEqual(["a1", "a1b"]);
    expect(ids(childrenOf(tree, "a3"))).toEqual([]);
  });

  it("walks the branch from a leaf up to its root", () => {
    expect(ids(branchTo(tree, "a2b"))).toEqual(["u1", "a1", "u2", "a2b"]);
    expect(ids(branchTo(tree, "a1e"))).toEqual(["u1e", "a1e"]);
    expect(branchTo(tree, null)).toEqual([]);
    expect(branchTo(tree, "missing")).toEqual([]);
  });

  it("stops on a parent cycle instead of looping", () => {
    const cyclic = toMap([msg("x", "y"), msg("y", "x")]);
    expect(ids(branchTo(cyclic, "x"))).toEqual(["y", "x"]);
    expect(deepestLeaf(cyclic, "x")).toBe("y");
  });

  it("finds siblings and the position among them", () => {
    const a2b = tree.a2b as Message;
    expect(siblingsOf(tree, a2b).index).toBe(1);
    expect(ids(siblingsOf(tree, a2b).siblings)).toEqual(["a2", "a2b"]);
    expect(ids(siblingsOf(tree, tree.u1e as Message).siblings)).toEqual(["u1", "u1e"]);
  });

  it("follows the newest child down to the deepest leaf", () => {
    expect(deepestLeaf(tree, "u1")).toBe("a3");
    expect(deepestLeaf(tree, "a1")).toBe("a2b");
    expect(deepestLeaf(tree, "a3")).toBe("a3");
  });

  it("moves between siblings to the deepest leaf under the chosen one", () => {
    expect(siblingLeaf(tree, tree.a1 as Message, +1)).toBe("a3");
    expect(siblingLeaf(tree, tree.a1b as Message, -1)).toBe("a2b");
    expect(siblingLeaf(tree, tree.a1 as Message, -1)).toBeNull();
    expect(siblingLeaf(tree, tree.u1e as Message, -1)).toBe("a3");
    expect(siblingLeaf(tree, tree.u1 as Message, +1)).toBe("a1e");
    expect(siblingLeaf(tree, tree.u1e as Message, +1)).toBeNull();
  });

  it("shows each displayed message with its sibling position", () => {
    expect(threadTo(tree, "a2").map((e) => [e.message.id, e.siblingIndex + 1, e.siblingCount])).toEqual([
      ["u1", 1, 2],
      ["a1", 1, 2],
      ["u2", 1, 1],
      ["a2", 1, 2],
    ]);
  });

  it("falls back to the newest root's deepest leaf", () => {
    expect(fallbackLeaf(tree)).toBe("a1e");
    expect(fallbackLeaf({})).toBeNull();
  });

  it("renames a placeholder and re-parents its children", () => {
    const local = toMap([msg("u1", null), msg("local:1", "u1"), msg("local:2", "local:1", "assistant")]);
    const renamed = renameMessage(local, "local:1", "m7");
    expect(Object.keys(renamed).sort()).toEqual(["local:2", "m7", "u1"]);
    expect(renamed.m7?.parent_id).toBe("u1");
    expect(renamed["local:2"]?.parent_id).toBe("m7");
  });
});

describe("leafHolding (opening a search hit)", () => {
  it("keeps the current leaf when its branch holds the message", () => {
    expect(leafHolding(tree, "a2", "u2")).toBe("a2");
    expect(leafHolding(tree, "a2b", "a1")).toBe("a2b");
    expect(leafHolding(tree, "a3", "u1")).toBe("a3");
    expect(leafHolding(tree, "a2", "a2")).toBe("a2");
  });

  it("otherwise descends from the message to its newest leaf", () => {
    expect(leafHolding(tree, "a3", "a2")).toBe("a2");
    expect(leafHolding(tree, "a3", "u2")).toBe("a2b");
    expect(leafHolding(tree, "a1e", "u1")).toBe("a3");
    expect(leafHolding(tree, "a2", "a1b")).toBe("a3");
    expect(leafHolding(tree, null, "u1e")).toBe("a1e");
    expect(leafHolding(tree, "gone", "a1")).toBe("a2b");
  });

  it("knows nothing of a message not in the tree", () => {
    expect(leafHolding(tree, "a2", "missing")).toBeNull();
  });

  it("stops on a cycle instead of looping", () => {
    const looped = {
      ...tree,
      x: { ...tree.u1!, id: "x", parent_id: "y" },
      y: { ...tree.u1!, id: "y", parent_id: "x" },
    };
    expect(leafHolding(looped, "x", "a1")).toBe("a2b");
  });
});
