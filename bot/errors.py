"""Every one-line error and summary the `markovbot` command prints, worded in one place.

Each error says what was wrong and what to do; `markovbot` prints it as one line and exits 1
(2 for a usage error), with a traceback only under `-v`.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

HINT_VERBOSE = "run again with -v for details"


class UserError(Exception):
    """A problem the user can fix; its text is the whole one-line message."""

    exit_code = 1


# ---------------------------------------------------------------- files given to import


def no_such_file(path: Path) -> str:
    """The path does not exist."""
    return f"{path}: no such file; check the path."


def not_a_file(path: Path, kind: str) -> str:
    """A directory, FIFO, device or socket where a file was expected."""
    return f"{path} is a {kind}, not a regular file: give the path of a file."


def unreadable(path: Path, reason: str) -> str:
    """The file cannot be opened or read."""
    return f"cannot read {path}: {reason}."


def empty_file(path: Path) -> str:
    """Nothing in the file."""
    return f"{path} is empty: nothing to import."


def binary_file(path: Path, why: str) -> str:
    """Not text: refused before anything is learned."""
    return (
        f"{path} is not text ({why}), so nothing was learned: import a UTF-8 text file "
        "(one message per line) or a DiscordChatExporter JSON export."
    )


def utf16(path: Path, encoding: str) -> str:
    """A UTF-16/32 file: refused, with the way to convert it."""
    return (
        f"{path} is {encoding} (it starts with a byte order mark), so nothing was learned: convert it "
        f"to UTF-8 first, e.g. `iconv -f {encoding} -t UTF-8 in.txt > out.txt`."
    )


def json_too_big(path: Path, size: int, cap: int) -> str:
    """A JSON export over the size cap (json reads a whole file into memory)."""
    return (
        f"{path} is {size / 2**20:,.0f} MiB, more than the {cap // 2**20:,} MiB a JSON export may be: "
        "export the channel in parts (DiscordChatExporter --partition) and import each."
    )


def json_not_utf8(path: Path, position: int) -> str:
    """A JSON file with bytes that are not UTF-8."""
    return (
        f"{path} is not valid UTF-8 (at byte {position:,}): JSON exports must be UTF-8; nothing was learned."
    )


def json_unparsable(path: Path, line: int, column: int, reason: str) -> str:
    """Broken or truncated JSON."""
    return (
        f"{path} looks like JSON but does not parse (line {line}, column {column}: {reason}); "
        "is it truncated? Nothing was learned. Use --format text to import it as plain text."
    )


def json_too_deep(path: Path) -> str:
    """JSON nested beyond what the parser allows."""
    return f"{path} nests JSON too deeply to be an export; nothing was learned."


def json_wrong_field(path: Path, field: str, expected: str, got: str) -> str:
    """A DiscordChatExporter field of the wrong type, named."""
    return (
        f"{path}: {field} should be {expected}, not {got}; this is not a DiscordChatExporter export "
        "(or a JSON array of messages), so nothing was learned."
    )


def json_no_messages(path: Path) -> str:
    """JSON that is neither an export nor an array of messages."""
    return (
        f"{path} is JSON but not a DiscordChatExporter export (no 'messages' list) nor an array of "
        "messages with 'content'; nothing was learned."
    )


# ---------------------------------------------------------------- the database and commands


def db_folder_missing(path: Path) -> str:
    """--db names a file in a folder that does not exist (only the default folder is created)."""
    why = "is not a folder" if path.parent.exists() else "does not exist"
    return (
        f"cannot use the database {path}: {path.parent} {why}; create the folder first, or give another --db."
    )


def db_unusable(path: Path, reason: object) -> str:
    """The database file cannot be opened or written."""
    return f"cannot use the database {path}: {reason}"


def import_stopped(reason: object) -> str:
    """An import's write failed: what it had committed stays, and a rerun resumes after it."""
    return f"{reason}. The import stopped; what it committed is kept: run it again to go on from there."


def walker_died(reason: object) -> str:
    """The walker process could not start."""
    return f"{reason}."


def unknown_chain(name: str, db: Path) -> str:
    """--chain names no chain of the database."""
    return f"there is no chain {name!r} in {db}: `markovbot chains` lists the chains it has."


def unknown_author(author: str, chain: str, ids: list[str], more: bool) -> str:
    """--author names nobody learned in the chain."""
    if not ids:
        return f"nothing was learned from {author!r} in chain {chain!r}."
    known = ", ".join(repr(i) for i in ids) + (", ..." if more else "")
    return (
        f"nothing was learned from {author!r} in chain {chain!r}: --author takes an author id "
        f"as the export gives it (author.id; 'import' for a text file); authors there: {known}."
    )


def no_chains(db: Path) -> str:
    """markovbot chains on a database without any."""
    return f"{db} has no chains yet: `markovbot import FILE --chain NAME` makes one."


def png_folder_missing(path: Path) -> str:
    """stats --png into a folder that does not exist."""
    return f"cannot write the stats card to {path}: the folder {path.parent} does not exist."


def png_unwritable(path: Path, reason: object) -> str:
    """stats --png could not write the file."""
    return f"cannot write the stats card to {path}: {reason}."


def usage(message: str, command: str) -> str:
    """A usage error (exit 2), on one line."""
    return f"{message} (see `{command} --help`)"


def unexpected(exc: BaseException) -> str:
    """Anything not foreseen: still one line."""
    return f"unexpected error: {type(exc).__name__}: {exc} ({HINT_VERBOSE})"


# ---------------------------------------------------------------- summaries


def import_summary(
    read: int, learned: int, duplicates: int, skipped: int, too_long: int, invalid: int, max_chars: int
) -> str:
    """What an import did, on one line."""
    parts = [
        f"read {read:,} messages: learned {learned:,}, already learned {duplicates:,}, "
        f"skipped {skipped:,} (empty, bots or system messages)"
    ]
    if too_long:
        parts.append(f"too long (over {max_chars:,} characters) {too_long:,}")
    if invalid:
        parts.append(f"not UTF-8 {invalid:,} lines")
    return ", ".join(parts)
