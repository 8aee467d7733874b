// @vitest-environment jsdom
/**
 * The admins' Tools page in a DOM, against a fake API: the servers with their names-only
 * secrets, the on/off switch and the approval select PATCH, Delete confirms, the Add server form
 * POSTs the entry it built and forgets the secret values, and the list is read again while a
 * server is starting.
 */

import { act, createElement } from "react";
import { createRoot, type Root } from "react-dom/client";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

import type { Api, McpServer, McpServerCreate, McpServerPatch, Me } from "../api";
import { waitFor } from "../chat/testkit";
import { Tools } from "./Tools";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

const ADMIN: Me = { id: "u1", email: "ada@example.com", name: "Ada", role: "admin" };

const server = (name: string, extra: Partial<McpServer> = {}): McpServer => ({
  name,
  source: "admin",
  transport: "stdio",
  command: "python",
  args: ["-m", "server"],
  cwd: null,
  url: null,
  env: ["API_TOKEN"],
  headers: [],
  enabled: true,
  status: "ready",
  error: null,
  approvals: {},
  tools: [{ name: "echo", description: "Says it back", approval: "ask", input_schema: {} }],
  ...extra,
});

class FakeMcp {
  servers: McpServer[] = [];
  calls: string[] = [];
  lists = 0;
  async listMcpServers() {
    this.lists++;
    return { servers: structuredClone(this.servers) };
  }
  async addMcpServer(body: McpServerCreate) {
    this.calls.push(`POST ${JSON.stringify(body)}`);
    const added = server(body.name, { status: "starting", env: Object.keys((body.config.env as object) ?? {}) });
    this.servers.push(added);
    return added;
  }
  async updateMcpServer(name: string, patch: McpServerPatch) {
    this.calls.push(`PATCH ${name} ${JSON.stringify(patch)}`);
    return server(name);
  }
  async deleteMcpServer(name: string) {
    this.calls.push(`DELETE ${name}`);
    this.servers = this.servers.filter((s) => s.name !== name);
  }
}

let host: HTMLDivElement;
let root: Root;
let api: FakeMcp;

beforeEach(() => {
  host = document.createElement("div");
  document.body.append(host);
  root = createRoot(host);
  api = new FakeMcp();
});

afterEach(() => {
  act(() => root.unmount());
  host.remove();
});

async function show(): Promise<void> {
  await act(async () => root.render(createElement(Tools, { api: api as unknown as Api, user: ADMIN })));
  await act(() => waitFor(() => api.lists > 0 && host.querySelector("h2") !== null, "the servers to load"));
}

/** The element named `label` by its aria-label or its <label>; null when there is none. */
function byLabel<T extends HTMLElement>(label: string): T {
  const named = [...host.querySelectorAll<T>("[aria-label]")].find((el) => el.getAttribute("aria-label") === label);
  if (named) return named;
  const labelled = [...host.querySelectorAll("label")].find((l) => l.textContent === label);
  return document.getElementById(labelled?.htmlFor ?? "") as T;
}
const button = (text: string): HTMLButtonElement =>
  [...host.querySelectorAll("button")].find((b) => b.textContent === text) as HTMLButtonElement;

async function type(element: HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement, value: string): Promise<void> {
  const proto = Object.getPrototypeOf(element) as object;
  const setter = Object.getOwnPropertyDescriptor(proto, "value")?.set;
  await act(async () => {
    setter?.call(element, value);
    element.dispatchEvent(new Event(element instanceof HTMLSelectElement ? "change" : "input", { bubbles: true }));
  });
}

async function click(element: HTMLElement): Promise<void> {
  await act(async () => element.click());
}

describe("the Tools page", () => {
  it("lists each server with the names of its secrets, and PATCHes its switch and approvals", async () => {
    api.servers = [
      server("files"),
      server("search", {
        source: "file",
        transport: "http",
        command: null,
        args: [],
        url: "https://mcp.example.com/mcp",
        env: [],
        headers: ["Authorization"],
        status: "error",
        error: "connection refused",
      }),
    ];
    await show();
    expect(host.querySelector("h1")?.textContent).toBe("Tools");
    const cards = [...host.querySelectorAll("article")];
    expect(cards.map((c) => c.querySelector("h3")?.textContent)).toEqual(["files", "search"]);
    expect(cards[0]?.textContent).toContain("python -m server");
    expect(cards[0]?.textContent).toContain("API_TOKEN");
    expect(cards[1]?.textContent).toContain("Authorization");
    expect(cards[1]?.textContent).toContain("connection refused");
    // A server of the settings file cannot be deleted here.
    expect(byLabel("Delete search")).toBeNull();
    expect(byLabel("Delete files")).not.toBeNull();

    await click(byLabel<HTMLInputElement>("files enabled"));
    await type(byLabel<HTMLSelectElement>("Approval for files/echo"), "always");
    expect(api.calls).toEqual(['PATCH files {"enabled":false}', 'PATCH files {"approvals":{"echo":"always"}}']);
    expect(host.querySelector('[role="status"]')?.textContent).toBe("files/echo now runs without asking.");
  });

  it("deletes an added server only after a confirmation", async () => {
    api.servers = [server("files")];
    await show();
    await click(byLabel("Delete files"));
    expect(api.calls).toEqual([]);
    await click(byLabel("Confirm delete files"));
    expect(api.calls).toEqual(["DELETE files"]);
    await act(() => waitFor(() => host.querySelectorAll("article").length === 0, "the card to go"));
  });

  it("adds a server from the form, forgets its secret values, and watches it start", async () => {
    await show();
    expect(host.textContent).toContain("No MCP server is set up yet.");
    await type(byLabel<HTMLInputElement>("Name"), "files");
    await type(byLabel<HTMLInputElement>("Command"), "npx");
    await type(byLabel<HTMLTextAreaElement>("Arguments"), "-y\nserver-files");
    await type(byLabel<HTMLTextAreaElement>("Environment"), "API_TOKEN=s3cret");
    const form = host.querySelector("form") as HTMLFormElement;
    await act(async () => form.requestSubmit());
    expect(api.calls).toEqual([
      'POST {"name":"files","config":{"command":"npx","args":["-y","server-files"],"env":{"API_TOKEN":"s3cret"}}}',
    ]);
    expect(byLabel<HTMLTextAreaElement>("Environment").value).toBe("");
    await act(() => waitFor(() => host.querySelector("article") !== null, "the new server to show"));
    expect(host.textContent).not.toContain("s3cret");
    expect(host.querySelector(".mcp-status")?.textContent).toBe("Starting…");

    // Starting: the page looks again until it is not.
    const before = api.lists;
    (api.servers[0] as McpServer).status = "ready";
    await act(() => waitFor(() => api.lists > before, "the list to be read again"));
    await act(() =>
      waitFor(() => host.querySelector(".mcp-status")?.textContent === "Ready", "the server to be ready"),
    );
  });

  it("says what is wrong with the form without sending it", async () => {
    await show();
    await type(byLabel<HTMLInputElement>("Name"), "bad name");
    await type(byLabel<HTMLInputElement>("Command"), "npx");
    await act(async () => (host.querySelector("form") as HTMLFormElement).requestSubmit());
    expect(api.calls).toEqual([]);
    expect(host.querySelector('[role="alert"]')?.textContent).toMatch(/^The name must be/);
  });
});
