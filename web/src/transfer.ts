/**
 * Moving conversations out and in: the export URLs, and the import upload.
 *
 * Exports are plain same-origin GETs that the session cookie authenticates, answered as
 * attachments: the page links to them (`<a href download>`), so the browser streams the file to
 * disk instead of holding it in memory.
 *
 * The import is sent with XMLHttpRequest, not fetch: only XHR reports upload progress
 * (`upload.onprogress`). The body is the file itself (the server reads any content type). The
 * request is same-origin, so the browser adds the cookie and the `Origin` header the server's
 * guard checks; nothing else is needed. This module must never read the file's contents (the
 * browser streams it) nor touch React or the DOM beyond the request.
 */

import { ApiError, type ImportResult, NetworkError } from "./api";

export type ExportFormat = "json" | "markdown";

/** The download of one conversation, as our JSON (every branch) or Markdown (the current one). */
export function conversationExportUrl(conversationId: string, format: ExportFormat): string {
  return `/api/conversations/${encodeURIComponent(conversationId)}/export?format=${format}`;
}

/** The download of every conversation of the user, as one JSON document. */
export const EXPORT_ALL_URL = "/api/export";

export const IMPORT_URL = "/api/import";

/** Where an import is: sending the file (bytes so far, of `total`), then the server at work. */
export type ImportProgress =
  { readonly phase: "uploading"; readonly loaded: number; readonly total: number } | { readonly phase: "processing" };

/** The part of XMLHttpRequest the upload uses; tests pass a fake. */
export interface UploadRequest {
  open(method: string, url: string): void;
  setRequestHeader(name: string, value: string): void;
  send(body: Blob): void;
  abort(): void;
  readonly status: number;
  readonly statusText: string;
  readonly responseText: string;
  readonly upload: { onprogress: ((event: ProgressEvent) => void) | null; onload: (() => void) | null };
  onload: (() => void) | null;
  onerror: (() => void) | null;
  onabort: (() => void) | null;
}

export interface UploadOptions {
  baseUrl?: string;
  onProgress?(progress: ImportProgress): void;
  signal?: AbortSignal;
  /** Makes the request; defaults to a new XMLHttpRequest. */
  request?: () => UploadRequest;
}

/**
 * POST `file` to the import route. Resolves with the server's answer; rejects with an ApiError
 * (the server's `{"error": {"code", "message"}}`: a 400 says what is wrong and where, 413 that
 * it is too large), a NetworkError, or an AbortError DOMException when `signal` aborts.
 */
export function uploadImport(file: Blob, options: UploadOptions = {}): Promise<ImportResult> {
  const { signal, onProgress } = options;
  return new Promise<ImportResult>((resolve, reject) => {
    if (signal?.aborted) {
      reject(new DOMException("The import was cancelled.", "AbortError"));
      return;
    }
    const xhr = options.request ? options.request() : (new XMLHttpRequest() as UploadRequest);
    const onAbort = (): void => xhr.abort();
    const settle = (): void => signal?.removeEventListener("abort", onAbort);
    xhr.open("POST", (options.baseUrl ?? "") + IMPORT_URL);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
    xhr.upload.onprogress = (event) => {
      // Without a known length the bar cannot say how far; the file's own size can.
      const total = event.lengthComputable && event.total > 0 ? event.total : file.size;
      onProgress?.({ phase: "uploading", loaded: Math.min(event.loaded, total), total });
    };
    // Every byte is sent: what is left is the server reading and writing it.
    xhr.upload.onload = () => onProgress?.({ phase: "processing" });
    xhr.onload = () => {
      settle();
      const answer = parseJson(xhr.responseText);
      if (xhr.status >= 200 && xhr.status < 300 && isImportResult(answer)) resolve(answer);
      else if (xhr.status >= 200 && xhr.status < 300)
        reject(new NetworkError("The server's answer was not understood."));
      else reject(toApiError(xhr.status, xhr.statusText, answer));
    };
    xhr.onerror = () => {
      settle();
      reject(new NetworkError("The file could not be sent: the connection to the server broke."));
    };
    xhr.onabort = () => {
      settle();
      reject(new DOMException("The import was cancelled.", "AbortError"));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    onProgress?.({ phase: "uploading", loaded: 0, total: file.size });
    xhr.send(file);
  });
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return null;
  }
}

function isImportResult(value: unknown): value is ImportResult {
  if (typeof value !== "object" || value === null) return false;
  const record = value as Record<string, unknown>;
  return (
    typeof record.imported === "number" && typeof record.skipped === "number" && Array.isArray(record.conversations)
  );
}

const STATUS_TEXT: Readonly<Record<number, string>> = {
  413: "The file is larger than the server accepts.",
};

function toApiError(status: number, statusText: string, answer: unknown): ApiError {
  const error =
    typeof answer === "object" && answer !== null
      ? (answer as { error?: { code?: unknown; message?: unknown } }).error
      : undefined;
  const code = typeof error?.code === "string" && error.code !== "" ? error.code : `http_${status}`;
  const message =
    typeof error?.message === "string" && error.message !== ""
      ? error.message
      : (STATUS_TEXT[status] ?? (`${status} ${statusText}`.trim() || "The import failed."));
  return new ApiError(status, code, message);
}

/** "Imported 3 conversations (1 was already here)": what an import did, in a sentence. */
export function importSummary(result: ImportResult): string {
  const { imported, skipped } = result;
  const done = `Imported ${imported} conversation${imported === 1 ? "" : "s"}`;
  if (skipped === 0) return `${done}.`;
  return `${done} (${skipped} ${skipped === 1 ? "was" : "were"} already here).`;
}

/** Upload progress in whole percent, or null when there is nothing to measure yet. */
export function percentOf(progress: ImportProgress): number | null {
  if (progress.phase !== "uploading" || progress.total <= 0) return null;
  return Math.min(100, Math.floor((progress.loaded / progress.total) * 100));
}
