"""Transition blocks: packing round-trips, and merges of signed counts keep exactly the sum of what was
merged, on every engine (tests/core/blockengines.py)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from pathlib import Path
from typing import TypeVar

import aiosqlite
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.core import blocks, blockwriter, chainrows, schema
from bot.core.blocks import BACKWARD, FORWARD
from bot.core.blockwriter import BlockWriter
from bot.core.connections import Connections
from tests.core.blockengines import BlockEngine, Session

ORDER = 2
CHAIN = 7
Key = tuple[int, int, int, int]  # c1, c2, next, author
K = TypeVar("K", bound=tuple[int, ...])

keys = st.tuples(st.integers(0, 5), st.integers(0, 5), st.integers(1, 6), st.sampled_from([1, 2, 2**31 + 5]))
changes = st.lists(st.dictionaries(keys, st.integers(1, 3), max_size=30), min_size=1, max_size=6)


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of 3 entries, re-cut 2 at a time: every merge splits, joins and walks windows."""
    monkeypatch.setattr(blocks, "BLOCK_ENTRIES", 3)
    monkeypatch.setattr(blockwriter, "WINDOW", 2)


def entries(counts: dict[Key, int]) -> np.ndarray:  # type: ignore[type-arg]
    return np.array([(*k, v) for k, v in counts.items()], dtype=np.int64).reshape(-1, blocks.width(ORDER))


def as_counter(found: np.ndarray) -> Counter[Key]:  # type: ignore[type-arg]
    return Counter({tuple(row[:-1]): row[-1] for row in found.tolist()})  # type: ignore[misc]


def exact_counter(found: np.ndarray) -> Counter[Key]:  # type: ignore[type-arg]
    """Entries read back as counts by key, each key found once (as_counter would hide a repeated one)."""
    counts = as_counter(found)
    assert len(counts) == len(found), "a key was read back more than once"
    return counts


def assert_well_formed(rows: list[tuple[bytes, int, bytes]], width: int) -> None:
    """(first, entries, data) rows of blocks in key order: each within size, its first key its
    first entry's, and their entries sorted across blocks, each key once, none at 0."""
    assert all(0 < n <= blocks.BLOCK_ENTRIES for _, n, _ in rows)
    decoded = [blocks.decode(data) for _, _, data in rows]
    assert all(
        blocks.key_bytes(d[0, :-1].tolist()) == first for (first, _, _), d in zip(rows, decoded, strict=True)
    )
    whole = np.concatenate(decoded) if decoded else np.empty((0, width), dtype=np.int64)
    assert (blocks.summed(whole) == whole).all()


tops = st.sampled_from([5, 300, 70_000, 2**32 - 1])  # each column's widest value picks its stored type


@st.composite
def packed_runs(draw: st.DrawFn) -> tuple[int, list[tuple[bytes, int, bytes]]]:
    """Blocks of several runs packed apart (so their columns may be stored in different types), all of one width."""
    width = draw(st.sampled_from([blocks.WINDOWS.columns, blocks.width(ORDER)]))
    found: list[tuple[bytes, int, bytes]] = []
    for top in draw(st.lists(st.lists(tops, min_size=width, max_size=width), max_size=4)):
        rows = draw(st.lists(st.tuples(*(st.integers(0, t) for t in top)), max_size=12))
        counted = np.array(rows, dtype=np.int64).reshape(-1, width)
        counted[:, -1] += 1  # no count at 0
        found += blocks.encode_chunks(blocks.summed(counted))
    return width, found


@given(packed_runs())
def test_blocks_decoded_together_are_each_decoded_alone(
    packed: tuple[int, list[tuple[bytes, int, bytes]]],
) -> None:
    width, rows = packed
    together, sizes = blocks.decode_many([data for _, _, data in rows], width)
    alone = [blocks.decode(data) for _, _, data in rows]
    assert together.tolist() == (np.concatenate(alone) if alone else np.empty((0, width))).tolist()
    assert sizes.tolist() == [n for _, n, _ in rows] == [len(a) for a in alone]
    assert together.shape[1] == width


@st.composite
def learn_then_unlearn(draw: st.DrawFn, changes: st.SearchStrategy[list[dict[K, int]]]) -> list[dict[K, int]]:
    """Batches to learn, then some of what was learned taken away again (never more than was learned)."""
    batches = draw(changes)
    total: Counter[K] = Counter()
    for batch in batches:
        total.update(batch)
    for _ in range(draw(st.integers(0, 3))):
        if not total:
            break
        taken = draw(st.dictionaries(st.sampled_from(sorted(total)), st.integers(1, 3), max_size=10))
        taken = {k: -min(v, total[k]) for k, v in taken.items()}
        total.update(taken)
        total = +total
        batches.append(taken)
    return batches


def run(path: Path, batches: list[dict[Key, int]], forget: int | None = None) -> None:
    async def merge_all() -> None:
        conn = await aiosqlite.connect(path, isolation_level=None)
        try:
            await schema.migrate(conn, path)
            db = Connections(writer=conn)
            for batch in batches:
                await conn.execute("BEGIN IMMEDIATE")
                await BlockWriter(db).merge(CHAIN, ORDER, entries(batch))
                await conn.execute("COMMIT")
            if forget is not None:
                await conn.execute("BEGIN IMMEDIATE")
                await BlockWriter(db).drop_author(CHAIN, ORDER, forget)
                await conn.execute("COMMIT")
        finally:
            await conn.close()

    asyncio.run(merge_all())


async def merge_batches(session: Session, batches: list[dict[Key, int]], forget: int | None = None) -> None:
    """Merge each batch in a write transaction of its own; then drop an author, in another."""
    for batch in batches:
        async with session.transaction():
            await session.writer().merge(CHAIN, ORDER, entries(batch))
    if forget is not None:
        async with session.transaction():
            await session.writer().drop_author(CHAIN, ORDER, forget)


async def assert_holds_exactly(session: Session, expected: Counter[Key]) -> None:
    """The chain's entries read forward and backward are exactly expected; its blocks well formed."""
    assert exact_counter(await session.every(CHAIN, ORDER)) == expected
    for next_id in range(1, 7):
        into = exact_counter(await session.backward(CHAIN, ORDER, next_id))
        assert into == Counter({k: v for k, v in expected.items() if k[2] == next_id})
    for direction in (FORWARD, BACKWARD):
        assert_well_formed(await session.block_rows(direction), 5)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(learn_then_unlearn(changes))
def test_merges_keep_exactly_the_sum_in_both_directions(
    block_engine: BlockEngine, batches: list[dict[Key, int]]
) -> None:
    expected: Counter[Key] = Counter()
    for batch in batches:
        expected.update(batch)

    async def go() -> None:
        async with block_engine.session() as session:
            await merge_batches(session, batches)
            await assert_holds_exactly(session, +expected)

    asyncio.run(go())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes, st.dictionaries(keys, st.integers(1, 3), max_size=30))
def test_reads_and_scans_add_the_delta_rows_to_the_blocks(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    batches: list[dict[Key, int]],
    delta: dict[Key, int],
) -> None:
    monkeypatch.setattr(chainrows, "SCAN_BLOCKS", 2)
    path = tmp_path_factory.mktemp("blocks") / "b.sqlite3"
    run(path, batches)
    expected: Counter[Key] = Counter(delta)
    for batch in batches:
        expected.update(batch)
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO transitions VALUES (?, ?, ?, ?, ?)",
            [(CHAIN, blocks.key_bytes(k[:2]), k[2], k[3], v) for k, v in delta.items()],
        )
        conn.commit()
        every = chainrows.every(conn, CHAIN, ORDER)
        assert as_counter(every) == expected
        chunks: list[np.ndarray] = []  # type: ignore[type-arg]
        chainrows.scan(conn, CHAIN, ORDER, chunks.append)
        assert all(len(c) for c in chunks)
        assert (np.concatenate([every[:0], *chunks]) == every).all()
        for c1 in range(6):
            opening: list[np.ndarray] = []  # type: ignore[type-arg]
            chainrows.scan(conn, CHAIN, ORDER, opening.append, [c1])
            assert (np.concatenate([every[:0], *opening]) == every[every[:, 0] == c1]).all()
        whole = chainrows.shape(every, ORDER)
        parts = [chainrows.shape(c, ORDER) for c in chunks]
        assert sum(p.states for p in parts) == whole.states and sum(p.forced for p in parts) == whole.forced
        for c1 in range(6):
            for c2 in range(6):
                ctx = blocks.key_bytes([c1, c2])
                ids, counts = chainrows.successors(conn, CHAIN, ctx)
                want = Counter()
                for k, v in expected.items():
                    if k[:2] == (c1, c2):
                        want[k[2]] += v
                assert dict(zip(ids, counts, strict=True)) == dict(want) and ids == sorted(ids)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes)
def test_dropping_an_author_leaves_exactly_the_others(
    block_engine: BlockEngine, batches: list[dict[Key, int]]
) -> None:
    expected: Counter[Key] = Counter()
    for batch in batches:
        expected.update({k: v for k, v in batch.items() if k[3] != 2})

    async def go() -> None:
        async with block_engine.session() as session:
            await merge_batches(session, batches, forget=2)
            await assert_holds_exactly(session, expected)  # still sorted across blocks

    asyncio.run(go())


def test_a_merge_refuses_to_take_more_than_was_learned(block_engine: BlockEngine) -> None:
    async def go() -> None:
        async with block_engine.session() as session:
            with pytest.raises(ValueError, match="below zero"):
                await merge_batches(session, [{(0, 0, 2, 1): 1}, {(0, 0, 2, 1): -2}])
            assert as_counter(await session.every(CHAIN, ORDER)) == Counter({(0, 0, 2, 1): 1})

    asyncio.run(go())


def test_packing_round_trips_wide_values() -> None:
    found = np.array([[0, 2**32 - 1, 5, 2**32 - 1, 1], [3, 0, 1, 1, 2**40]], dtype=np.int64)
    [(first, n, data)] = blocks.encode_chunks(found)
    assert (
        (blocks.decode(data) == found).all() and n == 2 and first == blocks.key_bytes(found[0, :-1].tolist())
    )


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(-2, 3)), max_size=12), st.booleans()
)
def test_summed_adds_equal_keys_in_key_order_whether_or_not_they_come_sorted(
    rows: list[tuple[int, int, int]], presorted: bool
) -> None:
    table = np.array(rows, dtype=np.int64).reshape(-1, 3)
    if presorted:  # the fast path: already in key order, each key once
        table = np.array([(*k, v) for k, v in sorted(as_counter(table).items())], dtype=np.int64).reshape(
            -1, 3
        )
    expected: Counter[tuple[int, int]] = Counter()
    for a, b, k in table.tolist():
        expected[(a, b)] += k
    found = blocks.summed(table, signed=True)
    assert [(a, b, k) for a, b, k in found.tolist()] == sorted((*key, k) for key, k in expected.items() if k)
