"""The rolling merge (bot.core.rolling): each delta moved into its blocks a slice at a time, exactly.

The other tests merge the whole delta at every commit (tests/conftest.py sets MERGE_ROWS to 0); here
chains keep part of their counts in the deltas between commits, with many small blocks and slices,
so that every read, unlearn and forget meets blocks and both deltas half merged.
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest

from bot.core import blocks, rolling
from bot.core.models import Message, UnlearnStatus
from tests.core.dump import downgrade, logical_dump
from tests.core.writer_corpus import KEY, MEMBERS, corpus, dump, learn, open_brain


@pytest.fixture
def small_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of 4 entries, slices of 2 blocks, one entry visited per row learned: many partial merges."""
    monkeypatch.setattr(blocks, "BLOCK_ENTRIES", 4)
    monkeypatch.setattr(rolling, "SLICE", 2)
    monkeypatch.setattr(rolling, "SHARE", 1)


def block_ids(path: Path) -> dict[int, set[int]]:
    """The transition blocks' ids in each direction."""
    with sqlite3.connect(path) as db:
        found: dict[int, set[int]] = {0: set(), 1: set()}
        for block_id, direction in db.execute("SELECT id, direction FROM transition_blocks"):
            found[direction].add(block_id)
        return found


DELTAS = ("transitions", "transitions_back", "windows")


def delta_rows(path: Path) -> tuple[int, int, int]:
    """Rows of the forward, backward and window deltas."""
    with sqlite3.connect(path) as db:
        return tuple(  # type: ignore[return-value]
            int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]) for table in DELTAS
        )


async def any_delta_rows(where: Path | str) -> tuple[int, int, int]:
    """delta_rows, on either engine."""
    if isinstance(where, Path):
        return delta_rows(where)
    conn = await asyncpg.connect(where)
    try:
        return tuple([int(await conn.fetchval(f"SELECT count(*) FROM {table}")) for table in DELTAS])  # type: ignore[return-value]
    finally:
        await conn.close()


async def assert_same_as_merged(
    where: Path | str, tmp_path: Path, pg_url: str, messages: list[Message]
) -> None:
    """where's dump equals the other engine's after learning only messages, every count in blocks."""
    clean = pg_url if isinstance(where, Path) else tmp_path / "clean.sqlite3"
    other = await open_brain(clean, tmp_path, batch_size=10, merge_rows=0)
    try:
        await learn(other, messages)
    finally:
        await other.close()
    assert await dump(where) == await dump(clean)  # each dump also checks backward == forward


@pytest.mark.usefixtures("small_slices")
async def test_half_merged_deltas_unlearn_and_forget_exactly_on_both_engines(
    where: Path | str, tmp_path: Path, pg_url: str
) -> None:
    messages = corpus(160)
    forgotten = MEMBERS[2]
    unlearned = messages[100:120]
    brain = await open_brain(
        where, tmp_path, batch_size=10, merge_rows=1, idle_merge_seconds=0, learning_log=False
    )
    try:
        await learn(brain, messages)
        for message in unlearned:
            assert await brain.unlearn(message) is UnlearnStatus.UNLEARNED
        await brain.forget("t", "g", forgotten)
    finally:
        await brain.close()
    if isinstance(where, Path):  # the test met what it is about: blocks and both deltas, half merged
        assert all(block_ids(where).values()) and all(delta_rows(where))
    kept = [m for m in messages if m.author != forgotten and m not in unlearned]
    await assert_same_as_merged(where, tmp_path, pg_url, kept)


@pytest.mark.usefixtures("small_slices")
async def test_an_idle_writer_merges_every_delta_into_the_blocks_on_both_engines(
    where: Path | str, tmp_path: Path, pg_url: str
) -> None:
    messages = corpus(160)
    brain = await open_brain(where, tmp_path, batch_size=10, merge_rows=1, flush_interval=0.05)
    try:
        await learn(brain, messages[:150])
        await asyncio.wait_for(brain.store.merged_while_idle(), 60)
        assert await any_delta_rows(where) == (0, 0, 0)
        await learn(brain, messages[150:])  # learning again: the deltas hold rows, merged once idle again
        if isinstance(where, Path):  # read before the flusher runs again (no await since the commit)
            assert all(delta_rows(where))
        await asyncio.wait_for(brain.store.merged_while_idle(), 60)
    finally:
        await brain.close()
    assert await any_delta_rows(where) == (0, 0, 0)
    if isinstance(where, Path):
        assert all(block_ids(where).values())
    await assert_same_as_merged(where, tmp_path, pg_url, messages)


@pytest.mark.usefixtures("small_slices")
async def test_what_a_run_before_left_in_the_deltas_is_merged_once_idle(
    where: Path | str, tmp_path: Path
) -> None:
    brain = await open_brain(
        where, tmp_path, batch_size=10, merge_rows=1, idle_merge_seconds=0, learning_log=False
    )
    try:
        await learn(brain, corpus(120))
        expected = await dump(where)
    finally:
        await brain.close()
    assert all(await any_delta_rows(where))
    brain = await open_brain(where, tmp_path, merge_rows=1, flush_interval=0.05)  # learns nothing
    try:
        await asyncio.wait_for(brain.store.merged_while_idle(), 60)
    finally:
        await brain.close()
    assert await any_delta_rows(where) == (0, 0, 0)
    assert await dump(where) == expected


@pytest.mark.usefixtures("small_slices")
async def test_a_commit_rewrites_a_slice_of_the_blocks_not_all_of_them(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite3"
    brain = await open_brain(path, tmp_path, batch_size=50, merge_rows=0)  # everything in blocks
    try:
        await learn(brain, [m for m in corpus(300) if m.channel == "c1"])
    finally:
        await brain.close()
    assert min(len(ids) for ids in block_ids(path).values()) > 40
    rewritten = 0
    brain = await open_brain(path, tmp_path, merge_rows=1, idle_merge_seconds=0, learning_log=False)
    try:
        for i, message in enumerate(corpus(40, seed=3)):
            before = block_ids(path)
            await learn(brain, [replace(message, channel="c1", id=f"n{i}")])  # one commit
            after = block_ids(path)
            for direction in (0, 1):
                gone = len(before[direction] - after[direction])
                # at most 13 rows owed an entry each; a step visits SLICE blocks of 3 or 4 entries
                assert gone <= 4 * rolling.SLICE, (i, direction, gone)
                rewritten += gone
    finally:
        await brain.close()
    assert rewritten > 0  # the slices did take the rows in


@pytest.mark.usefixtures("small_slices")
async def test_the_deltas_stay_near_their_share_of_the_blocks(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    brain = await open_brain(
        path, tmp_path, batch_size=20, merge_rows=1, idle_merge_seconds=0, learning_log=False
    )
    try:
        await learn(brain, [m for m in corpus(600) if m.channel == "c2"])
    finally:
        await brain.close()
    with sqlite3.connect(path) as db:
        entries = int(
            db.execute("SELECT sum(entries) FROM transition_blocks WHERE direction = 0").fetchone()[0]
        )
    forward, backward, _ = delta_rows(path)
    # A sweep of every block takes entries / SHARE rows learned, so that is about what waits unmerged
    # (plus a batch: the one learned after the last step).
    for rows in (forward, backward):
        assert 0 < rows <= entries // rolling.SHARE + 20 * 40


async def test_a_schema_11_delta_migrates_into_both_directions(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    brain = await open_brain(
        path, tmp_path, batch_size=25, merge_rows=10**9, idle_merge_seconds=0
    )  # every count in the delta
    try:
        await learn(brain, corpus(60))
    finally:
        await brain.close()
    expected = logical_dump(path, KEY)
    downgrade(path, 11)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM transitions").fetchone()[0] > 0
        assert db.execute("SELECT name FROM sqlite_master WHERE name = 'transitions_back'").fetchone() is None
    brain = await open_brain(path, tmp_path, merge_rows=0)
    try:
        assert delta_rows(path)[1] == delta_rows(path)[0]
        assert logical_dump(path, KEY) == expected  # and backward == forward (the dump checks it)
        fresh = [replace(m, id=f"n{i}") for i, m in enumerate(corpus(10, seed=9))]
        await learn(brain, fresh)  # the whole migrated delta merged, in both directions
    finally:
        await brain.close()
    assert delta_rows(path)[:2] == (0, 0)
    assert logical_dump(path, KEY)["transitions"] != expected["transitions"]
