"""A conversation as Markdown: its title, then the current branch (root to current leaf), each
message under a heading that says who wrote it, its text as written.

Only the current branch: the other branches, reasoning and tool calls are in the JSON export.
Pure: records in (read through ``transfer.ours``'s protocols), text out; never IO.
"""

from __future__ import annotations

from collections.abc import Sequence

from ssechat.transfer.ours import ConversationRecord, MessageRecord

__all__ = ["current_branch", "render_markdown"]


def current_branch(
    conversation: ConversationRecord, messages: Sequence[MessageRecord]
) -> list[MessageRecord]:
    """The path from the root down to the conversation's current leaf (empty: it has none)."""
    by_id = {message.id: message for message in messages}
    path: list[MessageRecord] = []
    seen: set[str] = set()
    at = conversation.current_leaf_id
    while at is not None and at in by_id and at not in seen:  # a cycle cannot loop forever
        seen.add(at)
        path.append(by_id[at])
        at = by_id[at].parent_id
    path.reverse()
    return path


def render_markdown(conversation: ConversationRecord, messages: Sequence[MessageRecord]) -> str:
    """The Markdown document of ``conversation``'s current branch."""
    parts = [f"# {_one_line(conversation.title or 'Untitled conversation')}"]
    if conversation.system_prompt:
        parts.append(f"## System prompt\n\n{conversation.system_prompt}")
    for message in current_branch(conversation, messages):
        parts.append(f"## {_heading(message)}\n\n{message.content}")
    return "\n\n".join(parts) + "\n"


def _heading(message: MessageRecord) -> str:
    if message.role == "user":
        return "You"
    if message.role == "system":
        return "System"
    heading = f"Assistant ({message.model})" if message.model else "Assistant"
    if message.status not in ("complete", "streaming"):
        heading += f" [{message.status}]"
    return heading


def _one_line(text: str) -> str:
    # A title with a newline would end the heading early.
    return " ".join(text.split())
