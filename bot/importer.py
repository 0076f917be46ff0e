"""Importing a corpus file into a chain: plain UTF-8 text (one message per line) or JSON.

JSON is a DiscordChatExporter export (`{"messages": [...]}`) or an array of messages
(`[{"content": ..., "id": ..., "author": ...}]`). A file is checked whole before anything is
learned (binary, wrong encoding, a JSON field of the wrong type: refused with one line); then
messages are learned one by one, skipping and counting what cannot be learned. Memory stays
bounded: text is read a line at a time with a cap on a line's size, JSON is capped in size.
"""

from __future__ import annotations

import codecs
import json
import logging
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from bot import errors, runtime
from bot.core.brain import Brain
from bot.core.models import ChainKey, LearnStatus

log = logging.getLogger(__name__)

LOCAL_AUTHOR = "import"
LEARNABLE_TYPES = {"Default", "Reply", "0", "19"}
JSON_MAX_BYTES = 256 * 2**20  # the json module holds a whole file (and ~5x more) in memory
HEAD_BYTES = 4096  # what format detection reads
CHUNK = 2**20  # bytes per read when scanning a file or skipping a long line
NOT_UTF8_SHARE = 0.1  # a file with more of its bytes not UTF-8 than this is binary, not text
BOMS = {codecs.BOM_UTF32_LE: "UTF-32", codecs.BOM_UTF32_BE: "UTF-32", codecs.BOM_UTF16_LE: "UTF-16"}
BOMS[codecs.BOM_UTF16_BE] = "UTF-16"
BATCH = 2000  # messages handed to the brain at once
PARALLEL_BYTES = 2**20  # files from this size on are prepared in a worker process (starting one takes ~0.2 s)
KINDS = {stat.S_ISDIR: "directory", stat.S_ISFIFO: "FIFO (named pipe)", stat.S_ISSOCK: "socket"}


class ImportFormatError(errors.UserError):
    """The file is not something import can learn; the message says why."""


class Entry(NamedTuple):
    """One message to offer for learning (a tuple, as Brain.importing takes it)."""

    id: str
    author: str
    text: str


#: What a part of a file gave: (progress units done, its messages, how many it skipped and why).
Part = tuple[int, list[Entry], dict[str, int]]

#: Why a message was not offered: counted in the summary under these names. (A message id
#: met twice is counted by the core: Brain.learn says ALREADY_PENDING, or the store drops it.)
SKIPPED, NOT_UTF8, TOO_LONG = "skipped", "invalid", "too_long"


@dataclass
class ImportResult:
    """How an import went."""

    read: int = 0
    queued: int = 0
    skipped: int = 0
    learned: int = 0
    duplicates: int = 0
    too_long: int = 0
    invalid: int = 0


@dataclass
class Source:
    """A file checked and ready to learn: its format, size, and (for JSON) its messages."""

    path: Path
    fmt: str
    size: int
    max_chars: int
    json_items: list[Entry | str] = field(default_factory=list)

    def parts(self) -> Iterator[Part]:
        """The file a part at a time, in order: (progress units done, messages, skipped by why)."""
        if self.fmt != "json":
            yield from _text_parts(self.path, self.max_chars)
            return
        for lo in range(0, len(self.json_items), BATCH):
            part = self.json_items[lo : lo + BATCH]
            skipped: dict[str, int] = {}
            for item in part:
                if isinstance(item, str):
                    skipped[item] = skipped.get(item, 0) + 1
            yield len(part), [item for item in part if isinstance(item, Entry)], skipped


# ---------------------------------------------------------------- checking a file


def open_source(path: Path, *, fmt: str = "auto", max_chars: int = 4000) -> Source:
    """Check a file whole and say how to learn it; ImportFormatError (one line) when it cannot be."""
    size = _regular_size(path)
    with path.open("rb") as f:
        head = f.read(HEAD_BYTES)
    for bom, encoding in BOMS.items():
        if head.startswith(bom):
            raise ImportFormatError(errors.utf16(path, encoding))
    if fmt == "auto":
        fmt = detect_format(head)
    if fmt == "json":
        return Source(path, fmt, size, max_chars, _json_items(path, size))
    _check_text(path, size)
    return Source(path, fmt, size, max_chars)


def _regular_size(path: Path) -> int:
    """The size of a regular, readable, non-empty file; refuses anything else without opening it."""
    try:
        mode = path.stat()
    except FileNotFoundError:
        raise ImportFormatError(errors.no_such_file(path)) from None
    except OSError as exc:
        raise ImportFormatError(errors.unreadable(path, exc.strerror or str(exc))) from None
    if not stat.S_ISREG(mode.st_mode):
        kind = next((name for test, name in KINDS.items() if test(mode.st_mode)), "device")
        raise ImportFormatError(errors.not_a_file(path, kind))
    if mode.st_size == 0:
        raise ImportFormatError(errors.empty_file(path))
    try:
        path.open("rb").close()
    except OSError as exc:
        raise ImportFormatError(errors.unreadable(path, exc.strerror or str(exc))) from None
    return mode.st_size


def detect_format(head: bytes) -> str:
    """'json' when the file starts like a JSON object or array of them, else 'text'.

    `{` then a key (or `}`), or `[` then `{`, `[` or `]`: a text line such as `{hi} there` or
    `[1] a footnote` stays text.
    """
    start = head.removeprefix(codecs.BOM_UTF8).lstrip()
    second = start[1:].lstrip()[:1]
    if start[:1] == b"{" and second in {b'"', b"}"}:
        return "json"
    if start[:1] == b"[" and second in {b"{", b"[", b"]"}:
        return "json"
    return "text"


def _check_text(path: Path, size: int) -> None:
    """Refuse a binary file before anything is learned: NUL bytes, or mostly not UTF-8."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    bad = offset = 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            nul = chunk.find(b"\0")
            if nul >= 0:
                raise ImportFormatError(errors.binary_file(path, f"a NUL byte at byte {offset + nul:,}"))
            # Replacement characters the decoder added, not those already in the text.
            bad += decoder.decode(chunk).count("\ufffd") - chunk.count("\ufffd".encode())
            offset += len(chunk)
        bad += decoder.decode(b"", final=True).count("\ufffd")
    if bad > NOT_UTF8_SHARE * size:
        raise ImportFormatError(errors.binary_file(path, "most of it is not UTF-8"))


# ---------------------------------------------------------------- plain text


def _text_parts(path: Path, max_chars: int) -> Iterator[Part]:
    """Each non-blank line as a message with id `<file name>:<line number>`, a read of CHUNK at a time.

    A line ends at \\n, \\r\\n or a lone \\r (mixed endings read as one would expect). A line of
    more than 4 * max_chars + 2 bytes is skipped (TOO_LONG) without being held whole; one that is
    not UTF-8, NOT_UTF8.
    """
    cap = 4 * max_chars + 2
    lines = _Lines(path.name, cap)
    with path.open("rb") as f:
        carry = b""
        skipping = False  # in a line too long: its rest is dropped unread up to its end
        for n, chunk in enumerate(iter(lambda: f.read(CHUNK), b"")):
            read = len(chunk)
            if n == 0:
                chunk = chunk.removeprefix(codecs.BOM_UTF8)
            if skipping:
                end = chunk.find(b"\n")
                if end < 0:
                    yield read, [], {}
                    continue
                chunk, skipping = chunk[end + 1 :], False
            data = carry + chunk
            cut = data.rfind(b"\n") + 1
            carry = data[cut:]
            entries, skipped = lines.read_block(data[: cut - 1]) if cut else ([], {})
            if len(carry) > cap:  # the line begun is too long already
                lines.number += 1
                skipped[TOO_LONG] = skipped.get(TOO_LONG, 0) + 1
                carry, skipping = b"", True
            yield read, entries, skipped
        if carry:
            yield 0, *lines.read([carry])


class _Lines:
    """Lines of a text file to messages, numbered on from part to part."""

    def __init__(self, name: str, cap: int) -> None:
        self.name = name
        self.cap = cap
        self.number = 0  # lines read so far

    def read_block(self, data: bytes) -> tuple[list[Entry], dict[str, int]]:
        """read() of the lines of data (joined by \\n), the same messages; valid UTF-8 without \\r,
        whose lines cannot be over the cap, is decoded and split at once."""
        try:
            lines = data.decode("utf-8").split("\n") if b"\r" not in data else []
        except UnicodeDecodeError:
            lines = []
        bound = 1 if data.isascii() else 4  # UTF-8 bytes a character, at most
        if not lines or max(map(len, lines)) * bound > self.cap:
            return self.read(data.split(b"\n"))
        first, self.number = self.number + 1, self.number + len(lines)
        name, author = self.name, LOCAL_AUTHOR
        entries = [
            Entry(f"{name}:{n}", author, text)
            for n, text in enumerate(lines, first)
            if text and not text.isspace()
        ]
        return entries, {}

    def read(self, lines: list[bytes]) -> tuple[list[Entry], dict[str, int]]:
        """The messages of whole lines (without their \\n), and how many were skipped and why."""
        entries: list[Entry] = []
        too_long = invalid = 0
        for line in lines:
            if len(line) > self.cap:
                self.number += 1
                too_long += 1
                continue
            line = line.removesuffix(b"\r")
            for piece in line.split(b"\r") if b"\r" in line else (line,):
                self.number += 1
                try:
                    text = piece.decode("utf-8")
                except UnicodeDecodeError:
                    invalid += 1
                    continue
                if text and not text.isspace():
                    entries.append(Entry(f"{self.name}:{self.number}", LOCAL_AUTHOR, text))
        skipped = {TOO_LONG: too_long} if too_long else {}
        if invalid:
            skipped[NOT_UTF8] = invalid
        return entries, skipped


# ---------------------------------------------------------------- JSON


def _json_items(path: Path, size: int) -> list[Entry | str]:
    """Parse and check a JSON file whole: an export or an array of messages."""
    if size > JSON_MAX_BYTES:
        raise ImportFormatError(errors.json_too_big(path, size, JSON_MAX_BYTES))
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise ImportFormatError(errors.json_not_utf8(path, exc.start)) from None
    del raw
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportFormatError(errors.json_unparsable(path, exc.lineno, exc.colno, exc.msg)) from None
    except RecursionError:
        raise ImportFormatError(errors.json_too_deep(path)) from None
    del text
    check = _Checker(path)
    if isinstance(data, dict) and "messages" in data:
        return check.export(data["messages"])
    if isinstance(data, list):
        return check.array(data)
    raise ImportFormatError(errors.json_no_messages(path))


def _kind(value: Any) -> str:
    """A JSON value's kind, as a person would say it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"


class _Checker:
    """Checks every field a message uses, naming the first one that is wrong."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def wrong(self, where: str, expected: str, value: Any) -> ImportFormatError:
        got = "missing" if value is _MISSING else _kind(value)
        return ImportFormatError(errors.json_wrong_field(self.path, where, expected, got))

    def get(self, obj: dict[str, Any], key: str, where: str, kinds: tuple[type, ...], optional: bool) -> Any:
        value = obj.get(key, _MISSING)
        if value is _MISSING and optional:
            return None
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            names = {str: "a string", dict: "an object", list: "a list", bool: "a boolean", int: "a number"}
            raise self.wrong(f"{where}.{key}", " or ".join(names[k] for k in kinds), value)
        return value

    def export(self, messages: Any) -> list[Entry | str]:
        """A DiscordChatExporter export's messages (its documented fields only)."""
        if not isinstance(messages, list):
            raise self.wrong("messages", "a list", messages)
        out: list[Entry | str] = []
        for i, item in enumerate(messages):
            where = f"messages[{i}]"
            if not isinstance(item, dict):
                raise self.wrong(where, "an object", item)
            message_id = str(self.get(item, "id", where, (str, int), False))
            kind = str(self.get(item, "type", where, (str, int), True) or "Default")
            content = self.get(item, "content", where, (str,), True) or ""
            author = self.get(item, "author", where, (dict,), False)
            author_id = str(self.get(author, "id", f"{where}.author", (str, int), False))
            is_bot = self.get(author, "isBot", f"{where}.author", (bool,), True)
            self.get(item, "timestamp", where, (str,), True)  # metadata: any time, even future, is fine
            names = self.mentions(self.get(item, "mentions", where, (list,), True) or [], where)
            if is_bot or kind not in LEARNABLE_TYPES or not content.strip():
                out.append(SKIPPED)
            else:
                out.append(Entry(message_id, author_id, _neutralise(content, names)))
        return out

    def mentions(self, mentions: list[Any], where: str) -> dict[str, str]:
        """`@Name` as the export writes it in content -> a mention the tokenizer makes neutral."""
        names: dict[str, str] = {}
        for j, mention in enumerate(mentions):
            at = f"{where}.mentions[{j}]"
            if not isinstance(mention, dict):
                raise self.wrong(at, "an object", mention)
            user_id = str(self.get(mention, "id", at, (str, int), False))
            placeholder = f"<@{user_id}>" if user_id.isdigit() and len(user_id) <= 20 else "<@0>"
            for key in ("name", "nickname"):
                name = self.get(mention, key, at, (str,), True)
                if name:
                    names[name] = placeholder
        return names

    def array(self, items: list[Any]) -> list[Entry | str]:
        """An array of messages: `content`, and optionally `id` and `author` (ids)."""
        out: list[Entry | str] = []
        for i, item in enumerate(items):
            where = f"[{i}]"
            if not isinstance(item, dict):
                raise self.wrong(where, "an object with 'content'", item)
            content = self.get(item, "content", where, (str,), False)
            message_id = self.get(item, "id", where, (str, int), True)
            author = self.get(item, "author", where, (str, int), True)
            key = str(message_id) if message_id is not None else f"{self.path.name}:{i + 1}"
            if not content.strip():
                out.append(SKIPPED)
            else:
                out.append(Entry(key, LOCAL_AUTHOR if author is None else str(author), content))
        return out


_MISSING = object()


def _neutralise(content: str, names: dict[str, str]) -> str:
    """Replace each mentioned `@Name` (longest names first) by a mention that is learned as a placeholder."""
    if not names:
        return content
    pattern = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return re.sub(f"@({pattern})(?!\\w)", lambda m: names[m.group(1)], content)


# ---------------------------------------------------------------- learning


async def learn_source(
    brain: Brain, source: Source, chain: ChainKey, *, progress: bool = True, workers: int | None = 0
) -> ImportResult:
    """Learn every message of a checked file into a chain; re-running learns nothing twice.

    Messages go to the brain BATCH at a time. workers=1 prepares them in a worker process while
    this one writes (a script must then run under `if __name__ == "__main__":`, as spawn imports
    its main module); None: a worker when the file is large enough to pay for starting one and
    there is a second core (markovbot import).
    """
    from tqdm import tqdm

    if workers is None:
        workers = 1 if source.size >= PARALLEL_BYTES and (os.cpu_count() or 1) > 1 else 0
    result = ImportResult()
    before = brain.written
    by_bytes = source.fmt == "text"
    bar = tqdm(
        desc=f"importing {source.path.name}",
        total=source.size if by_bytes else len(source.json_items),
        unit="B" if by_bytes else " msg",
        unit_scale=by_bytes,
        unit_divisor=1024,
        disable=not progress,
        mininterval=0.5,
    )
    try:
        with runtime.fewer_collections():
            async with brain.importing(chain, workers=workers) as learner:
                batch: list[Entry] = []
                done = 0
                for step, entries, skipped in source.parts():
                    done += step
                    for why, n in skipped.items():
                        result.read += n
                        setattr(result, why, getattr(result, why) + n)
                    batch += entries
                    while len(batch) >= BATCH:
                        await learner.add(batch[:BATCH])
                        result.read += BATCH
                        del batch[:BATCH]
                        bar.update(done)
                        done = 0
                await learner.add(batch)
                result.read += len(batch)
        bar.update(done)
    finally:
        bar.close()
    statuses = learner.statuses
    result.queued = statuses.pop(LearnStatus.QUEUED, 0)
    result.too_long += statuses.pop(LearnStatus.TOO_LONG, 0)
    result.duplicates += statuses.pop(LearnStatus.ALREADY_PENDING, 0)
    result.skipped += sum(statuses.values())
    after = brain.written
    result.learned = after.learned - before.learned
    result.duplicates += after.duplicates - before.duplicates
    return result


async def import_file(
    brain: Brain,
    path: Path,
    chain: ChainKey,
    *,
    fmt: str = "auto",
    progress: bool = True,
    workers: int | None = 0,
) -> ImportResult:
    """Check a file and learn it into a chain (ImportFormatError when it cannot be learned); see learn_source."""
    source = open_source(path, fmt=fmt, max_chars=brain.max_message_chars)
    return await learn_source(brain, source, chain, progress=progress, workers=workers)
