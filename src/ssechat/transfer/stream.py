"""The streaming reader of an uploaded export: bytes pushed in, conversations out one at a time,
in memory bounded by the largest conversation (``MAX_CONVERSATION_BYTES``), never by the file.

    reader = ImportReader(max_content_chars=...)
    for chunk in body:
        handle(reader.feed(chunk))      # the conversations completed by this chunk, checked
    handle(reader.close())              # what only the end says (a top-level object's keys)

A *unit* is what is built whole and handed to its format's per-conversation parser, then to
``check_limits``; the file's shape says what the units are:

    [ {"mapping": ...}, ... ] or []      ChatGPT's conversations.json: each item, ``$[i]``
    [ {"conversationId", "messages"}, ...]  LibreChat, a list: each item, ``$[i]``
    {"format": "ssechat-export", "version", "conversations": [...]}
                                         ours: each ``$.conversations[i]``; the other keys
                                         (small) are kept whole and checked at the latest at
                                         ``close()`` (a hand-made file may name its format last)
    {"conversationId", "messages", ...}  LibreChat, one conversation: the whole object, ``$``
    ``PK`` (a zip)                       cannot be push-parsed (its directory is at its end):
                                         ``is_zip`` says so, and ``zip_conversations`` reads
                                         ChatGPT's ``conversations.json`` member from a file

The first item of a list says whose list it is. Nothing here is final before ``close()``: a
caller that writes what ``feed`` returned must undo it when ``close()`` (or a later ``feed``)
raises. Every refusal is an ``ImportFormatError`` (400) naming where: a unit's JSON path, and for
bytes that are not JSON the byte offset (``$[12], byte 40960``); no other exception escapes for
any input. JSON is parsed by ijson's yajl2_c backend (C); its pure-Python fallback would be ten
times slower, so a missing C backend fails at import, loudly.

Pure and sans-IO: bytes in, values out; this module never opens a file or a socket (the zip is
read from a file object its caller opened).
"""

from __future__ import annotations

import json
import re
import zipfile
import zlib
from collections.abc import Iterator
from typing import IO, Any, Final, Literal

import ijson
import ijson.utils

from ssechat.transfer import chatgpt, librechat, ours
from ssechat.transfer.limits import MAX_CONTENT_CHARS, check_limits
from ssechat.transfer.model import ImportedConversation, ImportFormatError, json_kind

__all__ = [
    "MAX_CONVERSATION_BYTES",
    "MAX_MEMBER_BYTES",
    "SLICE_BYTES",
    "SUPPORTED",
    "Format",
    "ImportReader",
    "read_conversations",
    "zip_conversations",
]

Format = Literal["chatgpt-zip", "ssechat", "chatgpt", "librechat"]

SUPPORTED: Final = (
    "ssechat's JSON export, ChatGPT's conversations.json or its data-export zip, "
    "and LibreChat's JSON export (recursive or flat)"
)
MAX_CONVERSATION_BYTES = 32 * 1024 * 1024
"""The most JSON one unit (a conversation) may take, and the most the top-level keys of an
object beside ``conversations`` may take together: what bounds the reader's memory. Counted in
the slices the parser is fed, so it may refuse a little early, never late."""
MAX_MEMBER_BYTES = 1 << 30
"""The most a zip's ``conversations.json`` may unpack to: a zip bomb is refused."""
SLICE_BYTES = 64 * 1024
"""The bytes given to the parser at once: what the byte counts above are counted in."""

_BACKEND = ijson.get_backend("yajl2_c")  # raises if the C backend is missing: never the slow one
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header; an empty archive's end
_BOM = b"\xef\xbb\xbf"
_MIB = 1024 * 1024


class ImportReader:
    """A push parser of one file (see the module's docstring). ``member`` names the zip member
    being read: only ChatGPT's list is then accepted, and errors name the member."""

    def __init__(
        self, *, max_content_chars: int = MAX_CONTENT_CHARS, member: str | None = None
    ) -> None:
        self._max_content_chars = max_content_chars
        self._member = member
        self._head = b""  # the first bytes, until the zip's magic and a BOM can be told
        self._zip: bool | None = None
        self._closed = False
        self._failed = False
        self._offset = 0  # bytes of the file given to the parser (a BOM counted)
        self._piece = 0  # the length of the slice being parsed
        self._blank = True
        self._events: list[tuple[str, Any]] = ijson.utils.sendable_list()
        self._parser = _BACKEND.basic_parse_coro(self._events, use_float=True)
        self._surrogates = _Surrogates()
        self._format: Format | None = None
        # Where the parser is: the top level's shape, the object's key, the unit's index.
        self._shape: Literal["list", "object", "done"] | None = None
        self._object = False  # the top level is an object (its ``_shape`` ends "done")
        self._key = ""
        self._index = 0
        self._in_conversations = False
        self._streamed = False  # the object's ``conversations`` was a list, read unit by unit
        self._header: dict[str, Any] = {}  # the object's other top-level keys
        self._header_bytes = 0
        self._deferred: ImportFormatError | None = None
        # The value being built (a unit or a header value): its open containers.
        self._stack: list[Any] = []
        self._build_key: str = ""
        self._built_bytes = 0
        self._out: list[ImportedConversation] = []

    @property
    def is_zip(self) -> bool:
        """Whether the file is a zip (known from the 4th byte on): ``feed`` then ignores its bytes,
        and the caller reads it with ``zip_conversations``."""
        return self._zip is True

    @property
    def format(self) -> Format | None:
        """The file's format, once its first unit (or for an object its end) said it."""
        return "chatgpt-zip" if self._zip else self._format

    def feed(self, chunk: bytes) -> list[ImportedConversation]:
        """Parse the next bytes; the conversations they completed, each checked."""
        if self._closed or self._failed:
            raise RuntimeError("the import reader is closed or has failed")
        if self._zip is None:
            self._head += chunk
            if len(self._head) < 4:
                return []
            chunk, self._head = self._head, b""
            self._zip = chunk.startswith(_ZIP_MAGIC)
            chunk = self._skip_bom(chunk)
        if self._zip:
            return []
        try:
            for start in range(0, len(chunk), SLICE_BYTES):
                self._slice(chunk[start : start + SLICE_BYTES])
        except BaseException:
            self._failed = True
            raise
        out, self._out = self._out, []
        return out

    def close(self) -> list[ImportedConversation]:
        """The end of the file: the conversations only it completes; ``ImportFormatError`` for
        a file that is empty, truncated or not of a supported format."""
        if self._zip is None:  # fewer than 4 bytes in all: too short for a zip
            chunk, self._head = self._head, b""
            self._zip = False
            out = self.feed(self._skip_bom(chunk)) if chunk else []
        else:
            out = []
        self._closed = True
        if self._zip:
            return []
        try:
            out.extend(self._finish())
        except BaseException:
            self._failed = True
            raise
        return out

    # --- bytes ---------------------------------------------------------------------------------

    def _skip_bom(self, chunk: bytes) -> bytes:
        if chunk.startswith(_BOM):  # Windows editors write one; yajl refuses it
            self._offset += len(_BOM)
            return chunk[len(_BOM) :]
        return chunk

    def _slice(self, piece: bytes) -> None:
        if self._blank and piece.strip():
            self._blank = False
        lone = self._surrogates.scan(piece, self._offset)
        if lone is not None:
            # The bytes before it parsed first: what they hold comes first, and the unit then
            # open is the one it is in.
            self._parse(piece[: max(lone - self._offset, 0)])
            raise ImportFormatError(
                "a string holds a lone surrogate (half of a UTF-16 pair, \\ud800 to \\udfff), "
                "which no database can store",
                self._where(lone),
            )
        self._parse(piece)

    def _parse(self, piece: bytes) -> None:
        if not piece:
            return  # ijson takes empty bytes for the end of the file
        self._piece = len(piece)
        try:
            self._parser.send(piece)
        except ijson.JSONError as error:
            at = _yajl_offset(error, piece)
            # The values before the fault first: an error they hold comes earlier in the file,
            # and the unit the fault is in is then the one named.
            self._take(self._events)
            self._refuse_json(error, self._offset + at if at is not None else None)
        except UnicodeDecodeError:
            raise ImportFormatError(
                "a string holds bytes that are not UTF-8 text", self._where(self._offset)
            ) from None
        self._offset += len(piece)
        try:
            self._take(self._events)
        finally:
            self._events.clear()
        if self._stack:
            self._built_bytes += len(piece)
            self._check_size(self._built_bytes)

    def _refuse_json(self, error: Exception, at: int | None) -> None:
        what = str(error.args[0] if error.args else error)
        if isinstance(error.args[0] if error.args else None, bytes):
            what = error.args[0].decode("utf-8", "replace")
        reason = what.split("\n", 1)[0].strip() or "invalid JSON"
        intro = (
            f"{self._member} is not valid JSON" if self._member else "not a zip, and not valid JSON"
        )
        where = self._where(at) if at is not None else self._where(self._offset, self._piece)
        raise ImportFormatError(f"{intro}: {reason}", where) from None

    def _where(self, at: int, span: int = 0) -> str:
        """A byte offset (or range), after the unit's path when one is being built."""
        place = f"byte {at}" if not span else f"bytes {at} to {at + span}"
        if self._stack:
            place = f"{self._path()}, {place}"
        return f"zip:{self._member}, {place}" if self._member else place

    def _path(self) -> str:
        if self._shape == "list":
            return f"$[{self._index}]"
        if self._in_conversations:
            return f"$.conversations[{self._index}]"
        return _key_path(self._key)

    def _check_size(self, size: int, where: str | None = None) -> None:
        if size > MAX_CONVERSATION_BYTES:
            place = where or self._path()
            raise ImportFormatError(
                f"this takes more than {_size(MAX_CONVERSATION_BYTES)} of JSON, the most "
                "one conversation may take (so that a file of any size is read in bounded memory)",
                f"zip:{self._member}, {place}" if self._member else place,
            )

    # --- events --------------------------------------------------------------------------------

    def _take(self, events: list[tuple[str, Any]]) -> None:
        # The hot loop (every JSON value of the file passes here): a plain builder of the open
        # unit on a stack, the rest of the structure in ``_structure``.
        stack = self._stack
        key = self._build_key
        for kind, value in events:
            if not stack:
                self._structure(kind, value)
                continue
            if kind == "map_key":
                key = value
                continue
            if kind == "end_map" or kind == "end_array":
                done = stack.pop()
                if not stack:
                    self._built(done)
                continue
            new: Any = value
            if kind == "start_map":
                new = {}
            elif kind == "start_array":
                new = []
            top = stack[-1]
            if type(top) is list:
                top.append(new)
            else:
                top[key] = new
            if new is not value:
                stack.append(new)
        self._build_key = key

    def _structure(self, kind: str, value: Any) -> None:
        """An event outside any unit: the top level's shape, an object's keys, a list's end."""
        if self._shape is None:
            if kind == "start_array":
                self._shape = "list"
            elif kind == "start_map" and self._member is None:
                self._shape = "object"
                self._object = True
            else:
                raise self._unsupported()
        elif self._shape == "list" or self._in_conversations:
            if kind == "end_array":
                if self._shape == "list":
                    self._shape = "done"
                else:
                    self._in_conversations = False
            else:
                self._begin(kind, value)
        elif kind == "map_key":
            self._key = value
        elif kind == "end_map":
            self._shape = "done"
        elif kind == "start_array" and self._key == "conversations" and not self._streamed:
            self._streamed = self._in_conversations = True
            self._index = 0
            if "format" in self._header:
                self._check_header(final=False)
        else:
            self._begin(kind, value)

    def _begin(self, kind: str, value: Any) -> None:
        self._built_bytes = 0
        if kind == "start_map":
            self._stack.append({})
        elif kind == "start_array":
            self._stack.append([])
        else:
            self._built(value)

    def _built(self, value: Any) -> None:
        """A unit (or a header value) is complete."""
        size = self._built_bytes + self._piece
        self._check_size(size)
        if self._shape == "list":
            self._unit(value, f"$[{self._index}]")
            self._index += 1
        elif self._in_conversations:
            self._ours(value, f"$.conversations[{self._index}]")
            self._index += 1
        else:
            self._header_bytes += size
            self._check_size(self._header_bytes, "$")
            self._header[self._key] = value

    # --- units ---------------------------------------------------------------------------------

    def _unit(self, value: Any, where: str) -> None:
        if self._format is None:
            if chatgpt.is_conversation(value):
                self._format = "chatgpt"
            elif self._member is None and librechat.is_conversation(value):
                self._format = "librechat"
            else:
                raise self._unsupported()
        if self._format == "chatgpt":
            self._emit(chatgpt.parse_conversation(value, where))
        elif librechat.is_conversation(value):
            self._emit(librechat.parse_conversation(value, where))
        else:
            raise ImportFormatError(
                "expected a LibreChat conversation (an object with conversationId and "
                f"messages), as the list's first item is; found {json_kind(value)}",
                where,
            )

    def _ours(self, value: Any, where: str) -> None:
        if "format" in self._header:
            self._emit(ours.parse_conversation(value, where))
            return
        # The file has not said yet that it is ours: an error may only mean it is not, which
        # the end will tell; the first one waits for it.
        try:
            self._emit(ours.parse_conversation(value, where))
        except ImportFormatError as error:
            if self._deferred is None:
                self._deferred = error

    def _emit(self, conversation: ImportedConversation) -> None:
        check_limits([conversation], max_content_chars=self._max_content_chars)
        self._out.append(conversation)

    def _check_header(self, *, final: bool) -> None:
        if not ours.is_ours(self._header):
            raise self._unsupported()
        if final or "version" in self._header:
            ours.check_header(self._header)
        self._format = "ssechat"

    def _unsupported(self) -> ImportFormatError:
        if self._member is not None:
            return ImportFormatError(
                f"the zip's {self._member} is not a list of ChatGPT conversations",
                f"zip:{self._member}",
            )
        return ImportFormatError(
            f"this is not an export ssechat can read; it reads {SUPPORTED}", "$"
        )

    def _finish(self) -> list[ImportedConversation]:
        if self._blank:
            where = f"zip:{self._member}" if self._member else "$"
            raise ImportFormatError("the file is empty", where)
        try:
            self._parser.close()
        except ijson.JSONError as error:
            self._refuse_json_end(error)
        self._piece = 0
        try:
            self._take(self._events)  # a top-level number ends only with the file
        finally:
            self._events.clear()
        if not self._object:
            if self._format is None:
                self._format = "chatgpt"  # [] is an empty conversations.json
            out, self._out = self._out, []
            return out
        header = self._header
        if ours.is_ours(header):
            if self._streamed and "conversations" in header:
                raise ImportFormatError("conversations appears twice", "$.conversations")
            self._check_header(final=True)
            if self._deferred is not None:
                raise self._deferred
            if not self._streamed:
                found = json_kind(header.get("conversations"))
                raise ImportFormatError(f"expected a list, found {found}", "$.conversations")
        elif not self._streamed and librechat.is_conversation(header):
            self._format = "librechat"
            self._emit(librechat.parse_conversation(header, "$"))
        else:
            raise self._unsupported()
        out, self._out = self._out, []
        return out

    def _refuse_json_end(self, error: Exception) -> None:
        what = str(error.args[0] if error.args else error)
        if "premature EOF" in what:
            raise ImportFormatError(
                "the file ends before its JSON does (it is truncated)", self._where(self._offset)
            ) from None
        self._refuse_json(error, self._offset)


def read_conversations(
    file: IO[bytes], *, max_content_chars: int = MAX_CONTENT_CHARS, chunk_bytes: int = _MIB
) -> Iterator[ImportedConversation]:
    """The conversations of an export in ``file`` (seekable, at its start, opened by the
    caller), whatever supported format it is in: read a piece at a time through an
    ``ImportReader``, or, for a zip, through ``zip_conversations``."""
    reader = ImportReader(max_content_chars=max_content_chars)
    while piece := file.read(chunk_bytes):
        found = reader.feed(piece)
        if reader.is_zip:
            file.seek(0)
            yield from zip_conversations(file, max_content_chars=max_content_chars)
            return
        yield from found
    yield from reader.close()


def zip_conversations(
    file: IO[bytes], *, max_content_chars: int = MAX_CONTENT_CHARS, chunk_bytes: int = _MIB
) -> Iterator[ImportedConversation]:
    """The conversations of a ChatGPT data export's zip (``file``, seekable, opened by the
    caller): its top-most ``conversations.json``, unpacked as a stream through an
    ``ImportReader``, refused when it unpacks to more than ``MAX_MEMBER_BYTES``."""
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as error:
        raise ImportFormatError("not a readable zip file", "zip") from error
    with archive:
        names = [n for n in archive.namelist() if n.rsplit("/", 1)[-1] == chatgpt.MEMBER]
        if not names:
            raise ImportFormatError(f"the zip holds no {chatgpt.MEMBER}", "zip")
        name = min(names, key=lambda n: n.count("/"))  # the top-most one
        where = f"zip:{name}"
        too_large = (
            f"{chatgpt.MEMBER} unpacks to more than {_size(MAX_MEMBER_BYTES)} "
            "(the most an import unpacks)"
        )
        if archive.getinfo(name).file_size > MAX_MEMBER_BYTES:
            raise ImportFormatError(too_large, where)
        reader = ImportReader(max_content_chars=max_content_chars, member=name)
        unpacked = 0
        try:
            member = archive.open(name)
        except (zipfile.BadZipFile, OSError, RuntimeError, EOFError, zlib.error) as error:
            raise ImportFormatError(f"cannot unpack {chatgpt.MEMBER}", where) from error
        with member:
            while True:
                try:
                    # The declared size is the zip's word: the bytes are counted as well.
                    chunk = member.read(min(chunk_bytes, MAX_MEMBER_BYTES + 1 - unpacked))
                except (zipfile.BadZipFile, OSError, RuntimeError, EOFError, zlib.error) as error:
                    raise ImportFormatError(f"cannot unpack {chatgpt.MEMBER}", where) from error
                if not chunk:
                    break
                unpacked += len(chunk)
                if unpacked > MAX_MEMBER_BYTES:
                    raise ImportFormatError(too_large, where)
                yield from reader.feed(chunk)
        yield from reader.close()


def _size(count: int) -> str:
    return f"{count // _MIB} MiB" if count >= _MIB else f"{count} bytes"


def _key_path(key: str) -> str:
    return f"$.{key}" if key.isidentifier() else f"$[{json.dumps(key)}]"


# --- yajl's error offsets ---------------------------------------------------------------------

_NEWLINES = bytes.maketrans(b"\r\n", b"  ")


def _yajl_offset(error: Exception, piece: bytes) -> int | None:
    """Where in ``piece`` yajl stopped, read off its message: yajl renders up to 30 bytes either
    side of the offset it stopped at (newlines as spaces) so that the offset falls in column 40,
    above its "(right here) ------^" arrow; the first place in ``piece`` with that context is
    taken. yajl stops after the token it refuses: the offset returned is that token's last
    byte. None when the message has no such context."""
    raw = error.args[0] if error.args else b""
    text = raw if isinstance(raw, bytes) else str(raw).encode("utf-8", "surrogateescape")
    lines = text.split(b"\n")
    if len(lines) < 3 or b"(right here)" not in lines[2] or len(lines[1]) < 40:
        return None
    left, right = lines[1][10:40], lines[1][40:]
    mapped = piece.translate(_NEWLINES)
    # Nothing right of the offset: yajl stopped at the end of the piece.
    candidates = _finds(mapped, right) if right else iter([len(piece)])
    for at in candidates:
        if min(at + 30, len(piece)) != at + len(right):
            continue
        before = mapped[max(0, at - 30) : at]
        if b" " * (30 - len(before)) + before == left:
            return max(at - 1, 0)
    return None


def _finds(text: bytes, part: bytes) -> Iterator[int]:
    at = text.find(part)
    while at >= 0:
        yield at
        at = text.find(part, at + 1)


# --- lone surrogates --------------------------------------------------------------------------

_ESCAPE = re.compile(rb"(\\+)u[dD][89a-fA-F][0-9a-fA-F]{2}")
_LOW = re.compile(rb"\\u[dD][c-fC-F][0-9a-fA-F]{2}")
_TAIL = 12  # the longest escape pair (``\ud83d\ude00``) is 12 bytes


class _Surrogates:
    """Finds a ``\\ud800``–``\\udfff`` escape that is not one half of a pair. yajl would turn a
    lone high half into "?" (the text silently changed) and a lone low half into bytes Python
    cannot decode, so they are refused before it sees them. Scans across slice boundaries:
    the end of each slice is kept until the next one shows how it goes on."""

    def __init__(self) -> None:
        self._tail = b""
        self._tail_at = 0  # the file offset of the tail's first byte
        self._done = 0  # escapes ending before this offset are checked (a pair's low half)

    def scan(self, piece: bytes, at: int) -> int | None:
        """The file offset of the first lone half in the bytes so far (``piece`` starts at
        ``at``), or None."""
        buffer = self._tail + piece
        start = self._tail_at if self._tail else at
        keep = len(buffer)
        if b"\\" in buffer:
            for match in _ESCAPE.finditer(buffer):
                if len(match.group(1)) % 2 == 0:
                    continue  # an escaped backslash, then the letters "u d8..."
                escape = start + match.end() - 6
                if escape < self._done:
                    continue
                if buffer[match.end() - 3 : match.end() - 2] in b"cdefCDEF":
                    return escape  # a low half whose high half did not come right before
                following = buffer[match.end() : match.end() + 6]
                if len(following) < 6:
                    keep = match.end() - 6
                    break
                if not _LOW.fullmatch(following):
                    return escape
                self._done = escape + 12
        cut = min(keep, max(len(buffer) - _TAIL, 0))
        run = 0
        while cut - run > 0 and buffer[cut - run - 1] == 0x5C:  # backslashes before the cut
            run += 1
        # A run of backslashes matters only by its parity: one is kept, or none.
        prefix = b"\\" if run % 2 else b""
        self._tail = prefix + buffer[cut:]
        self._tail_at = start + cut - len(prefix)
        return None
