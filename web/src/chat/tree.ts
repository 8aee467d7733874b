/**
 * The message tree of one conversation, as pure functions over a map of messages.
 *
 * Siblings are messages with the same parent (the roots are siblings of each other); the
 * displayed branch is the walk from the conversation's current leaf up to a root. Switching to
 * another sibling shows the deepest leaf under it, following the newest child at each level.
 */

import type { Message } from "../api";

export type MessageMap = Readonly<Record<string, Message>>;

function byAge(a: Message, b: Message): number {
  if (a.created_at !== b.created_at) return a.created_at < b.created_at ? -1 : 1;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** The children of `parentId` (null: the roots), oldest first; system messages are left out. */
export function childrenOf(messages: MessageMap, parentId: string | null): Message[] {
  const children: Message[] = [];
  for (const message of Object.values(messages)) {
    if (message.parent_id === parentId && message.role !== "system") children.push(message);
  }
  return children.sort(byAge);
}

/** `message` and its siblings, oldest first, with the position of `message` among them. */
export function siblingsOf(messages: MessageMap, message: Message): { siblings: Message[]; index: number } {
  const siblings = childrenOf(messages, message.parent_id);
  return { siblings, index: siblings.findIndex((m) => m.id === message.id) };
}

/** The branch from a root down to `leafId`, root first; [] when the leaf is unknown. */
export function branchTo(messages: MessageMap, leafId: string | null): Message[] {
  const branch: Message[] = [];
  const seen = new Set<string>();
  let id = leafId;
  while (id !== null && !seen.has(id)) {
    const message = messages[id];
    if (!message) break;
    seen.add(id);
    branch.push(message);
    id = message.parent_id;
  }
  return branch.reverse().filter((m) => m.role !== "system");
}

/** The deepest leaf under `id`, following the newest child at each level. */
export function deepestLeaf(messages: MessageMap, id: string): string {
  let current = id;
  const seen = new Set<string>([id]);
  for (;;) {
    const children = childrenOf(messages, current);
    const newest = children[children.length - 1];
    if (!newest || seen.has(newest.id)) return current;
    seen.add(newest.id);
    current = newest.id;
  }
}

/**
 * The leaf to show when moving from `message` to its sibling `offset` places away (-1 / +1),
 * or null when there is no such sibling.
 */
export function siblingLeaf(messages: MessageMap, message: Message, offset: number): string | null {
  const { siblings, index } = siblingsOf(messages, message);
  const target = siblings[index + offset];
  return target ? deepestLeaf(messages, target.id) : null;
}

/** The leaf to show when the server's leaf is unknown: the newest leaf of the newest root. */
export function fallbackLeaf(messages: MessageMap): string | null {
  const roots = childrenOf(messages, null);
  const newest = roots[roots.length - 1];
  return newest ? deepestLeaf(messages, newest.id) : null;
}

/** Replace the id of a message (a local placeholder gets its server id), re-parenting children. */
export function renameMessage(messages: MessageMap, from: string, to: string): Record<string, Message> {
  const next: Record<string, Message> = {};
  for (const [id, message] of Object.entries(messages)) {
    const renamed = id === from ? { ...message, id: to } : message;
    next[renamed.id] = renamed.parent_id === from ? { ...renamed, parent_id: to } : renamed;
  }
  return next;
}

export function toMap(list: readonly Message[]): Record<string, Message> {
  const map: Record<string, Message> = {};
  for (const message of list) map[message.id] = message;
  return map;
}

export interface ThreadEntry {
  message: Message;
  /** 0-based position among its siblings, and how many there are (the ‹ 2/3 › control). */
  siblingIndex: number;
  siblingCount: number;
}

/** The displayed branch with each message's sibling position, in one pass over the map. */
export function threadTo(messages: MessageMap, leafId: string | null): ThreadEntry[] {
  const children = new Map<string | null, Message[]>();
  for (const message of Object.values(messages)) {
    if (message.role === "system") continue;
    const list = children.get(message.parent_id);
    if (list) list.push(message);
    else children.set(message.parent_id, [message]);
  }
  return branchTo(messages, leafId).map((message) => {
    const siblings = (children.get(message.parent_id) ?? [message]).sort(byAge);
    return {
      message,
      siblingIndex: Math.max(
        0,
        siblings.findIndex((m) => m.id === message.id),
      ),
      siblingCount: siblings.length,
    };
  });
}

/**
 * The leaf to show so that message `messageId` is on the displayed branch (opening a search
 * hit): `currentLeaf` when its branch already holds the message, else the newest leaf under the
 * message (the rule `fallbackLeaf` follows, descending from it). Null when the message is unknown.
 */
export function leafHolding(messages: MessageMap, currentLeaf: string | null, messageId: string): string | null {
  if (!messages[messageId]) return null;
  const seen = new Set<string>();
  for (let id = currentLeaf; id !== null && !seen.has(id);) {
    const message = messages[id];
    if (!message) break;
    if (id === messageId) return currentLeaf;
    seen.add(id);
    id = message.parent_id;
  }
  return deepestLeaf(messages, messageId);
}
