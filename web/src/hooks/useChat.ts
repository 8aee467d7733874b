/**
 * The thin React layer over the chat core: one core per app, read with useSyncExternalStore.
 */

import { createContext, useContext, useSyncExternalStore } from "react";

import type { ChatCore, ChatState } from "../chat/core";

export const ChatContext = createContext<ChatCore | null>(null);

export function useChatCore(): ChatCore {
  const core = useContext(ChatContext);
  if (core === null) throw new Error("useChat must be used inside <ChatContext.Provider>");
  return core;
}

/** The current state, re-rendering on every change the core publishes. */
export function useChat(): [ChatState, ChatCore] {
  const core = useChatCore();
  const state = useSyncExternalStore(core.subscribe, core.getState, core.getState);
  return [state, core];
}
