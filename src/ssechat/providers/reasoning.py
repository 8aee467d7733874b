"""A leading ``<think>…</think>`` in an answer's text, told apart from the answer, sans-IO.

Some servers put the model's reasoning in the content itself (llama.cpp with
``--reasoning-format none``, vLLM without a reasoning parser, Groq's ``raw`` format, DeepSeek R1
through Together). ``ThinkSplitter`` is fed the content piece by piece, cut anywhere, and gives
back ``(reasoning, answer)`` pieces:

- only a tag at the very start of the content (after whitespace) opens reasoning; its names come
  from a setting (``Settings.reasoning_tags``) and match case-insensitively;
- the matching closing tag ends it; the text after it is the answer (the whitespace right after
  either tag is dropped), and a tag later in the answer, or in a code block, is answer text;
- what might still become a tag (``"<thi"``) is held back, and only that: as soon as the first
  character that is neither whitespace nor ``<`` arrives, or the held text can no longer be a
  tag, the splitter decides "no reasoning" and sets ``passthrough``. From then on its owner can
  hand pieces on untouched, one attribute check each (``feed`` would return them as they are);
- at the end (``end``), what is held inside an unclosed block is reasoning, and what was held
  before any tag (a lone ``"<thi"``) is answer.

This module must never do IO, and never hold back more than a tag's length of text.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["DEFAULT_TAGS", "ThinkSplitter", "parse_tags"]

DEFAULT_TAGS = ("think", "thinking")

# The states of a splitter that is not yet passing through.
_START = 0  # before any non-space text: a tag may be coming
_OPENED = 1  # just after the opening tag: leading whitespace of the reasoning is dropped
_THINK = 2  # inside the reasoning, looking for the closing tag
_CLOSED = 3  # just after the closing tag: leading whitespace of the answer is dropped


def parse_tags(tags: str | Iterable[str]) -> tuple[str, ...]:
    """Tag names from the setting's comma-separated text (or a list): trimmed, lower-cased, no
    brackets, duplicates and empties dropped; raises ``ValueError`` for a name with ``<``,
    ``>``, ``/`` or whitespace in it."""
    names = tags.split(",") if isinstance(tags, str) else tags
    found: list[str] = []
    for raw in names:
        name = raw.strip().lower()
        if not name:
            continue
        if any(c in name for c in "<>/") or any(c.isspace() for c in name):
            raise ValueError(f"reasoning tag {raw!r} must be a bare name, such as 'think'")
        if name not in found:
            found.append(name)
    return tuple(found)


class ThinkSplitter:
    """Splits one answer's content into reasoning and answer (see the module)."""

    __slots__ = ("_close", "_held", "_opens", "_state", "passthrough")

    def __init__(self, tags: Iterable[str] = DEFAULT_TAGS) -> None:
        self._opens = tuple((f"<{name}>", f"</{name}>") for name in parse_tags(tags))
        self._state = _START
        self._held = ""
        self._close = ""
        # No tag names: nothing can ever open reasoning.
        self.passthrough = not self._opens

    def feed(self, text: str) -> tuple[str, str]:
        """The next piece of content in; the ``(reasoning, answer)`` it completes out."""
        if self.passthrough:
            return "", text
        state = self._state
        if state == _START:
            return self._start(self._held + text)
        if state == _THINK:
            return self._think(self._held + text)
        text = text.lstrip()
        if not text:
            return "", ""
        if state == _OPENED:
            self._state = _THINK
            return self._think(text)
        self.passthrough = True  # _CLOSED: the answer's first character came
        return "", text

    def end(self) -> tuple[str, str]:
        """The content is over: what was held, as ``(reasoning, answer)``."""
        held, self._held = self._held, ""
        state = self._state
        self.passthrough = True
        if state == _THINK:
            return held, ""  # never closed: all of it was reasoning
        return "", held  # before any tag: it never became one

    def _start(self, text: str) -> tuple[str, str]:
        rest = text.lstrip()
        if not rest:
            self._held = text  # whitespace only so far: a tag may still come
            return "", ""
        if rest[0] != "<":
            self.passthrough = True
            self._held = ""
            return "", text
        for open_tag, close_tag in self._opens:
            size = len(open_tag)
            head = rest[:size].lower()
            if head == open_tag:
                self._held = ""
                self._close = close_tag
                self._state = _OPENED
                return self.feed(rest[size:])
            if len(rest) < size and open_tag.startswith(head):
                self._held = text  # "<thi": may still become "<think>"
                return "", ""
        self.passthrough = True  # "<b>", "<thinker": an answer that starts with markup
        self._held = ""
        return "", text

    def _think(self, text: str) -> tuple[str, str]:
        close = self._close
        size = len(close)
        # Compared slice by slice (not text.lower().find): lower() may change a length.
        at = text.find("<")
        while at >= 0 and text[at : at + size].lower() != close:
            at = text.find("<", at + 1)
        if at >= 0:
            self._held = ""
            self._state = _CLOSED
            return text[:at], self.feed(text[at + size :])[1]
        # Hold a tail that may be the start of the closing tag; the tag has one "<", so only
        # the last "<" of the tail can begin it.
        cut = text.rfind("<", max(0, len(text) - size + 1))
        if cut >= 0 and close.startswith(text[cut:].lower()):
            self._held = text[cut:]
            return text[:cut], ""
        self._held = ""
        return text, ""
