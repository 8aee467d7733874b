/**
 * The admins' "Add server" form, turned into an `mcpServers` entry (the shape other MCP clients
 * use): `{command, args, env, cwd}` for a program run over stdio, `{type: "http", url, headers}`
 * for a Streamable HTTP server. Pure: no DOM, no IO.
 *
 * Environment values and header values are secrets: an error message may name a line and a
 * variable or header name, never a value.
 */

export type Transport = "stdio" | "http";

export interface ServerForm {
  name: string;
  transport: Transport;
  command: string;
  /** One argument per line. */
  args: string;
  /** KEY=VALUE lines. */
  env: string;
  cwd: string;
  url: string;
  /** "Name: value" lines. */
  headers: string;
}

export const EMPTY_FORM: ServerForm = {
  name: "",
  transport: "stdio",
  command: "",
  args: "",
  env: "",
  cwd: "",
  url: "",
  headers: "",
};

export type Built = { ok: true; name: string; config: Record<string, unknown> } | { ok: false; error: string };

/** What the server accepts as a server's name (the key in `mcpServers`). */
const NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** An HTTP header name: an RFC 9110 token. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

type Parsed = { ok: true; values: Record<string, string> } | { ok: false; error: string };

/** Lines without their line ends, blank ones (and `#` comments) left out, numbered from 1. */
function lines(text: string): { n: number; line: string }[] {
  return text
    .split(/\r\n|\r|\n/)
    .map((line, i) => ({ n: i + 1, line }))
    .filter(({ line }) => line.trim() !== "" && !line.trimStart().startsWith("#"));
}

/** KEY=VALUE lines (split at the first "="; the value kept as written). */
export function parseEnv(text: string): Parsed {
  const values: Record<string, string> = {};
  for (const { n, line } of lines(text)) {
    const eq = line.indexOf("=");
    const key = (eq < 0 ? line : line.slice(0, eq)).trim();
    if (eq < 0) return { ok: false, error: `Environment line ${n}: write it as NAME=value.` };
    if (!ENV_NAME.test(key)) return { ok: false, error: `Environment line ${n}: "${key}" is not a variable name.` };
    values[key] = line.slice(eq + 1);
  }
  return { ok: true, values };
}

/** "Name: value" lines (split at the first ":"; the value trimmed, as HTTP does). */
export function parseHeaders(text: string): Parsed {
  const values: Record<string, string> = {};
  for (const { n, line } of lines(text)) {
    const colon = line.indexOf(":");
    if (colon < 0) return { ok: false, error: `Header line ${n}: write it as Name: value.` };
    const name = line.slice(0, colon).trim();
    if (!HEADER_NAME.test(name)) return { ok: false, error: `Header line ${n}: "${name}" is not a header name.` };
    values[name] = line.slice(colon + 1).trim();
  }
  return { ok: true, values };
}

/** One argument per line, as written (spaces kept); blank lines left out. */
export function parseArgs(text: string): string[] {
  return text.split(/\r\n|\r|\n/).filter((line) => line.trim() !== "");
}

/** The form as the body of `POST /api/admin/mcp`, or what is wrong with it. */
export function buildServer(form: ServerForm): Built {
  const name = form.name.trim();
  if (!NAME.test(name)) {
    return {
      ok: false,
      error: "The name must be 1 to 32 letters, digits, '-' or '_', starting with a letter or a digit.",
    };
  }
  if (form.transport === "stdio") {
    const command = form.command.trim();
    if (command === "") return { ok: false, error: "Give the command that starts the server." };
    const env = parseEnv(form.env);
    if (!env.ok) return env;
    const config: Record<string, unknown> = { command, args: parseArgs(form.args) };
    if (Object.keys(env.values).length > 0) config.env = env.values;
    if (form.cwd.trim() !== "") config.cwd = form.cwd.trim();
    return { ok: true, name, config };
  }
  const url = form.url.trim();
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return { ok: false, error: "Give the server's URL, starting with http:// or https://." };
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    return { ok: false, error: "Give the server's URL, starting with http:// or https://." };
  }
  const headers = parseHeaders(form.headers);
  if (!headers.ok) return headers;
  const config: Record<string, unknown> = { type: "http", url };
  if (Object.keys(headers.values).length > 0) config.headers = headers.values;
  return { ok: true, name, config };
}
