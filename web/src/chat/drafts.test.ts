import { describe, expect, it } from "vitest";

import { clearDrafts, localDrafts } from "./drafts";

/** A Storage over a Map, as localStorage behaves. */
function memoryStorage(): Storage {
  const items = new Map<string, string>();
  return {
    get length() {
      return items.size;
    },
    key: (i) => [...items.keys()][i] ?? null,
    getItem: (k) => items.get(k) ?? null,
    setItem: (k, v) => void items.set(k, String(v)),
    removeItem: (k) => void items.delete(k),
    clear: () => items.clear(),
  };
}

describe("drafts", () => {
  it("keeps unsent text per conversation across stores on the same storage", () => {
    const storage = memoryStorage();
    localDrafts(storage).set("c1", "half a thought");
    expect(localDrafts(storage).get("c1")).toBe("half a thought");
    expect(localDrafts(storage).get("c2")).toBe("");
  });

  it("forgets every draft on sign-out, and nothing else in the storage", () => {
    const storage = memoryStorage();
    const drafts = localDrafts(storage);
    drafts.set("new", "secret plan");
    drafts.set("c1", "another");
    storage.setItem("other.app", "keep me");
    clearDrafts(storage);
    expect(localDrafts(storage).get("new")).toBe("");
    expect(localDrafts(storage).get("c1")).toBe("");
    expect(storage.length).toBe(1);
    expect(storage.getItem("other.app")).toBe("keep me");
  });
});
