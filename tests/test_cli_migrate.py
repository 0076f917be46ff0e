"""`markovbot migrate`, run in-process and as a process killed midway, against real files and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from bot.cli import main
from bot.core import keys
from bot.core.postgres import schema as pg_schema
from tests.core.migrate_helper import (
    BLOCK_KEY,
    BLOCK_TRIGGER,
    DROP_BLOCK_TRIGGER,
    WAITERS,
    build_source,
    pg_rows,
    pg_snapshot,
    sqlite_rows,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
async def source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # no .env of the developer's
    for name in ("MARKOV_DATABASE_URL", "MARKOV_DB", keys.ENV):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "markov.sqlite3"
    await build_source(path)
    return path


def migrate(db: Path, to: str) -> int:
    return main(["--db", str(db), "migrate", "--to", to, "--no-progress"])


def test_migrate_copies_everything_and_says_where_the_key_must_be(
    source: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert migrate(source, pg_url) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    assert f"needs the one in {keys.key_file(source)}" in out[0] and keys.ENV in out[0]
    assert asyncio.run(pg_rows(pg_url)) == sqlite_rows(source)
    before = asyncio.run(pg_snapshot(pg_url))
    assert migrate(source, pg_url) == 0  # twice: nothing to do
    again = capsys.readouterr()
    assert "nothing to do" in again.out and not again.err
    assert asyncio.run(pg_snapshot(pg_url)) == before


def test_a_copy_killed_midway_leaves_nothing_and_a_rerun_completes(
    source: Path, pg_url: str, tmp_path: Path
) -> None:
    """SIGKILL while the copy waits inside its transaction (a trigger holds it at a late table)."""
    asyncio.run(_kill_midway(source, pg_url, tmp_path))
    assert {name: rows for name, rows in asyncio.run(pg_rows(pg_url)).items() if rows} == {}
    assert migrate(source, pg_url) == 0
    assert asyncio.run(pg_rows(pg_url)) == sqlite_rows(source)


async def _kill_midway(source: Path, pg_url: str, tmp_path: Path) -> None:
    setup = await asyncpg.connect(pg_url)
    try:
        await pg_schema.migrate(setup)
        await setup.execute(BLOCK_TRIGGER)
        await setup.execute("SELECT pg_advisory_lock($1)", BLOCK_KEY)
        env = {k: v for k, v in os.environ.items() if k not in {"MARKOV_DATABASE_URL", "MARKOV_DB", keys.ENV}}
        env["PYTHONPATH"] = str(ROOT)
        proc = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "bot", "--db", str(source), "migrate", "--to", pg_url, "--no-progress"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while not await setup.fetchval(WAITERS, BLOCK_KEY):  # the copy waits, its transaction open
                assert proc.returncode is None, "the copy ended before it reached the blocking table"
            assert await setup.fetchval("SELECT count(*) FROM tokens") == 0  # nothing committed
            proc.send_signal(signal.SIGKILL)
            assert await proc.wait() == -signal.SIGKILL
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        await setup.execute("SELECT pg_advisory_unlock($1)", BLOCK_KEY)
        await setup.execute(DROP_BLOCK_TRIGGER)  # waits for the dead client's transaction to end
    finally:
        await setup.close()


async def _other_data(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await pg_schema.migrate(conn)
        await conn.execute("INSERT INTO consent VALUES ('discord', 'g', 'someone', 1)")
    finally:
        await conn.close()


BAD = {
    "a file as --to": (lambda src, url: ["--db", src, "migrate", "--to", "other.sqlite3"], "--to must be"),
    "another scheme": (lambda src, url: ["--db", src, "migrate", "--to", "mysql://h/db"], "--to must be"),
    "a bad port": (lambda src, url: ["--db", src, "migrate", "--to", "postgresql://h:x/db"], "port"),
    "no server": (
        lambda src, url: ["--db", src, "migrate", "--to", "postgresql://root:s3cret@127.0.0.1:1/db"],
        "cannot connect",
    ),
    "no source": (lambda src, url: ["--db", "nope.sqlite3", "migrate", "--to", url], "no such file"),
    "a text source": (
        lambda src, url: ["--db", "notes.txt", "migrate", "--to", url],
        "not a markovbot database",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_each_bad_input_is_one_line_and_changes_nothing(
    case: str, source: Path, pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("hello\n" * 50)
    args, expected = BAD[case]
    source_bytes = source.read_bytes()
    assert main([*args(str(source), pg_url), "--no-progress"]) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and expected in lines[0], captured.err
    assert "Traceback" not in captured.err and not captured.out
    assert "s3cret" not in captured.err  # a password is never shown
    assert asyncio.run(pg_snapshot(pg_url)) == (0, None)
    assert source.read_bytes() == source_bytes
    assert not (tmp_path / "other.sqlite3").exists()


def test_a_target_holding_other_data_is_one_line_and_left_as_it_was(
    source: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(_other_data(pg_url))
    before = asyncio.run(pg_snapshot(pg_url))
    assert migrate(source, pg_url) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already holds markovbot data (consent" in err[0]
    assert asyncio.run(pg_snapshot(pg_url)) == before


def test_postgresql_in_the_environment_needs_the_source_named(
    source: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MARKOV_DATABASE_URL", pg_url)
    assert main(["migrate", "--to", pg_url, "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--db FILE" in err[0]
    assert asyncio.run(pg_snapshot(pg_url)) == (0, None)
    assert migrate(source, pg_url) == 0  # --db names the file: the environment's PostgreSQL is no matter
    assert asyncio.run(pg_rows(pg_url)) == sqlite_rows(source)


def test_a_key_given_in_the_environment_is_kept_there(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    key = b"\x05" * 16
    path = tmp_path / "keyed.sqlite3"
    asyncio.run(build_source(path, 12, key=key))
    monkeypatch.setenv(keys.ENV, key.hex())
    assert migrate(path, pg_url) == 0
    out = capsys.readouterr().out
    assert f"Keep {keys.ENV} as it is" in out and ".key" not in out


def test_the_default_database_keeps_its_key_file_where_the_bot_on_postgresql_looks(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("MARKOV_DATABASE_URL", "MARKOV_DB", keys.ENV):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "data").mkdir()
    path = tmp_path / "data" / "markov.sqlite3"
    asyncio.run(build_source(path, 12))
    assert main(["migrate", "--to", pg_url, "--no-progress"]) == 0  # the default file, as every command
    out = capsys.readouterr().out
    assert "(where it is now)" in out and str(keys.key_file(Path("data/markov.sqlite3"))) in out
    assert asyncio.run(pg_rows(pg_url)) == sqlite_rows(path)
