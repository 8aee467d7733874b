/**
 * What the user has typed but not sent, per conversation, kept in localStorage so that neither
 * a failed send, a reload nor a crash loses it. A storage that throws (private mode, quota) only
 * costs persistence: the composer still holds the text in memory.
 */

export const NEW_CHAT_KEY = "new";
const PREFIX = "ssechat.draft.";

export interface DraftStore {
  get(key: string): string;
  set(key: string, text: string): void;
}

export function localDrafts(storage: Storage | null = safeLocalStorage()): DraftStore {
  const memory = new Map<string, string>();
  return {
    get(key) {
      try {
        const stored = storage?.getItem(PREFIX + key);
        if (stored !== null && stored !== undefined) return stored;
      } catch {
        // fall back to memory
      }
      return memory.get(key) ?? "";
    },
    set(key, text) {
      if (text === "") memory.delete(key);
      else memory.set(key, text);
      try {
        if (text === "") storage?.removeItem(PREFIX + key);
        else storage?.setItem(PREFIX + key, text);
      } catch {
        // memory still has it
      }
    },
  };
}

/** Forget every stored draft (signing out: unsent text is not for the next person here). */
export function clearDrafts(storage: Storage | null = safeLocalStorage()): void {
  try {
    if (!storage) return;
    const keys: string[] = [];
    for (let i = 0; i < storage.length; i++) {
      const key = storage.key(i);
      if (key?.startsWith(PREFIX)) keys.push(key);
    }
    for (const key of keys) storage.removeItem(key);
  } catch {
    // nothing stored, or nothing we may touch
  }
}

function safeLocalStorage(): Storage | null {
  try {
    return typeof localStorage === "undefined" ? null : localStorage;
  } catch {
    return null;
  }
}
