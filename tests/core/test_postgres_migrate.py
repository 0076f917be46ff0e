"""`markovbot migrate`'s core: a SQLite database copied whole into PostgreSQL, refused cleanly, never half-made."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from bot.core import keys, learnlog
from bot.core.brain import Brain
from bot.core.engines import PostgresUrl
from bot.core.postgres import migrate as mg
from bot.core.postgres import schema as pg_schema
from bot.core.sql import Q
from tests.core.migrate_helper import (
    BLOCK_KEY,
    BLOCK_TRIGGER,
    DROP_BLOCK_TRIGGER,
    WAITER,
    WAITERS,
    _learn,
    build_source,
    pg_rows,
    pg_snapshot,
    sentences,
    sqlite_rows,
)

PQ = pg_schema.PQ


@pytest.fixture
async def source(tmp_path: Path) -> Path:
    path = tmp_path / "markov.sqlite3"
    await build_source(path)
    return path


async def test_every_table_is_copied_row_for_row(source: Path, pg_url: str) -> None:
    with contextlib.closing(sqlite3.connect(source)) as conn, conn:  # a chain 0011 may have dropped rows of
        conn.execute("UPDATE chains SET rows_incomplete = 1 WHERE id = (SELECT min(id) FROM chains)")
    before = sqlite_rows(source)
    assert [row[-1] for row in before["chains"] if row[-1]] == [1]
    outcome = await mg.migrate(source, PostgresUrl(pg_url))
    assert not outcome.already
    assert outcome.key_file == keys.key_file(source)
    assert outcome.rows == {name: len(rows) for name, rows in before.items()}
    assert await pg_rows(pg_url) == before
    assert sqlite_rows(source) == before  # the source is only read
    pg = await asyncpg.connect(pg_url)
    try:  # hubs are off on PostgreSQL: a copied one would go stale, and walks would read it
        assert await pg.fetchval("SELECT count(*) FROM hubs") == 0
    finally:
        await pg.close()


async def test_every_table_of_both_engines_is_copied_or_set_on_purpose(source: Path, pg_url: str) -> None:
    await mg.migrate(source, PostgresUrl(pg_url))
    conn = sqlite3.connect(source)
    try:
        sqlite_tables = {str(n) for (n,) in conn.execute(Q["table_names"])}
        read = {name: [d[0] for d in conn.execute(Q[f"migrate_{name}"]).description] for name, _ in mg.TABLES}
        sqlite_columns = {
            name: [str(r[1]) for r in conn.execute(f"PRAGMA table_info({name})")] for name, _ in mg.TABLES
        }
    finally:
        conn.close()
    pg = await asyncpg.connect(pg_url)
    try:
        pg_tables = {
            str(r[0]) for r in await pg.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
        pg_columns = {
            name: [
                str(r[0])
                for r in await pg.fetch(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = $1 "
                    "ORDER BY ordinal_position",
                    name,
                )
            ]
            for name, _ in mg.TABLES
        }
    finally:
        await pg.close()
    copied = {name for name, _ in mg.TABLES}
    assert sqlite_tables == copied | mg.NOT_COPIED
    assert pg_tables == copied | mg.NOT_COPIED | {"markov_migrations"}
    for name in copied:  # every column of both sides, in PostgreSQL's order
        assert read[name] == pg_columns[name], name
        assert sorted(read[name]) == sorted(sqlite_columns[name]), name


async def test_ids_go_on_where_sqlite_left_them(source: Path, pg_url: str) -> None:
    conn = sqlite3.connect(source)
    try:
        counters = dict(conn.execute("SELECT name, value FROM counters").fetchall())
        sequence = dict(conn.execute("SELECT name, seq FROM sqlite_sequence").fetchall())
        max_version = conn.execute("SELECT max(window_version) FROM chains").fetchone()[0]
    finally:
        conn.close()
    assert counters["removals"] > 0
    await mg.migrate(source, PostgresUrl(pg_url))
    pg = await asyncpg.connect(pg_url)
    try:
        token = await pg.fetch(PQ["insert_tokens"], ["never-seen-before"])
        assert token[0]["id"] == counters["next_token_id"]
        author = await pg.fetchval(PQ["insert_author"], "p", "g", "someone-new")
        assert author == counters["next_author_id"]
        chain = await pg.fetchrow(PQ["insert_chain"], "p", "g", "c", 2, 8, 2)
        assert chain is not None and chain["id"] == counters["next_chain_id"]
        removals = await pg.fetchval("SELECT removals FROM chains WHERE id = $1", chain["id"])
        assert removals == counters["removals"]
        await pg.execute(PQ["insert_block"], 1, 0, b"\xff" * 8, 1, b"x")
        block = await pg.fetchval("SELECT max(id) FROM transition_blocks")
        assert block == sequence["transition_blocks"] + 1
        await pg.execute(PQ["window_insert_block"], 1, 0, b"\xff" * 8, 1, b"x")
        block = await pg.fetchval("SELECT max(id) FROM window_blocks")
        assert block == sequence["window_blocks"] + 1
        version = await pg.fetchval(PQ["window_take_version"])
        assert version >= max(counters["window_changes"], max_version + 1)
    finally:
        await pg.close()


async def test_copying_twice_is_a_no_op(source: Path, pg_url: str) -> None:
    first = await mg.migrate(source, PostgresUrl(pg_url))
    after_first = await pg_snapshot(pg_url)
    second = await mg.migrate(source, PostgresUrl(pg_url))
    assert second.already and not second.rows
    assert second.copied_at == first.copied_at
    assert await pg_snapshot(pg_url) == after_first


async def test_a_copy_stopped_midway_leaves_nothing_and_a_rerun_equals_a_clean_copy(
    source: Path, pg_url: str, pg_server: str, tmp_path: Path
) -> None:
    """The copy fails inside its transaction (the server ends it) once most tables are in: nothing stays."""
    url = PostgresUrl(pg_url)
    setup = await asyncpg.connect(pg_url)
    try:
        await pg_schema.migrate(setup)
        await setup.execute(BLOCK_TRIGGER)
        await setup.execute("SELECT pg_advisory_lock($1)", BLOCK_KEY)
        copying = asyncio.create_task(mg.migrate(source, url))
        while not await setup.fetchval(WAITERS, BLOCK_KEY):  # the copy waits inside its transaction
            assert not copying.done(), "the copy did not reach the blocking table"
        pid = await setup.fetchval(WAITER, BLOCK_KEY)
        half = await setup.fetchval("SELECT count(*) FROM tokens")  # its rows are not visible: not committed
        assert half == 0
        await setup.execute("SELECT pg_terminate_backend($1)", pid)
        with pytest.raises(mg.CopyFailed):
            await copying
        await setup.execute("SELECT pg_advisory_unlock($1)", BLOCK_KEY)
        await setup.execute(DROP_BLOCK_TRIGGER)
    finally:
        await setup.close()
    assert {name: rows for name, rows in (await pg_rows(pg_url)).items() if rows} == {}
    await mg.migrate(source, url)
    assert await pg_rows(pg_url) == sqlite_rows(source)


async def test_a_copy_that_fails_leaves_a_fresh_database_without_tables(
    source: Path, pg_url: str, tmp_path: Path
) -> None:
    odd = tmp_path / "odd.sqlite3"
    shutil.copy(source, odd)
    shutil.copy(keys.key_file(source), keys.key_file(odd))
    conn = sqlite3.connect(odd)
    conn.execute(
        "UPDATE recent_messages SET learned_at = 'yesterday' WHERE rowid = (SELECT min(rowid) FROM recent_messages)"
    )
    conn.commit()
    conn.close()
    with pytest.raises(mg.CopyFailed):
        await mg.migrate(odd, PostgresUrl(pg_url))
    assert await pg_snapshot(pg_url) == (0, None)


async def _copy_while(source: Path, pg_url: str, meanwhile: Callable[[Brain], Awaitable[object]]) -> None:
    """Copy, the bot working on the source (meanwhile) while the copy waits at a late table."""
    setup = await asyncpg.connect(pg_url)
    try:
        await pg_schema.migrate(setup)
        await setup.execute(BLOCK_TRIGGER)
        await setup.execute("SELECT pg_advisory_lock($1)", BLOCK_KEY)
        copying = asyncio.create_task(mg.migrate(source, PostgresUrl(pg_url)))
        while not await setup.fetchval(WAITERS, BLOCK_KEY):
            assert not copying.done(), "the copy did not reach the blocking table"
        brain = await Brain.open(source, flush_interval=0.05, hub_rows=2)
        try:
            await meanwhile(brain)
        finally:
            await brain.close()
        await setup.execute("SELECT pg_advisory_unlock($1)", BLOCK_KEY)
        try:
            await copying
        finally:
            await setup.execute(DROP_BLOCK_TRIGGER)
    finally:
        await setup.close()


async def test_the_copy_is_a_snapshot_while_the_bot_goes_on_learning(source: Path, pg_url: str) -> None:
    before = sqlite_rows(source)
    await _copy_while(
        source, pg_url, lambda brain: _learn(brain, "guild-1", "general", sentences(10, 3), ["alice"], 20000)
    )
    assert sqlite_rows(source) != before  # the bot committed to the file the copy was reading
    assert await pg_rows(pg_url) == before
    with pytest.raises(mg.TargetOtherCopy):  # the source changed since: a second copy is refused
        await mg.migrate(source, PostgresUrl(pg_url))
    assert await pg_rows(pg_url) == before


MISSED = {
    "forget": lambda brain: brain.forget("discord", "guild-1", "bob"),
    "unlearn": lambda brain: brain.unlearn_id("discord", "1010"),
    "opt-out": lambda brain: brain.opt_out("discord", "guild-2", "carol"),
    "a channel disabled": lambda brain: brain.set_channel("discord", "guild-1", "random", False),
}


@pytest.mark.parametrize("case", list(MISSED))
async def test_a_forget_or_consent_change_during_the_copy_is_not_left_behind(
    case: str, source: Path, pg_url: str
) -> None:
    """The bot on PostgreSQL would undo it: the copy is refused, and running it again copies the change."""
    with pytest.raises(mg.SourceChanged):
        await _copy_while(source, pg_url, MISSED[case])
    assert {name: rows for name, rows in (await pg_rows(pg_url)).items() if rows} == {}
    await mg.migrate(source, PostgresUrl(pg_url))
    assert await pg_rows(pg_url) == sqlite_rows(source)


# ---------------------------------------------------------------- refusals: each changes nothing


def _foreign_sqlite(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.commit()
    conn.close()
    return path


def _with_version(source: Path, path: Path, version: int) -> Path:
    shutil.copy(source, path)
    shutil.copy(keys.key_file(source), keys.key_file(path))
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {version}")
    conn.commit()
    conn.close()
    return path


def _with_meta(source: Path, path: Path, key: str, value: str | None) -> Path:
    shutil.copy(source, path)
    shutil.copy(keys.key_file(source), keys.key_file(path))
    conn = sqlite3.connect(path)
    if value is None:
        conn.execute("DELETE FROM meta WHERE key = ?", (key,))
    else:
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))
    conn.commit()
    conn.close()
    return path


def _with_unapplied_log(source: Path, path: Path) -> Path:
    """A copy whose learning log holds a batch its bot was killed before applying."""
    shutil.copy(source, path)
    shutil.copy(keys.key_file(source), keys.key_file(path))
    with contextlib.closing(sqlite3.connect(learnlog.log_path(path))) as conn:
        conn.execute(Q["log_schema"])
        conn.execute(Q["log_append"], (10**9, b"sealed batch"))
        conn.commit()
    return path


def _with_a_kept_change(source: Path, path: Path) -> Path:
    """A copy whose learning log keeps a delete the file refused while another process held it."""
    shutil.copy(source, path)
    shutil.copy(keys.key_file(source), keys.key_file(path))
    with contextlib.closing(sqlite3.connect(learnlog.log_path(path))) as conn:
        conn.execute(Q["log_schema"])
        conn.execute(Q["log_deferred_schema"])
        conn.execute(Q["log_defer"], (1, b"sealed change"))
        conn.commit()
    return path


def _without_key_file(source: Path, path: Path) -> Path:
    shutil.copy(source, path)
    return path


BAD_SOURCES = {
    "missing": (lambda s, p: p, mg.SourceMissing),
    "a folder": (lambda s, p: (p.mkdir(), p)[1], mg.SourceNotMarkovbot),
    "empty": (lambda s, p: (p.touch(), p)[1], mg.SourceNotMarkovbot),
    "text": (lambda s, p: (p.write_text("hello\n" * 100), p)[1], mg.SourceNotMarkovbot),
    "another program's": (lambda s, p: _foreign_sqlite(p), mg.SourceNotMarkovbot),
    "newer": (lambda s, p: _with_version(s, p, 99), mg.SourceTooNew),
    "older": (lambda s, p: _with_version(s, p, 10), mg.SourceNeedsUpgrade),
    "salt in meta": (lambda s, p: _with_meta(s, p, keys.OLD_SALT_META, "00" * 16), mg.SourceNeedsUpgrade),
    "no key check": (lambda s, p: _with_meta(s, p, keys.CHECK_META, None), mg.SourceNeedsUpgrade),
    "key file missing": (_without_key_file, mg.SourceKeyRefused),
    "learning log unapplied": (_with_unapplied_log, mg.SourceLogUnapplied),
    "a change kept in the learning log": (_with_a_kept_change, mg.SourceChangesKept),
}


@pytest.mark.parametrize("case", list(BAD_SOURCES))
async def test_a_bad_source_is_refused_before_the_target_is_touched(
    case: str, source: Path, pg_url: str, tmp_path: Path
) -> None:
    make, refusal = BAD_SOURCES[case]
    bad = make(source, tmp_path / "bad.sqlite3")
    content = bad.read_bytes() if bad.is_file() else None
    with pytest.raises(refusal):
        await mg.migrate(bad, PostgresUrl(pg_url))
    assert await pg_snapshot(pg_url) == (0, None)
    assert (bad.read_bytes() if bad.is_file() else None) == content


async def test_a_wrong_key_is_refused(source: Path, pg_url: str) -> None:
    with pytest.raises(mg.SourceKeyRefused):
        await mg.migrate(source, PostgresUrl(pg_url), key=b"\x01" * 16)
    assert await pg_snapshot(pg_url) == (0, None)


async def test_the_key_given_instead_of_a_file_is_said(tmp_path: Path, pg_url: str) -> None:
    path = tmp_path / "keyed.sqlite3"
    await build_source(path, 12, key=b"\x02" * 16)
    assert not keys.key_file(path).exists()
    outcome = await mg.migrate(path, PostgresUrl(pg_url), key=b"\x02" * 16)
    assert outcome.key_file is None
    assert await pg_rows(pg_url) == sqlite_rows(path)


async def _prepared(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def _markovbot(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await pg_schema.migrate(conn)
    finally:
        await conn.close()
    await _prepared(url, *statements)


BAD_TARGETS = {
    "another program's": (lambda u: _prepared(u, "CREATE TABLE notes (body text)"), mg.TargetNotMarkovbot),
    "newer": (
        lambda u: _markovbot(u, "INSERT INTO markov_migrations (version, name) VALUES (99, 'future')"),
        mg.TargetTooNew,
    ),
    "holding data": (
        lambda u: _markovbot(u, "INSERT INTO consent VALUES ('discord', 'g', 'm', 1)"),
        mg.TargetNotEmpty,
    ),
    "holding a hub": (
        lambda u: _markovbot(u, "INSERT INTO hubs VALUES (1, '\\x00', '\\x00', '\\x00')"),
        mg.TargetNotEmpty,
    ),
    "holding front-end state": (
        lambda u: _markovbot(u, "INSERT INTO meta VALUES ('matrix_since', 'x')"),
        mg.TargetNotEmpty,
    ),
    "opened with another key": (
        lambda u: _markovbot(u, f"INSERT INTO meta VALUES ('key_check', '{keys.check_value(b'9' * 16)}')"),
        mg.TargetOtherKey,
    ),
}


@pytest.mark.parametrize("case", list(BAD_TARGETS))
async def test_a_bad_target_is_refused_and_left_as_it_was(case: str, source: Path, pg_url: str) -> None:
    make, refusal = BAD_TARGETS[case]
    await make(pg_url)
    before = await pg_snapshot(pg_url)
    with pytest.raises(refusal):
        await mg.migrate(source, PostgresUrl(pg_url))
    assert await pg_snapshot(pg_url) == before


async def test_a_target_a_store_opened_with_the_same_key_takes_the_copy(source: Path, pg_url: str) -> None:
    key = keys.read_file(keys.key_file(source))
    assert key is not None
    await _markovbot(pg_url, f"INSERT INTO meta VALUES ('key_check', '{keys.check_value(key)}')")
    await mg.migrate(source, PostgresUrl(pg_url))
    assert await pg_rows(pg_url) == sqlite_rows(source)


async def test_a_copy_of_another_source_is_refused(source: Path, pg_url: str, tmp_path: Path) -> None:
    other = tmp_path / "other.sqlite3"
    await build_source(other, 12)
    await mg.migrate(other, PostgresUrl(pg_url))
    before = await pg_snapshot(pg_url)
    with pytest.raises(mg.TargetOtherCopy):
        await mg.migrate(source, PostgresUrl(pg_url))
    assert await pg_snapshot(pg_url) == before


@pytest.mark.parametrize(
    "dsn",
    ["postgresql://root@127.0.0.1:1/test", "postgresql://root@127.0.0.1:5432/no_such_database_here"],
    ids=["no server", "no database"],
)
async def test_an_unreachable_target_is_refused(source: Path, dsn: str, pg_server: str) -> None:
    from urllib.parse import urlsplit

    server = urlsplit(pg_server)
    if "5432" in dsn:  # the test server's host and port, another database name
        dsn = server._replace(path="/no_such_database_here").geturl()
    with pytest.raises(mg.TargetUnreachable):
        await mg.migrate(source, PostgresUrl(dsn))


# ---------------------------------------------------------------- the copy serves as the source did

STORAGE_FIGURES = {"bytes_kept", "bytes_transitions", "bytes_fingerprints", "bytes_recent", "kept_ratio"}


async def test_the_copy_gives_the_same_walks_and_stats_figures(
    source: Path, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same key on both engines: the same walks (guarded, and backward from a word) and the same report."""
    import random

    from bot.core.models import ChainKey

    monkeypatch.chdir(tmp_path)  # a store that takes the URL for a path makes its folders here
    key = keys.read_file(keys.key_file(source))
    await mg.migrate(source, PostgresUrl(pg_url))
    chains = [ChainKey("discord", "guild-1", "general"), ChainKey("discord", "guild-2", "general")]
    results = []
    for where in (str(source), pg_url):
        brain = await Brain.open(where, key=key, flush_interval=0.05)
        brain.guard_budget = 60.0  # the same tries on both: PostgreSQL's reads take longer per try
        try:
            found = []
            for chain in chains:
                walks = await brain.generate_many(chain, 5, rng=random.Random(7), guard=True)
                starts = await brain.generate_many(chain, 3, start="cat", rng=random.Random(8), guard=False)
                report = (await brain.stats(chain)).as_json()
                figures = {k: v for k, v in report.items() if k not in STORAGE_FIGURES}
                found.append(([w.text for w in walks], [w.text for w in starts], figures))
            results.append(found)
        finally:
            await brain.close()
    sqlite_side, pg_side = results
    assert sqlite_side[0][0], "no walk was made: the test would compare nothing"
    assert pg_side == sqlite_side
