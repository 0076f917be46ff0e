"""Bad input at every door: each case runs the real `markovbot` in a subprocess.

A refused input ends with exactly one line on stderr (no traceback), exit 1 (2 for usage), and
leaves an existing database unchanged table by table. An input that is only partly learnable is
learned with its skips counted in the one-line summary.
"""

from __future__ import annotations

import codecs
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.core import keys
from bot.core.messagekeys import message_key

ROOT = Path(__file__).resolve().parents[1]
CORPUS = "the cat sat on the mat\nthe dog sat on the log\na cat and a dog\n"
WALKER_FAILS = (
    "import multiprocessing, sys; multiprocessing.set_executable('/bin/false'); "
    "from bot.cli import main; sys.exit(main(sys.argv[1:]))"
)


def env(tmp: Path, **extra: str) -> dict[str, str]:
    """The environment of a markovbot run: this worktree's code, a thread walker, no stray settings."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MARKOV_", "DISCORD_", "MATRIX_"))}
    return {**base, "PYTHONPATH": str(ROOT), "MARKOV_WALKER": "thread", "MPLCONFIGDIR": str(tmp), **extra}


def markovbot(
    tmp: Path, *args: str, python: tuple[str, ...] = ("-m", "bot"), **extra: str
) -> subprocess.CompletedProcess[str]:
    """Run markovbot in tmp (so no .env is read) and return what it did."""
    return subprocess.run(
        [sys.executable, *python, *args],
        cwd=tmp,
        env=env(tmp, **extra),
        capture_output=True,
        text=True,
        timeout=60,
    )


def table_dump(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, sorted."""
    db = sqlite3.connect(path)
    try:
        names = [n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {n: sorted(db.execute(f'SELECT * FROM "{n}"'), key=repr) for n in names}
    finally:
        db.close()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[tuple[Any, ...]]]]:
    """One database with a learned chain 'c', built once and copied for each case."""
    tmp = tmp_path_factory.mktemp("built")
    (tmp / "corpus.txt").write_text(CORPUS, encoding="utf-8")
    done = markovbot(tmp, "--db", "m.sqlite3", "import", "corpus.txt", "--chain", "c")
    assert done.returncode == 0, done.stderr
    return tmp / "m.sqlite3", table_dump(tmp / "m.sqlite3")


def copy_database(source: Path, target: Path) -> None:
    """A copy of a database with its fingerprint key file (mode 0600 kept)."""
    shutil.copy(source, target)
    shutil.copy(keys.key_file(source), keys.key_file(target))


def write(name: str, data: bytes | str) -> Callable[[Path], str]:
    """A case's input: a file of these bytes (or UTF-8 text)."""

    def make(tmp: Path) -> str:
        path = tmp / name
        path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        return str(path)

    return make


def export(*messages: Any) -> str:
    return json.dumps({"guild": {"id": "1"}, "channel": {"id": "2"}, "messages": list(messages)})


def message(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "10",
        "type": "Default",
        "timestamp": "2020-01-01T00:00:00+00:00",
        "content": "hello there",
        "author": {"id": "100", "isBot": False},
        "mentions": [],
    }
    return {**base, **fields}


def fifo(tmp: Path) -> str:
    os.mkfifo(tmp / "pipe")
    return str(tmp / "pipe")


def sparse_json(tmp: Path) -> str:
    path = tmp / "huge.json"
    with path.open("wb") as f:
        f.write(b'{"messages": [')
        f.truncate(300 * 2**20)  # sparse: 300 MiB on paper, nothing on disk
    return str(path)


def garbage_db(tmp: Path) -> str:
    (tmp / "garbage.db").write_bytes(b"this is not sqlite" * 100)
    return str(tmp / "garbage.db")


def newer_db(tmp: Path) -> str:
    with sqlite3.connect(tmp / "newer.db") as conn:
        conn.execute("PRAGMA user_version = 99")
    return str(tmp / "newer.db")


def importing(make: Callable[[Path], str], *more: str) -> Callable[[Path], list[str]]:
    """`markovbot import FILE --chain c` on the case's database."""
    return lambda tmp: ["--db", "m.sqlite3", "import", make(tmp), "--chain", "c", *more]


def args(*words: str) -> Callable[[Path], list[str]]:
    return lambda tmp: list(words)


RANDOM = bytes((i * 7919 + 13) % 255 + 1 for i in range(20_000))  # no NUL, mostly not UTF-8

REFUSED: list[tuple[str, Callable[[Path], list[str]], int, str]] = [
    ("messages-are-numbers", importing(write("e.json", '{"messages":[1,2]}')), 1, "messages[0] should be an object, not a number"),
    ("author-is-a-string", importing(write("e.json", export(message(author="bob")))), 1, "messages[0].author should be an object, not a string"),
    ("content-is-an-object", importing(write("e.json", export(message(content={"a": 1})))), 1, "messages[0].content should be a string, not an object"),
    ("messages-is-a-string", importing(write("e.json", '{"messages": "lots"}')), 1, "messages should be a list, not a string"),
    ("id-missing", importing(write("e.json", export(message(), {k: v for k, v in message().items() if k != "id"}))), 1, "messages[1].id should be a string or a number, not missing"),
    ("id-is-a-boolean", importing(write("e.json", export(message(id=True)))), 1, "messages[0].id should be a string or a number, not a boolean"),
    ("isBot-is-a-string", importing(write("e.json", export(message(author={"id": "1", "isBot": "no"})))), 1, "messages[0].author.isBot should be a boolean"),
    ("mentions-not-a-list", importing(write("e.json", export(message(mentions={"id": "1"})))), 1, "messages[0].mentions should be a list"),
    ("mention-without-id", importing(write("e.json", export(message(mentions=[{"name": "x"}])))), 1, "messages[0].mentions[0].id should be"),
    ("timestamp-is-a-number", importing(write("e.json", export(message(timestamp=5)))), 1, "messages[0].timestamp should be a string"),
    ("json-not-utf8", importing(write("e.json", b'{"messages": [{"content": "caf\xe9"}]}')), 1, "not valid UTF-8 (at byte 30)"),
    ("json-nested-100000", importing(write("e.json", "[" * 100_000)), 1, "nests JSON too deeply"),
    ("json-truncated", importing(write("e.json", export(message())[:60])), 1, "does not parse"),
    ("json-without-messages", importing(write("e.json", '{"foo": 1}')), 1, "not a DiscordChatExporter export"),
    ("json-scalar-forced", importing(write("e.json", "42"), "--format", "json"), 1, "not a DiscordChatExporter export"),
    ("array-of-lists", importing(write("e.json", "[[1], [2]]")), 1, "[0] should be an object with 'content', not a list"),
    ("array-without-content", importing(write("e.json", '[{"id": 1}]')), 1, "[0].content should be a string, not missing"),
    ("json-over-the-cap", importing(sparse_json), 1, "more than the 256 MiB a JSON export may be"),
    ("a-copy-of-ls", importing(write("ls", Path("/usr/bin/ls").read_bytes())), 1, "is not text (a NUL byte at byte"),
    ("nul-after-text", importing(write("t.txt", "fine line\n" * 1000 + "bad\0line\n")), 1, "a NUL byte at byte 10,003"),
    ("mostly-not-utf8", importing(write("r.bin", RANDOM)), 1, "most of it is not UTF-8"),
    ("utf16-with-bom", importing(write("u.txt", "hello there\n".encode("utf-16"))), 1, "is UTF-16 (it starts with a byte order mark)"),
    ("utf32-with-bom", importing(write("u.txt", codecs.BOM_UTF32_LE + "hi\n".encode("utf-32-le"))), 1, "is UTF-32"),
    ("a-directory", importing(lambda tmp: str(tmp)), 1, "is a directory, not a regular file"),
    ("a-fifo", importing(fifo), 1, "is a FIFO (named pipe), not a regular file"),
    ("a-device", importing(lambda tmp: "/dev/zero"), 1, "is a device, not a regular file"),
    ("an-empty-file", importing(write("empty.txt", b"")), 1, "is empty: nothing to import"),
    ("no-such-file", importing(lambda tmp: str(tmp / "nope.txt")), 1, "no such file"),
    ("stats-png-missing-dir", args("--db", "m.sqlite3", "stats", "--chain", "c", "--png", "/missing/dir/x.png"), 1, "the folder /missing/dir does not exist"),
    ("stats-unknown-chain", args("stats", "--db", "m.sqlite3", "--chain", "nope"), 1, "there is no chain 'nope'"),
    ("generate-unknown-chain", args("generate", "--chain", "nope", "--db", "m.sqlite3"), 1, "there is no chain 'nope'"),
    ("generate-unknown-author", args("generate", "--chain", "c", "--author", "bob", "--db", "m.sqlite3"), 1, "authors there: 'import'"),
    ("db-in-a-missing-folder", args("--db", "/nonexistent/dir/x.sqlite3", "stats", "--chain", "c"), 1, "cannot use the database /nonexistent/dir/x.sqlite3: /nonexistent/dir does not exist; create the folder first"),
    ("db-is-not-a-database", lambda tmp: ["stats", "--chain", "c", "--db", garbage_db(tmp)], 1, "cannot use the database"),
    ("db-from-a-newer-version", lambda tmp: ["stats", "--chain", "c", "--db", newer_db(tmp)], 1, "schema version 99"),
    ("bad-setting", lambda tmp: ["--db", "m.sqlite3", "stats", "--chain", "c", "--env", "MARKOV_BATCH_SIZE=lots"], 1, "MARKOV_BATCH_SIZE must be a whole number"),
    ("bad-size-limit", lambda tmp: ["--db", "m.sqlite3", "stats", "--chain", "c", "--env", "MARKOV_MAX_MESSAGE_CHARS=0"], 1, "MARKOV_MAX_MESSAGE_CHARS must be between 1"),
    ("walker-cannot-start", lambda tmp: ["--python", "--db", "m.sqlite3", "stats", "--chain", "c"], 1, "the walker process did not start"),
    ("unknown-option", args("--db", "m.sqlite3", "stats", "--chain", "c", "--bogus"), 2, "No such option '--bogus'"),
    ("missing-chain-option", args("--db", "m.sqlite3", "import", "x.txt"), 2, "Missing option '--chain'"),
    ("count-out-of-range", args("--db", "m.sqlite3", "generate", "--chain", "c", "--count", "0"), 2, "--count"),
    ("unknown-format", args("--db", "m.sqlite3", "import", "x.txt", "--chain", "c", "--format", "xml"), 2, "'xml' is not one of"),
    ("db-is-a-directory", lambda tmp: ["stats", "--chain", "c", "--db", str(tmp)], 2, "is a directory"),
    ("text-forced-as-json", importing(write("t.txt", CORPUS), "--format", "json"), 1, "does not parse (line 1, column 1"),
    ("unknown-command", args("--db", "m.sqlite3", "frobnicate"), 2, "No such command 'frobnicate'"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "build", "code", "expected"), REFUSED, ids=[c[0] for c in REFUSED])
def test_refused_with_one_line_and_nothing_changed(
    built: tuple[Path, dict[str, list[tuple[Any, ...]]]],
    tmp_path: Path,
    name: str,
    build: Callable[[Path], list[str]],
    code: int,
    expected: str,
) -> None:
    source, before = built
    copy_database(source, tmp_path / "m.sqlite3")
    argv = build(tmp_path)
    extra: dict[str, str] = {}
    python: tuple[str, ...] = ("-m", "bot")
    if "--env" in argv:
        i = argv.index("--env")
        key, _, value = argv.pop(i + 1).partition("=")
        argv.pop(i)
        extra[key] = value
    if "--python" in argv:  # a walker process that cannot start: a real process, exiting at once
        argv.remove("--python")
        python, extra["MARKOV_WALKER"] = ("-c", WALKER_FAILS), "process"
    done = markovbot(tmp_path, *argv, python=python, **extra)
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert expected in lines[0]
    assert done.stdout == ""
    assert table_dump(tmp_path / "m.sqlite3") == before
    assert not Path("/nonexistent").exists()


def ids(db: sqlite3.Connection) -> list[int]:
    """The keys of chain 2's learned messages (bot.core.messagekeys), sorted."""
    return sorted(m for (m,) in db.execute("SELECT id FROM messages WHERE chain_id = 2"))


def imported(*message_ids: str) -> list[int]:
    """The keys of messages imported by the CLI, sorted."""
    return sorted(message_key("local", m) for m in message_ids)


def words(db: sqlite3.Connection) -> set[str]:
    return {t for (t,) in db.execute("SELECT text FROM tokens")}


LONG = "word " * 1000  # 5,000 characters: over the 4,000 limit
MENTION = message(
    content="@Alice Smith and @Al said hi to @Bob",
    mentions=[{"id": "7", "name": "alice", "nickname": "Alice Smith"}, {"id": "8", "name": "Al"}],
)

PARTLY: list[tuple[str, Callable[[Path], str], list[str], str, Callable[[sqlite3.Connection], bool]]] = [
    ("one-byte-file", write("m.txt", "x"), [], "read 1 messages: learned 1,", lambda db: ids(db) == imported("m.txt:1")),
    ("mixed-line-endings", write("m.txt", "a b\r\nc d\re f\ng h"), [], "learned 4,", lambda db: ids(db) == imported(*(f"m.txt:{i}" for i in range(1, 5)))),
    ("utf8-bom", write("m.txt", "\ufeffhello there\n"), [], "learned 1,", lambda db: "hello" in words(db)),
    ("first-line-starts-with-brace", write("m.txt", '{hi} there\n{"a": 1} not json\n'), [], "learned 2,", lambda db: "hi" in words(db)),
    ("first-line-is-a-footnote", write("m.txt", "[1] a footnote\n[citation needed]\n"), [], "learned 2,", lambda db: "footnote" in words(db)),
    ("a-line-not-utf8", write("m.txt", b"good line here\ncaf\xe9 au lait\nanother good one\n"), [], "learned 2, already learned 0, skipped 0 (empty, bots or system messages), not UTF-8 1 lines", lambda db: "lait" not in words(db)),
    ("a-line-too-long", write("m.txt", f"short one\n{LONG}\nshort two\n"), [], "learned 2, already learned 0, skipped 0 (empty, bots or system messages), too long (over 4,000 characters) 1", lambda db: "word" not in words(db)),
    ("a-lower-limit", write("m.txt", "short one\nthis line is longer\n"), ["--env", "MARKOV_MAX_MESSAGE_CHARS=10"], "learned 1, already learned 0, skipped 0 (empty, bots or system messages), too long (over 10 characters) 1", lambda db: "longer" not in words(db)),
    ("duplicate-ids", write("e.json", export(message(), message(content="other text"))), [], "read 2 messages: learned 1, already learned 1,", lambda db: ids(db) == imported("10") and "other" not in words(db)),
    ("future-timestamp", write("e.json", export(message(timestamp="2999-01-01T00:00:00+00:00"))), [], "learned 1,", lambda db: ids(db) == imported("10")),
    ("bots-and-system-messages", write("e.json", export(message(author={"id": "1", "isBot": True}), message(id="11", type="ChannelPinnedMessage"), message(id="12", content="  "))), [], "learned 0, already learned 0, skipped 3", lambda db: ids(db) == []),
    ("mentions-become-placeholders", write("e.json", export(MENTION)), [], "learned 1,", lambda db: {"<@user>", "said", "Bob"} <= words(db) and not {"Alice", "Smith", "Al"} & words(db)),
    ("plain-json-array", write("a.json", '[{"content": "hi there"}, {"content": "yo", "id": 5, "author": "bob"}]'), [], "learned 2,", lambda db: ids(db) == imported("5", "a.json:1")),
    ("json-forced-as-text", write("e.json", export(message())), ["--format", "text"], "learned 1,", lambda db: "messages" in words(db)),
]  # fmt: skip


@pytest.mark.parametrize(("name", "make", "more", "summary", "check"), PARTLY, ids=[c[0] for c in PARTLY])
def test_partly_learnable_input_is_learned_with_its_skips_counted(
    built: tuple[Path, dict[str, list[tuple[Any, ...]]]],
    tmp_path: Path,
    name: str,
    make: Callable[[Path], str],
    more: list[str],
    summary: str,
    check: Callable[[sqlite3.Connection], bool],
) -> None:
    copy_database(built[0], tmp_path / "m.sqlite3")
    extra = dict([more[1].split("=", 1)]) if more[:1] == ["--env"] else {}
    options = [] if extra else more
    done = markovbot(
        tmp_path, "import", make(tmp_path), "--chain", "new", "--db", "m.sqlite3", *options, **extra
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.count("\n") == 1 and summary in done.stdout, done.stdout
    db = sqlite3.connect(tmp_path / "m.sqlite3")
    try:
        assert db.execute("SELECT id FROM chains WHERE channel = 'new'").fetchall() in ([(2,)], [])
        assert check(db)
    finally:
        db.close()
