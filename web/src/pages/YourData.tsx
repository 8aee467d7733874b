/**
 * Settings' "Your data" section: download every conversation (our JSON, every branch), and
 * import an export file (ours, ChatGPT's data export or its conversations.json, LibreChat's).
 *
 * The import shows the upload's progress (`Api.importFile`: XMLHttpRequest's upload events),
 * then that the server is at work, then what it did, or its refusal, which says what is wrong
 * and where in the file. Cancel aborts the request; the server writes nothing unless the whole
 * file is good, so a cancelled or refused import leaves nothing behind.
 */

import { useEffect, useId, useRef, useState } from "react";

import { type Api, type ImportResult, isAbort } from "../api";
import { describe } from "../chat/state";
import { Link } from "../components/Link";
import { conversationPath } from "../routes";
import { EXPORT_ALL_URL, type ImportProgress, importSummary, percentOf } from "../transfer";

type ImportState =
  | { readonly kind: "idle" }
  | { readonly kind: "running"; readonly file: string; readonly progress: ImportProgress }
  | { readonly kind: "done"; readonly result: ImportResult }
  | { readonly kind: "failed"; readonly message: string }
  | { readonly kind: "cancelled" };

export function YourData({ api }: { api: Pick<Api, "importFile"> }) {
  const [state, setState] = useState<ImportState>({ kind: "idle" });
  const controller = useRef<AbortController | null>(null);
  const input = useRef<HTMLInputElement>(null);
  const inputId = useId();

  // Leaving the page ends an upload in flight (the server then writes nothing).
  useEffect(() => () => controller.current?.abort(), []);

  const start = async (file: File): Promise<void> => {
    controller.current?.abort();
    const running = new AbortController();
    controller.current = running;
    setState({ kind: "running", file: file.name, progress: { phase: "uploading", loaded: 0, total: file.size } });
    try {
      const result = await api.importFile(file, {
        signal: running.signal,
        onProgress: (progress) => {
          if (controller.current === running) setState({ kind: "running", file: file.name, progress });
        },
      });
      if (controller.current === running) setState({ kind: "done", result });
    } catch (error) {
      if (controller.current !== running) return;
      setState(
        isAbort(error)
          ? { kind: "cancelled" }
          : { kind: "failed", message: describe(error, "The file could not be imported.") },
      );
    } finally {
      if (controller.current === running) controller.current = null;
      // The same file may be chosen again (after fixing it, or after a cancel).
      if (input.current) input.current.value = "";
    }
  };

  const running = state.kind === "running";

  return (
    <section className="page-section" aria-labelledby="data-heading">
      <h2 id="data-heading">Your data</h2>
      <p className="page-text">
        Download every conversation, with all its branches, as one JSON file that ssechat can import again.
      </p>
      <p>
        <a className="button" href={EXPORT_ALL_URL} download>
          Export all conversations
        </a>
      </p>
      <div className="import-field">
        <label htmlFor={inputId}>Import conversations</label>
        <p className="field-hint" id={`${inputId}-hint`}>
          ChatGPT’s data export (the .zip, or the conversations.json inside it), a LibreChat export, or an ssechat
          export. Conversations imported before are skipped.
        </p>
        <input
          ref={input}
          id={inputId}
          type="file"
          accept=".json,.zip,application/json,application/zip"
          aria-describedby={`${inputId}-hint`}
          disabled={running}
          onChange={(e) => {
            const file = e.target.files?.[0];
            if (file) void start(file);
          }}
        />
      </div>
      <ImportStatus state={state} onCancel={() => controller.current?.abort()} />
    </section>
  );
}

function ImportStatus({ state, onCancel }: { state: ImportState; onCancel(): void }) {
  const uploading = state.kind === "running" && state.progress.phase === "uploading";
  const percent = state.kind === "running" ? percentOf(state.progress) : null;
  return (
    <div className="import-status">
      {state.kind === "running" && (
        <div className="import-progress">
          <progress
            max={100}
            value={uploading && percent !== null ? percent : undefined}
            aria-label={`Importing ${state.file}`}
            aria-valuetext={uploading ? `${percent ?? 0}% sent` : "Importing…"}
          />
          <button type="button" className="button" onClick={onCancel}>
            Cancel
          </button>
        </div>
      )}
      {/* A live region without the status role: the page's other forms each have their status. */}
      <p className="form-status" aria-live="polite">
        {state.kind === "running" &&
          (uploading ? `Uploading ${state.file}… ${percent ?? 0}%` : `Importing ${state.file}…`)}
        {state.kind === "cancelled" && "Import cancelled: nothing was imported."}
        {state.kind === "done" && importSummary(state.result)}
        {state.kind === "done" && state.result.conversations[0] !== undefined && (
          <>
            {" "}
            <Link to={conversationPath(state.result.conversations[0])}>Open the first one</Link>
          </>
        )}
      </p>
      {state.kind === "failed" && (
        <p className="form-error" role="alert">
          The file was not imported: {state.message}
        </p>
      )}
    </div>
  );
}
