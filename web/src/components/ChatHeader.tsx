import { useEffect, useState } from "react";

import type { ChatState } from "../chat/core";
import { titleOf } from "./Sidebar";
import { ExportMenu } from "./ExportMenu";
import { Icon } from "./Icon";
import { ToolsPicker } from "./ToolsPicker";

interface Props {
  state: ChatState;
  model: string;
  onMenu(): void;
  onNewChat(): void;
  onModel(model: string): void;
  onSystemPrompt(text: string): Promise<boolean>;
  /** The tools the conversation (or the new chat) offers its model. */
  tools: readonly string[];
  onTools(keys: string[]): void;
  onRefreshTools(): void;
}

export function ChatHeader(props: Props) {
  const { state, model, onMenu, onNewChat, onModel, onSystemPrompt } = props;
  const [showPrompt, setShowPrompt] = useState(false);
  const ids = state.models.map((m) => m.id);
  if (model && !ids.includes(model)) ids.unshift(model);
  const savedPrompt = state.conversation ? (state.conversation.system_prompt ?? "") : state.newChat.systemPrompt;
  const busy = Object.keys(state.live).length > 0;

  return (
    <header className="chat-header">
      <div className="chat-header-row">
        <button type="button" className="icon-button menu-button" aria-label="Menu" onClick={onMenu}>
          <Icon size={18}>
            <path d="M3 6h18M3 12h18M3 18h18" />
          </Icon>
        </button>
        <h1 className="chat-title">{state.currentId === null ? "New chat" : titleOf(state.conversation)}</h1>
        <label className="model-picker">
          <span className="model-label">Model</span>
          <select aria-label="Model" value={model} disabled={busy} onChange={(e) => onModel(e.target.value)}>
            {ids.map((id) => (
              <option key={id} value={id}>
                {id}
              </option>
            ))}
          </select>
        </label>
        <ToolsPicker tools={state.tools} chosen={props.tools} onChange={props.onTools} onOpen={props.onRefreshTools} />
        <button
          type="button"
          className={`button subtle prompt-toggle${savedPrompt ? " has-prompt" : ""}`}
          aria-expanded={showPrompt}
          aria-controls="system-prompt-panel"
          title={savedPrompt ? "System prompt (set)" : "System prompt"}
          onClick={() => setShowPrompt((v) => !v)}
        >
          <Icon size={16}>
            <path d="M4 6h16M4 12h10M4 18h7" />
          </Icon>
          <span className="prompt-label">System prompt</span>
        </button>
        {state.currentId !== null && <ExportMenu conversationId={state.currentId} />}
        <button
          type="button"
          className="icon-button header-new-chat"
          aria-label="New chat"
          title="New chat"
          onClick={onNewChat}
        >
          <Icon size={18}>
            <path d="M12 5v14M5 12h14" />
          </Icon>
        </button>
      </div>
      {showPrompt && (
        <SystemPromptPanel
          key={state.currentId ?? "new"}
          saved={savedPrompt}
          onSave={onSystemPrompt}
          onClose={() => setShowPrompt(false)}
        />
      )}
    </header>
  );
}

function SystemPromptPanel({
  saved,
  onSave,
  onClose,
}: {
  saved: string;
  onSave(text: string): Promise<boolean>;
  onClose(): void;
}) {
  const [text, setText] = useState(saved);
  const [saving, setSaving] = useState(false);
  useEffect(() => setText(saved), [saved]);
  return (
    <div className="system-prompt" id="system-prompt-panel">
      <label className="system-prompt-label" htmlFor="system-prompt-input">
        System prompt
      </label>
      <textarea
        id="system-prompt-input"
        placeholder="Instructions the model follows in this conversation, e.g. “Answer briefly.”"
        value={text}
        rows={3}
        onChange={(e) => setText(e.target.value)}
      />
      <div className="edit-actions">
        <button type="button" className="button" onClick={onClose}>
          Close
        </button>
        <button
          type="button"
          className="button primary"
          disabled={saving || text === saved}
          onClick={async () => {
            setSaving(true);
            const ok = await onSave(text);
            setSaving(false);
            if (ok) onClose();
          }}
        >
          Save
        </button>
      </div>
    </div>
  );
}
