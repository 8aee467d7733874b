import "katex/dist/katex.min.css";
import "./styles.css";

import { StrictMode } from "react";
import { createRoot } from "react-dom/client";

import { Api } from "./api";
import { App } from "./App";
import { ChatCore } from "./chat/core";
import { ChatContext } from "./hooks/useChat";

const core = new ChatCore(new Api());

const root = document.getElementById("root");
if (!root) throw new Error("no #root element");
createRoot(root).render(
  <StrictMode>
    <ChatContext.Provider value={core}>
      <App />
    </ChatContext.Provider>
  </StrictMode>,
);
