"""The reads seam (bot.core.reads): where a store lives picks the engine; a snapshot sees one committed state;
PostgreSQL's reads run on a loop of their own and refuse to run inside a running one."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.core import reads, windowrows
from bot.core.engines import PostgresUrl, SqliteUrl
from tests.core import readengines
from tests.core.readengines import corpus


def test_a_path_is_a_sqlite_file_and_a_url_string_names_its_engine(tmp_path: Path) -> None:
    assert reads.database(tmp_path / "a.sqlite3") == SqliteUrl(tmp_path / "a.sqlite3")
    assert reads.database("data/b.sqlite3") == SqliteUrl(Path("data/b.sqlite3"))
    assert reads.database("sqlite:///c.db") == SqliteUrl(Path("c.db"))
    assert reads.database("postgresql://u@h/db") == PostgresUrl("postgresql://u@h/db")


async def test_a_snapshot_sees_one_committed_state_and_the_next_read_sees_the_commit(
    where: Path | str,
) -> None:
    data = corpus(8)
    chain = await readengines.write(where, data)
    seen: list[object] = []

    def on_one_thread() -> list[int]:  # the walker's way: made, used and closed on one thread
        db = reads.connect(where)

        def read() -> tuple[object, ...]:
            return tuple(db.rows("delta_all", chain.id)), db.rows("chain_removals", chain.id)[0][0]

        try:
            with db.snapshot():
                seen.append(read())
                asyncio.run(readengines.forget(where, chain, data, author=1))  # another connection commits
                seen.append(read())
            seen.append(read())
            return [int(i) for i, _ in db.rows("tokens_by_id", db.ids([2, 3, 10**6]))]
        finally:
            db.close()

    ids = await asyncio.to_thread(on_one_thread)
    assert seen[0] == seen[1] != seen[2]
    assert seen[2][1] == seen[0][1] + 1  # type: ignore[operator]
    assert sorted(ids) == [2, 3]


async def test_postgresql_reads_refuse_to_run_inside_a_running_event_loop(pg_url: str) -> None:
    db = reads.connect(pg_url)
    try:
        with pytest.raises(RuntimeError, match="synchronous"):
            db.rows("window_version", 1)
    finally:
        db.close()


async def test_postgresql_guard_reads_by_index_equal_the_reads_a_key_at_a_time(pg_url: str) -> None:
    data = corpus(9)
    chain = await readengines.write(pg_url, data)
    fps = sorted({fp for fp, _ in data.windows})

    def read(combined: bool) -> list[bool]:
        db = reads.connect(pg_url)
        db.combined = combined  # False: a key at a time in a snapshot, as on SQLite, on the same data
        guard = windowrows.WindowReader(
            cached_blocks=2
        )  # small: blocks are both taken from it and read again
        try:
            found: list[bool] = []
            for _ in range(2):  # the second round mostly from the caches
                found += [guard.present(db, chain.id, [fp]) for fp in fps]
                found += [guard.present(db, chain.id, [fp ^ 1, fp ^ 2]) for fp in fps]
            return found
        finally:
            db.close()

    by_index, by_key = await asyncio.to_thread(read, True), await asyncio.to_thread(read, False)
    assert by_index == by_key
    assert set(by_index) == {True, False}  # both answers met: the comparison above is not vacuous
