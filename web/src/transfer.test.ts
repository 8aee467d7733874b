import { describe, expect, it } from "vitest";

import { Api, ApiError, type ImportResult, NetworkError } from "./api";
import {
  conversationExportUrl,
  type ImportProgress,
  importSummary,
  percentOf,
  type UploadRequest,
  uploadImport,
} from "./transfer";

/** An XMLHttpRequest the test drives: progress, the answer, a broken connection. */
class FakeXhr implements UploadRequest {
  method = "";
  url = "";
  headers: Record<string, string> = {};
  sent: Blob | null = null;
  aborted = false;
  status = 0;
  statusText = "";
  responseText = "";
  upload: UploadRequest["upload"] = { onprogress: null, onload: null };
  onload: (() => void) | null = null;
  onerror: (() => void) | null = null;
  onabort: (() => void) | null = null;

  open(method: string, url: string): void {
    this.method = method;
    this.url = url;
  }
  setRequestHeader(name: string, value: string): void {
    this.headers[name] = value;
  }
  send(body: Blob): void {
    this.sent = body;
  }
  abort(): void {
    this.aborted = true;
    this.onabort?.();
  }

  progress(loaded: number, total: number, computable = true): void {
    this.upload.onprogress?.({ loaded, total, lengthComputable: computable } as ProgressEvent);
  }
  uploaded(): void {
    this.upload.onload?.();
  }
  answer(status: number, body: unknown, statusText = ""): void {
    this.status = status;
    this.statusText = statusText;
    this.responseText = typeof body === "string" ? body : JSON.stringify(body);
    this.onload?.();
  }
}

const FILE = new Blob(["x".repeat(1000)], { type: "application/json" });
const RESULT: ImportResult = { imported: 2, skipped: 1, conversations: ["a", "b"] };

function start(file: Blob = FILE, signal?: AbortSignal) {
  const xhr = new FakeXhr();
  const seen: ImportProgress[] = [];
  const done = uploadImport(file, { request: () => xhr, onProgress: (p) => seen.push(p), signal, baseUrl: "/base" });
  return { xhr, seen, done };
}

describe("uploadImport", () => {
  it("posts the file itself, reports progress, then the server's work, then its answer", async () => {
    const { xhr, seen, done } = start();
    expect(xhr.method).toBe("POST");
    expect(xhr.url).toBe("/base/api/import");
    expect(xhr.sent).toBe(FILE);
    expect(xhr.headers).toEqual({ Accept: "application/json", "Content-Type": "application/json" });
    xhr.progress(250, 1000);
    xhr.progress(1000, 1000);
    xhr.uploaded();
    xhr.answer(200, RESULT);
    await expect(done).resolves.toEqual(RESULT);
    expect(seen).toEqual([
      { phase: "uploading", loaded: 0, total: 1000 },
      { phase: "uploading", loaded: 250, total: 1000 },
      { phase: "uploading", loaded: 1000, total: 1000 },
      { phase: "processing" },
    ]);
    expect(seen.map(percentOf)).toEqual([0, 25, 100, null]);
  });

  it("measures against the file's size when the browser cannot", async () => {
    const { xhr, seen, done } = start(new Blob(["abcd"]));
    expect(xhr.headers["Content-Type"]).toBe("application/octet-stream");
    xhr.progress(3, 0, false);
    expect(seen.at(-1)).toEqual({ phase: "uploading", loaded: 3, total: 4 });
    xhr.answer(200, RESULT);
    await done;
  });

  it("rejects with the server's message on a 400 and a 413", async () => {
    const first = start();
    first.xhr.answer(400, { error: { code: "invalid_import", message: "mapping.abc: a cycle" } });
    const refused = await first.done.catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ApiError);
    expect(refused).toMatchObject({ status: 400, code: "invalid_import", message: "mapping.abc: a cycle" });

    const second = start();
    second.xhr.answer(413, "<html>too big</html>", "Payload Too Large");
    await expect(second.done).rejects.toMatchObject({
      status: 413,
      code: "http_413",
      message: "The file is larger than the server accepts.",
    });
  });

  it("rejects a 200 it cannot read, and a broken connection, as network errors", async () => {
    const first = start();
    first.xhr.answer(200, "not json");
    await expect(first.done).rejects.toBeInstanceOf(NetworkError);
    const second = start();
    second.xhr.onerror?.();
    await expect(second.done).rejects.toBeInstanceOf(NetworkError);
  });

  it("aborts the request when the signal does (Cancel)", async () => {
    const controller = new AbortController();
    const { xhr, done } = start(FILE, controller.signal);
    xhr.progress(10, 1000);
    controller.abort();
    expect(xhr.aborted).toBe(true);
    await expect(done).rejects.toMatchObject({ name: "AbortError" });
  });

  it("does not start when already cancelled", async () => {
    const controller = new AbortController();
    controller.abort();
    const xhr = new FakeXhr();
    await expect(uploadImport(FILE, { request: () => xhr, signal: controller.signal })).rejects.toMatchObject({
      name: "AbortError",
    });
    expect(xhr.sent).toBeNull();
  });
});

describe("Api.importFile", () => {
  it("reports a 401 to the session's listeners", async () => {
    const api = new Api();
    const told: ApiError[] = [];
    api.onUnauthenticated((e) => told.push(e));
    const xhr = new FakeXhr();
    const done = api.importFile(FILE, { request: () => xhr });
    xhr.answer(401, { error: { code: "unauthenticated", message: "Sign in." } });
    await expect(done).rejects.toBeInstanceOf(ApiError);
    expect(told.map((e) => e.status)).toEqual([401]);
  });
});

describe("sentences and URLs", () => {
  it("says what an import did", () => {
    expect(importSummary({ imported: 1, skipped: 0, conversations: ["a"] })).toBe("Imported 1 conversation.");
    expect(importSummary({ imported: 3, skipped: 1, conversations: [] })).toBe(
      "Imported 3 conversations (1 was already here).",
    );
    expect(importSummary({ imported: 0, skipped: 2, conversations: [] })).toBe(
      "Imported 0 conversations (2 were already here).",
    );
  });

  it("escapes the conversation id in an export URL", () => {
    expect(conversationExportUrl("a/b?c", "markdown")).toBe("/api/conversations/a%2Fb%3Fc/export?format=markdown");
  });
});
