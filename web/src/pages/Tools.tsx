/**
 * /admin/tools: the MCP servers whose tools conversations may offer their model. Admins see
 * each server (where it comes from, how it is reached, its status and error), turn it on and
 * off, choose per tool whether a call asks first, delete the ones added here (confirmed inline),
 * and add new ones. The list is read again after every change, and every 2 s while a server is
 * starting.
 *
 * Environment and header values are write-only: the form sends them once, and the page (like
 * the API) only ever shows their names. This page must never keep them after a save.
 */

import { type FormEvent, type KeyboardEvent, useCallback, useEffect, useRef, useState } from "react";

import type { Api, McpServer, McpServerPatch, Me } from "../api";
import { describe } from "../chat/state";
import { ErrorLine, Field } from "../components/Field";
import { AccountPage } from "./AccountPage";
import { buildServer, EMPTY_FORM, type ServerForm, type Transport } from "./mcpConfig";

/** How often the list is read again while a server is starting. */
const POLL_MS = 2000;

const STATUS_TEXT: Readonly<Record<McpServer["status"], string>> = {
  off: "Off",
  starting: "Starting…",
  ready: "Ready",
  error: "Error",
};

type Approval = McpServer["tools"][number]["approval"];

export function Tools({ api, user }: { api: Api; user: Me }) {
  if (user.role !== "admin") {
    return (
      <AccountPage title="Tools" back>
        <p className="page-text">Only admins can manage tools.</p>
      </AccountPage>
    );
  }
  return <ToolsAdmin api={api} />;
}

function ToolsAdmin({ api }: { api: Api }) {
  const [servers, setServers] = useState<readonly McpServer[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState("");
  const [loading, setLoading] = useState(false);
  const heading = useRef<HTMLHeadingElement>(null);

  const load = useCallback(async (): Promise<void> => {
    setLoading(true);
    try {
      setServers((await api.listMcpServers()).servers);
    } catch (failure) {
      setError(describe(failure, "The MCP servers could not be loaded."));
    }
    setLoading(false);
  }, [api]);

  useEffect(() => {
    void load();
  }, [load]);

  // A server starting becomes ready (or fails) on its own: look again until none is starting.
  const starting = servers?.some((s) => s.status === "starting") ?? false;
  useEffect(() => {
    if (!starting) return;
    const timer = setTimeout(() => void load(), POLL_MS);
    return () => clearTimeout(timer);
  }, [starting, servers, load]);

  const actions: ServerActions = {
    update: async (server, patch, success) => {
      setError(null);
      setDone("");
      try {
        await api.updateMcpServer(server.name, patch);
        setDone(success);
      } catch (failure) {
        setError(describe(failure, `${server.name} could not be changed.`));
      }
      await load(); // show what the server has, not what was asked for
    },
    remove: async (server) => {
      setError(null);
      setDone("");
      try {
        await api.deleteMcpServer(server.name);
        setDone(`${server.name} was deleted.`);
        heading.current?.focus(); // its card, and the focused button, are gone
      } catch (failure) {
        setError(describe(failure, `${server.name} could not be deleted.`));
      }
      await load();
    },
  };

  return (
    <AccountPage title="Tools" back>
      <p className="page-text">
        MCP servers give the model tools. A conversation chooses which ones its model may call (the Tools button above
        the chat); a call to a tool that asks waits for the user&apos;s Approve or Deny.
      </p>
      <section className="page-section" aria-labelledby="mcp-servers-heading">
        <div className="section-head">
          <h2 id="mcp-servers-heading" ref={heading} tabIndex={-1}>
            MCP servers
          </h2>
          <button type="button" className="button" disabled={loading} onClick={() => void load()}>
            Refresh
          </button>
        </div>
        <p className="form-status" role="status">
          {done}
        </p>
        <ErrorLine error={error} />
        {servers && servers.length === 0 && <p className="page-text">No MCP server is set up yet.</p>}
        {servers?.map((server) => (
          <ServerCard key={server.name} server={server} actions={actions} />
        ))}
      </section>
      <AddServer
        api={api}
        onAdded={(server) => {
          setDone(`${server.name} was added.`);
          void load();
        }}
      />
    </AccountPage>
  );
}

interface ServerActions {
  update(server: McpServer, patch: McpServerPatch, success: string): Promise<void>;
  remove(server: McpServer): Promise<void>;
}

function ServerCard({ server, actions }: { server: McpServer; actions: ServerActions }) {
  const [confirming, setConfirming] = useState(false);
  const deleteButton = useRef<HTMLButtonElement>(null);
  const { name } = server;
  const headingId = `mcp-${name}-heading`;
  const close = (): void => {
    setConfirming(false);
    deleteButton.current?.focus();
  };
  const onEscape = (event: KeyboardEvent): void => {
    if (event.key === "Escape") close();
  };
  const setApproval = (tool: string, approval: Approval): void =>
    void actions.update(
      server,
      { approvals: { ...server.approvals, [tool]: approval } },
      `${name}/${tool} ${approval === "ask" ? "now asks before each call" : "now runs without asking"}.`,
    );

  return (
    <article className={`mcp-server mcp-${server.status}`} aria-labelledby={headingId}>
      <div className="mcp-server-head">
        <h3 id={headingId}>{name}</h3>
        <span className={`mcp-status mcp-status-${server.status}`}>{STATUS_TEXT[server.status]}</span>
        <label className="mcp-switch">
          <input
            type="checkbox"
            role="switch"
            aria-label={`${name} enabled`}
            checked={server.enabled}
            onChange={(e) =>
              void actions.update(
                server,
                { enabled: e.target.checked },
                `${name} was turned ${e.target.checked ? "on" : "off"}.`,
              )
            }
          />
          <span aria-hidden="true">Enabled</span>
        </label>
      </div>
      {server.error && (
        <p className="mcp-error">
          <span className="visually-hidden">Error: </span>
          {server.error}
        </p>
      )}
      <dl className="mcp-facts">
        <dt>Source</dt>
        <dd>{server.source === "file" ? "Settings file (SSECHAT_MCP_CONFIG): edit it there" : "Added here"}</dd>
        <dt>Transport</dt>
        <dd>{server.transport === "stdio" ? "stdio (a program)" : "Streamable HTTP"}</dd>
        {server.transport === "stdio" ? (
          <>
            <dt>Command</dt>
            <dd>
              <code>{[server.command ?? "", ...server.args].join(" ")}</code>
            </dd>
            {server.cwd && (
              <>
                <dt>Directory</dt>
                <dd>
                  <code>{server.cwd}</code>
                </dd>
              </>
            )}
            <dt>Environment</dt>
            <dd>{names(server.env)}</dd>
          </>
        ) : (
          <>
            <dt>URL</dt>
            <dd>
              <code>{server.url ?? ""}</code>
            </dd>
            <dt>Headers</dt>
            <dd>{names(server.headers)}</dd>
          </>
        )}
      </dl>
      {server.tools.length > 0 && (
        <table className="data-table mcp-tools">
          <caption className="visually-hidden">Tools of {name}</caption>
          <thead>
            <tr>
              <th scope="col">Tool</th>
              <th scope="col">Description</th>
              <th scope="col">Approval</th>
            </tr>
          </thead>
          <tbody>
            {server.tools.map((tool) => (
              <tr key={tool.name}>
                <td data-label="Tool" className="cell-strong">
                  {tool.name}
                </td>
                <td data-label="Description" className="cell-wrap">
                  {tool.description}
                </td>
                <td data-label="Approval">
                  <select
                    aria-label={`Approval for ${name}/${tool.name}`}
                    value={tool.approval}
                    onChange={(e) => setApproval(tool.name, e.target.value as Approval)}
                  >
                    <option value="ask">Ask each time</option>
                    <option value="always">Always allow</option>
                  </select>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {server.source === "admin" && (
        <div className="row-actions">
          <button
            type="button"
            className="button danger-outline"
            ref={deleteButton}
            aria-label={`Delete ${name}`}
            aria-expanded={confirming}
            onClick={() => setConfirming(!confirming)}
          >
            Delete
          </button>
        </div>
      )}
      {confirming && (
        <div className="inline-form" role="group" aria-label={`Delete ${name}?`} onKeyDown={onEscape}>
          <p className="inline-form-text">Delete the server {name}? Conversations lose its tools.</p>
          <div className="inline-form-actions">
            <button type="button" className="button" autoFocus onClick={close}>
              Cancel
            </button>
            <button
              type="button"
              className="button danger"
              aria-label={`Confirm delete ${name}`}
              onClick={() => void actions.remove(server)}
            >
              Confirm delete
            </button>
          </div>
        </div>
      )}
    </article>
  );
}

function names(list: readonly string[]): string {
  return list.length === 0 ? "none" : list.join(", ");
}

function AddServer({ api, onAdded }: { api: Api; onAdded(server: McpServer): void }) {
  const [form, setForm] = useState<ServerForm>(EMPTY_FORM);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const set =
    (key: keyof ServerForm) =>
    (value: string): void =>
      setForm((f) => ({ ...f, [key]: value }));

  const submit = async (event: FormEvent): Promise<void> => {
    event.preventDefault();
    if (busy) return;
    const built = buildServer(form);
    if (!built.ok) {
      setError(built.error);
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const added = await api.addMcpServer({ name: built.name, config: built.config });
      setForm(EMPTY_FORM); // the secrets go with it: the page shows names only from now on
      onAdded(added);
    } catch (failure) {
      setError(describe(failure, "The server could not be added."));
    }
    setBusy(false);
  };

  return (
    <section className="page-section" aria-labelledby="add-server-heading">
      <h2 id="add-server-heading">Add a server</h2>
      <form className="account-form grid-form" onSubmit={(e) => void submit(e)}>
        <Field
          label="Name"
          hint="Letters, digits, '-' and '_'; tools are named name/tool."
          autoComplete="off"
          required
          maxLength={32}
          value={form.name}
          onValue={set("name")}
        />
        <div className="field">
          <label htmlFor="add-server-transport">Transport</label>
          <select
            id="add-server-transport"
            value={form.transport}
            onChange={(e) => set("transport")(e.target.value as Transport)}
          >
            <option value="stdio">stdio: a program this server runs</option>
            <option value="http">Streamable HTTP: a URL</option>
          </select>
        </div>
        {form.transport === "stdio" ? (
          <>
            <Field label="Command" autoComplete="off" required value={form.command} onValue={set("command")} />
            <LinesField label="Arguments" hint="One per line." value={form.args} onValue={set("args")} />
            <LinesField
              label="Environment"
              hint="NAME=value, one per line. Values are secret: only names are shown after saving."
              value={form.env}
              onValue={set("env")}
            />
            <Field label="Working directory" hint="Optional" autoComplete="off" value={form.cwd} onValue={set("cwd")} />
          </>
        ) : (
          <>
            <Field
              label="URL"
              type="url"
              autoComplete="off"
              required
              placeholder="https://example.com/mcp"
              value={form.url}
              onValue={set("url")}
            />
            <LinesField
              label="Headers"
              hint="Name: value, one per line. Values are secret: only names are shown after saving."
              value={form.headers}
              onValue={set("headers")}
            />
          </>
        )}
        <ErrorLine error={error} />
        <div>
          <button type="submit" className="button primary" disabled={busy}>
            Add server
          </button>
        </div>
      </form>
    </section>
  );
}

function LinesField({
  label,
  hint,
  value,
  onValue,
}: {
  label: string;
  hint: string;
  value: string;
  onValue(value: string): void;
}) {
  const id = `add-server-${label.toLowerCase().replace(/\W+/g, "-")}`;
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <textarea
        id={id}
        rows={3}
        spellCheck={false}
        autoComplete="off"
        aria-describedby={`${id}-hint`}
        value={value}
        onChange={(e) => onValue(e.target.value)}
      />
      <p className="field-hint" id={`${id}-hint`}>
        {hint}
      </p>
    </div>
  );
}
