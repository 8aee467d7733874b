import { describe, expect, it } from "vitest";

import { buildServer, EMPTY_FORM, parseArgs, parseEnv, parseHeaders } from "./mcpConfig";

describe("the Add server form", () => {
  it("builds a stdio entry: arguments one per line, env KEY=VALUE split at the first '='", () => {
    const built = buildServer({
      ...EMPTY_FORM,
      name: " files ",
      command: " npx ",
      args: "-y\r\n@modelcontextprotocol/server-filesystem\n\n/srv/my docs\n",
      env: "TOKEN=abc=def\n# a comment\n\nEMPTY=\n",
      cwd: " /srv ",
    });
    expect(built).toEqual({
      ok: true,
      name: "files",
      config: {
        command: "npx",
        args: ["-y", "@modelcontextprotocol/server-filesystem", "/srv/my docs"],
        env: { TOKEN: "abc=def", EMPTY: "" },
        cwd: "/srv",
      },
    });
  });

  it("builds a Streamable HTTP entry with headers split at the first ':'", () => {
    const built = buildServer({
      ...EMPTY_FORM,
      name: "search",
      transport: "http",
      command: "ignored",
      url: "https://mcp.example.com/mcp",
      headers: "Authorization: Bearer a:b\nX-Team:  red  \n",
    });
    expect(built).toEqual({
      ok: true,
      name: "search",
      config: {
        type: "http",
        url: "https://mcp.example.com/mcp",
        headers: { Authorization: "Bearer a:b", "X-Team": "red" },
      },
    });
  });

  it("leaves out env, headers and cwd when there are none", () => {
    expect(buildServer({ ...EMPTY_FORM, name: "a", command: "run" })).toEqual({
      ok: true,
      name: "a",
      config: { command: "run", args: [] },
    });
    expect(buildServer({ ...EMPTY_FORM, name: "b", transport: "http", url: "http://127.0.0.1:9/mcp" })).toEqual({
      ok: true,
      name: "b",
      config: { type: "http", url: "http://127.0.0.1:9/mcp" },
    });
  });

  it("refuses what the server would, naming the line but never a secret value", () => {
    const env = parseEnv("GOOD=1\nno equals sign s3cret\n");
    expect(env).toEqual({ ok: false, error: "Environment line 2: write it as NAME=value." });
    const badName = parseEnv("1BAD=s3cret");
    expect(badName.ok).toBe(false);
    if (!badName.ok) expect(badName.error).not.toContain("s3cret");
    const header = parseHeaders("Authorization Bearer s3cret");
    expect(header.ok).toBe(false);
    if (!header.ok) expect(header.error).not.toContain("s3cret");
    expect(parseHeaders("Bad Name: s3cret").ok).toBe(false);

    for (const name of ["", "-x", "has space", "a".repeat(33), "a/b"]) {
      expect(buildServer({ ...EMPTY_FORM, name, command: "run" }).ok).toBe(false);
    }
    expect(buildServer({ ...EMPTY_FORM, name: "a" }).ok).toBe(false); // no command
    for (const url of ["", "example.com/mcp", "ftp://example.com/", "javascript:alert(1)"]) {
      expect(buildServer({ ...EMPTY_FORM, name: "a", transport: "http", url }).ok).toBe(false);
    }
  });

  it("keeps an argument's spaces as written", () => {
    expect(parseArgs("  --flag  \n\n x")).toEqual(["  --flag  ", " x"]);
  });
});
