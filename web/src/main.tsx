import "katex/dist/katex.min.css";
import "./styles.css";
import "./pages/pages.css";
import "./components/search.css";

import { StrictMode } from "react";
import { createRoot } from "react-dom/client";

import { Api } from "./api";
import { App } from "./App";
import { SessionStore } from "./session";

const api = new Api();
const session = new SessionStore(api);
void session.boot();

const root = document.getElementById("root");
if (!root) throw new Error("no #root element");
createRoot(root).render(
  <StrictMode>
    <App api={api} session={session} />
  </StrictMode>,
);
