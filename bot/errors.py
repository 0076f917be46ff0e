"""Every one-line error and summary the `markovbot` command prints, worded in one place.

Each error says what was wrong and what to do; `markovbot` prints it as one line and exits 1
(2 for a usage error), with a traceback only under `-v`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from bot.core import keys
from bot.core.engines import DEFAULT_SQLITE_PATH
from bot.core.postgres import migrate as mg
from bot.core.schema import SCHEMA_VERSION

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


def db_unusable(database: object, reason: object) -> str:
    """The database (a file, or a PostgreSQL URL without its password) cannot be opened or written."""
    return f"cannot use the database {database}: {reason}"


def database_busy(database: object) -> str:
    """Another process held the database's write lock past the busy timeout; nothing was changed."""
    return (
        f"{database} is busy: another process (an import, say) is writing to it, so nothing was changed; "
        "run this again once it is done."
    )


def import_stopped(reason: object) -> str:
    """An import's write failed: what it had committed stays, and a rerun resumes after it."""
    return f"{reason}. The import stopped; what it committed is kept: run it again to go on from there."


def walker_died(reason: object) -> str:
    """The walker process could not start."""
    return f"{reason}."


def unknown_chain(name: str, db: object) -> str:
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


def no_chains(db: object) -> str:
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


# ---------------------------------------------------------------- markovbot migrate


def migrate_not_postgres(raw: str) -> str:
    """--to names something other than a PostgreSQL database."""
    return f"--to must be a PostgreSQL URL (postgresql://user@host:port/dbname), not {raw!r}."


def migrate_no_source() -> str:
    """MARKOV_DATABASE_URL selects PostgreSQL already, and --db does not name the SQLite file."""
    return "MARKOV_DATABASE_URL selects PostgreSQL: give the SQLite file to copy with --db FILE."


def _when(at: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(at))


def migrate_refused(exc: mg.MigrateRefused) -> str:
    """Why a copy was refused or failed (nothing in the target changed), and what to do."""
    match exc:
        case mg.SourceMissing(path):
            return f"{path}: no such file; give the SQLite database to copy with --db."
        case mg.SourceNotMarkovbot(path, why):
            return f"{path} is not a markovbot database ({why}): give the SQLite file the bot uses with --db."
        case mg.SourceUnreadable(path, reason):
            return f"cannot read {path}: {reason}; check its permissions, then run again."
        case mg.SourceTooNew(path, version):
            return (
                f"{path} has schema version {version}, newer than this markovbot's {SCHEMA_VERSION}: "
                "upgrade markovbot, then copy it."
            )
        case mg.SourceNeedsUpgrade(path, _):
            return (
                f"{path} was last opened by an older markovbot: open it once with this one "
                f"(`markovbot chains --db {path}`) to bring it up to date, then copy it."
            )
        case mg.SourceLogUnapplied(path):
            return (
                f"{path} has learned batches waiting in its learning log: open it once "
                f"(`markovbot chains --db {path}`) so they are applied, then copy it."
            )
        case mg.SourceChangesKept(path):
            return (
                f"{path} has deletes or edits waiting in its learning log (kept while another process held "
                "the file): start the bot on it once so they are made, then copy it."
            )
        case mg.SourceChanged(path):
            return (
                f"{path} forgot or unlearned messages, or consent or channels changed, while it was being "
                "copied, so nothing was kept: run it again, best with the bot stopped."
            )
        case mg.SourceKeyRefused(reason):
            return reason
        case mg.TargetUnreachable(url, reason):
            return f"cannot connect to the PostgreSQL database {url.redacted}: {reason}."
        case mg.TargetNotMarkovbot(url, tables):
            return (
                f"{url.redacted} holds another program's tables ({tables}; left untouched): "
                "copy into an empty database (e.g. `createdb markovbot`)."
            )
        case mg.TargetTooNew(url, version):
            return f"{url.redacted} has markovbot schema version {version}, newer than this markovbot's: upgrade markovbot."
        case mg.TargetOtherKey(url):
            return (
                f"{url.redacted} was opened with another fingerprint key than the source's (left untouched): "
                "copy into an empty database."
            )
        case mg.TargetNotEmpty(url, tables):
            return (
                f"{url.redacted} already holds markovbot data ({', '.join(tables)}; left untouched): "
                "migrate copies into an empty database only."
            )
        case mg.TargetOtherCopy(url, source, at):
            return (
                f"{url.redacted} already holds a copy of {source} made {_when(at)}, and the source differs "
                "from it now (left untouched): copy into an empty database, or drop and re-create this one."
            )
        case mg.CopyFailed(url, reason):
            return (
                f"the copy to {url.redacted} failed: {reason}. Nothing was kept (it is one transaction): "
                "run it again to copy from the start."
            )
    return f"the copy was refused: {type(exc).__name__}"


def migrate_summary(outcome: mg.Outcome) -> str:
    """What a copy did, and where the fingerprint key must be for the bot on PostgreSQL."""
    if outcome.already:
        done = (
            f"{outcome.url.redacted} already holds the copy of {outcome.source} made {_when(outcome.copied_at)} "
            "(the source is unchanged since): nothing to do."
        )
    else:
        rows = outcome.rows
        done = (
            f"copied {outcome.source} to {outcome.url.redacted} in {outcome.seconds:.1f} s: "
            f"{rows['chains']:,} chains, {rows['messages']:,} messages, {rows['tokens']:,} tokens, "
            f"{rows['authors']:,} authors, {sum(rows.values()):,} rows in all."
        )
    if outcome.key_file is None:
        where = f"keep {keys.ENV} as it is: the bot on PostgreSQL needs the same fingerprint key."
    elif outcome.key_file.resolve() == keys.key_file(DEFAULT_SQLITE_PATH).resolve():
        where = (
            f"the fingerprint key is not copied: the bot on PostgreSQL reads the same one from {outcome.key_file} "
            f"(where it is now) or {keys.ENV}; keep that file."
        )
    else:
        where = (
            f"the fingerprint key is not copied: the bot on PostgreSQL needs the one in {outcome.key_file}, "
            f"as {keys.ENV} (`export {keys.ENV}=$(cat {outcome.key_file})`) or copied to "
            f"{keys.key_file(DEFAULT_SQLITE_PATH)} (where it looks without {keys.ENV})."
        )
    after = "Stop the bot on SQLite before starting it on PostgreSQL: what it does from now on is not copied."
    return f"{done} {where[0].upper()}{where[1:]} {after}"


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
