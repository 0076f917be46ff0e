"""Window blocks: signed merges plus the delta read back as exactly the sum; drop an author; old databases."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import aiosqlite
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.core import blocks, blockwriter, schema, windowrows
from bot.core.blocks import WINDOWS
from bot.core.blockwriter import BlockWriter
from bot.core.brain import Brain
from bot.core.connections import Connections
from bot.core.models import ChainKey, Message, UnlearnStatus
from bot.core.reads import Reads, of
from bot.core.versions import Version
from bot.core.walker import Walker
from tests.core.blockengines import BlockEngine
from tests.core.dump import downgrade, logical_dump
from tests.core.test_blocks import assert_well_formed, learn_then_unlearn

CHAIN = 7
Key = tuple[int, int]  # fingerprint, author
EDGES = [-(2**63), -(2**63) + 1, -(2**32), -1, 0, 1, 2**32 - 1, 2**32, 2**63 - 1, 5 << 32, (5 << 32) + 1]
fingerprints = st.one_of(st.sampled_from(EDGES), st.integers(-(2**63), 2**63 - 1))
keys = st.tuples(fingerprints, st.sampled_from([1, 2, 2**31 + 5]))
changes = st.lists(st.dictionaries(keys, st.integers(1, 3), max_size=20), min_size=1, max_size=5)


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of 3 entries, re-cut 2 at a time: a fingerprint's authors span blocks."""
    monkeypatch.setattr(blocks, "BLOCK_ENTRIES", 3)
    monkeypatch.setattr(blockwriter, "WINDOW", 2)


def run(path: Path, batches: list[dict[Key, int]], delta: dict[Key, int], forget: int | None = None) -> None:
    """Merge each batch into a chain's window blocks, then put the delta rows in; then drop an author."""

    async def merge_all() -> None:
        conn = await aiosqlite.connect(path, isolation_level=None)
        try:
            await schema.migrate(conn, path)
            await conn.execute(
                "INSERT OR IGNORE INTO chains (id, platform, guild, channel, ord, run_length) VALUES (?, 'p', 'g', 'c', 2, 8)",
                (CHAIN,),
            )
            writer = BlockWriter(Connections(writer=conn), WINDOWS)
            for batch in batches:
                await conn.execute("BEGIN IMMEDIATE")
                await writer.merge(
                    CHAIN, 0, blocks.window_entries([(f, a, k) for (f, a), k in batch.items()])
                )
                await conn.execute("COMMIT")
            await conn.executemany(
                "INSERT INTO windows VALUES (?, ?, ?, ?)", [(CHAIN, f, a, k) for (f, a), k in delta.items()]
            )
            if forget is not None:
                await conn.execute("BEGIN IMMEDIATE")
                await writer.drop_author(CHAIN, 0, forget)
                await conn.execute("COMMIT")
        finally:
            await conn.close()

    asyncio.run(merge_all())


def check(path: Path, expected: Counter[Key]) -> None:
    """The chain's windows read back as expected, through every reader, and its blocks are well formed."""
    with sqlite3.connect(path) as conn:
        every = windowrows.every(conn, CHAIN)
        assert Counter({(f, a): k for f, a, k in every.tolist()}) == expected
        reader = windowrows.WindowReader()
        fps = sorted({f for f, _ in expected} | set(EDGES))
        for fp in fps:
            times = sum(k for (f, _), k in expected.items() if f == fp)
            authors = sum(1 for f, _ in expected if f == fp)
            assert reader.present(conn, CHAIN, [fp]) == (times > 0)
            assert reader.multiplicity(conn, CHAIN, [fp]) == ({fp: (times, authors)} if times else {})
        assert reader.present(conn, CHAIN, fps) == bool(expected)
        rows = conn.execute("SELECT first, entries, data FROM window_blocks ORDER BY first").fetchall()
        assert_well_formed(rows, 4)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(learn_then_unlearn(changes), st.dictionaries(keys, st.integers(1, 3), max_size=10))
def test_signed_merges_and_the_delta_read_back_as_exactly_the_sum(
    tmp_path_factory: pytest.TempPathFactory, batches: list[dict[Key, int]], delta: dict[Key, int]
) -> None:
    path = tmp_path_factory.mktemp("windows") / "w.sqlite3"
    run(path, batches, delta)
    expected: Counter[Key] = Counter(delta)
    for batch in batches:
        expected.update(batch)
    check(path, +expected)


class Indexed:
    """SQLite reads, taken for an engine whose every statement is a round trip: the window reader
    then finds blocks by a binary search over the chain's block index, not a query a fingerprint."""

    combined = True

    def __init__(self, reads: Reads) -> None:
        self.reads = reads

    def rows(self, name: str, *params: object) -> list[Any]:
        return self.reads.rows(name, *params)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(learn_then_unlearn(changes))
def test_the_blocks_a_fingerprint_may_be_in_are_the_same_by_query_as_by_the_block_index(
    tmp_path_factory: pytest.TempPathFactory, batches: list[dict[Key, int]]
) -> None:
    path = tmp_path_factory.mktemp("windows") / "w.sqlite3"
    run(path, batches, {})
    fps = sorted({f for batch in batches for f, _ in batch} | set(EDGES))
    with contextlib.closing(sqlite3.connect(path)) as conn:
        reads, reader = of(conn), windowrows.WindowReader()
        for wanted in [[fp] for fp in fps] + [fps]:
            keys = windowrows.keys_of(wanted)
            by_query = reader._candidates(reads, CHAIN, keys)
            assert by_query == reader._candidates(Indexed(reads), CHAIN, keys)  # type: ignore[arg-type]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes)
def test_dropping_an_author_leaves_exactly_the_others(
    tmp_path_factory: pytest.TempPathFactory, batches: list[dict[Key, int]]
) -> None:
    path = tmp_path_factory.mktemp("windows") / "w.sqlite3"
    run(path, batches, {}, forget=2)
    expected: Counter[Key] = Counter()
    for batch in batches:
        expected.update({k: v for k, v in batch.items() if k[1] != 2})
    check(path, expected)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(learn_then_unlearn(changes), st.booleans())
def test_merges_and_a_dropped_author_read_back_as_exactly_the_sum_on_every_engine(
    block_engine: BlockEngine, batches: list[dict[Key, int]], forget: bool
) -> None:
    expected: Counter[Key] = Counter()
    for batch in batches:
        expected.update(batch)
    expected = Counter({k: v for k, v in expected.items() if v and not (forget and k[1] == 2)})

    async def go() -> None:
        async with block_engine.session() as session:
            for batch in batches:
                async with session.transaction():
                    change = blocks.window_entries([(f, a, k) for (f, a), k in batch.items()])
                    await session.writer(WINDOWS).merge(CHAIN, 0, change)
            if forget:
                async with session.transaction():
                    await session.writer(WINDOWS).drop_author(CHAIN, 0, 2)
            found = (await session.windows(CHAIN)).tolist()
            assert Counter({(f, a): k for f, a, k in found}) == expected and len(found) == len(expected)
            assert_well_formed(await session.block_rows(0, WINDOWS), 4)

    asyncio.run(go())


def test_fingerprints_split_and_join_exactly_in_signed_order() -> None:
    values = np.array(sorted(EDGES), dtype=np.int64)
    high, low = blocks.split_fingerprints(values)
    assert (blocks.join_fingerprints(high, low) == values).all()
    assert high.min() >= 0 and high.max() < 2**32 and low.min() >= 0 and low.max() < 2**32
    assert (np.lexsort([low, high]) == np.arange(len(values))).all()  # (high, low) sorts as the signed value
    keys = windowrows.keys_of(values)
    assert (np.diff(keys.astype(object)) > 0).all()


LINES = [f"the {w} sat on the mat near the old {w} door today" for w in ("cat", "dog", "fox", "owl")]


async def learn(path: Path, lines: list[str], start: int = 0) -> None:
    brain = await Brain.open(path, flush_interval=0.05)
    for i, text in enumerate(lines, start=start):
        await brain.learn(Message("local", "local", "c", f"a{i % 2}", f"m{i}", text), require_consent=False)
    await brain.close()


async def guard_finds(path: Path, text: str) -> tuple[bool, bool]:
    """(the report's window lookup, a walker's copy guard) find a run of K words of text."""
    brain = await Brain.open(path, flush_interval=0.05)
    try:
        info = await brain.store.find_chain(ChainKey("local", "local", "c"))
        assert info is not None
        _, fps = brain.fingerprints.guarded(text.split(), info.run_length, info.scheme)
        by_report = await brain.store.reports.windows_present(info.id, fps)
        walker = Walker(path, brain.store.key, 100)
        try:
            return by_report, walker.copies(info, text.split())[1]
        finally:
            walker.close()
    finally:
        await brain.close()


def test_an_old_database_with_window_rows_migrates_and_its_windows_are_still_found(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    asyncio.run(learn(path, LINES))
    before = logical_dump(path)
    ids = [("local", f"m{i}") for i in range(len(LINES))]
    downgrade(path, 9, ids)  # schema 9: every window a row of the windows table
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM windows").fetchone()[0] > 0
        assert "window_blocks" not in {n for (n,) in conn.execute("SELECT name FROM sqlite_master")}
    asyncio.run(learn(path, []))  # opens, migrates
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM windows").fetchone()[0] > 0  # still the delta
        assert conn.execute("SELECT count(*) FROM window_blocks").fetchone()[0] == 0
    assert logical_dump(path, ids=ids) == before  # recent rows sealed as before 0011 open given their ids
    assert asyncio.run(guard_finds(path, "x the dog sat on the mat near the old dog y")) == (True, True)
    assert asyncio.run(guard_finds(path, "the dog sat on a rug")) == (False, False)
    asyncio.run(learn(path, ["a new line of words to learn here and merge it all"], start=10))  # merges
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM windows").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM window_blocks").fetchone()[0] > 0
    assert asyncio.run(guard_finds(path, "x the dog sat on the mat near the old dog y")) == (True, True)
    assert asyncio.run(guard_finds(path, "a new line of words to learn here")) == (True, True)


def test_a_walker_kept_open_sees_every_change_to_the_window_blocks(tmp_path: Path) -> None:
    """The guard's cached block index and blocks follow merges, an unlearn and a forget."""
    path = tmp_path / "m.sqlite3"

    async def work() -> list[bool]:
        brain = await Brain.open(path, flush_interval=0.05)
        seen: list[bool] = []
        walker: Walker | None = None
        text = "the owl sat on the mat near the old owl door today"

        async def guard() -> None:
            nonlocal walker
            info = await brain.store.find_chain(ChainKey("local", "local", "c"))
            assert info is not None
            walker = walker or Walker(path, brain.store.key, 100)
            walker.sync(Version(info.id, 0))  # as before every call (a forget rewrote blocks in place)
            seen.append(walker.copies(info, text.split())[1])

        try:
            for i, line in enumerate(LINES[:3]):
                await brain.learn(Message("local", "local", "c", "a", f"m{i}", line), require_consent=False)
            await brain.flush()
            await guard()  # not learned yet: the index is read and kept
            owl = Message("local", "local", "c", "b", "owl", text)
            await brain.learn(owl, require_consent=False)
            await brain.flush()
            await guard()  # merged into blocks: found
            assert await brain.unlearn(owl) is UnlearnStatus.UNLEARNED
            await guard()  # subtracted from the blocks: gone
            await brain.learn(Message("local", "local", "c", "b", "owl2", text), require_consent=False)
            await brain.flush()
            await guard()
            await brain.forget("local", "local", "b")
            await guard()  # forgotten: gone
        finally:
            if walker is not None:
                walker.close()
            await brain.close()
        return seen

    assert asyncio.run(work()) == [False, True, False, True, False]


@pytest.mark.parametrize("versioned", [True, False])
def test_a_reader_kept_open_follows_blocks_re_cut(tmp_path: Path, versioned: bool) -> None:
    """Every change gives the chain a new version; a reader kept open finds what the re-cut blocks
    hold, also after a writer that did not say (versioned False: the old version put back). On SQLite
    it asks for each fingerprint's blocks, so no index can go stale (PostgreSQL's: test_reads)."""
    path = tmp_path / "w.sqlite3"
    run(path, [{(fp, 1): 1 for fp in range(0, 40, 2)}], {})
    reader = windowrows.WindowReader(cached_blocks=1 if not versioned else windowrows.CACHED_BLOCKS)
    with sqlite3.connect(path) as conn:
        assert reader.present(conn, CHAIN, [10]) and not reader.present(conn, CHAIN, [11])
        assert reader.present(conn, CHAIN, [30])  # the block of 10 leaves the cache of one
        (before,) = conn.execute("SELECT window_version FROM chains WHERE id = ?", (CHAIN,)).fetchone()
    run(path, [{(11, 1): 1}], {})  # re-cuts the block of 10 and 11
    with sqlite3.connect(path) as conn:
        (after,) = conn.execute("SELECT window_version FROM chains WHERE id = ?", (CHAIN,)).fetchone()
        assert after != before
        if not versioned:
            conn.execute("UPDATE chains SET window_version = ? WHERE id = ?", (before, CHAIN))
            conn.commit()
        assert reader.present(conn, CHAIN, [11]) and reader.present(conn, CHAIN, [10])
        assert reader.multiplicity(conn, CHAIN, [11, 12, 13]) == {11: (1, 1), 12: (1, 1)}
