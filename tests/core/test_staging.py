"""Staged runs: merged in parts they sum exactly and never split a context, and merged into blocks
they leave exactly what merging batch by batch leaves."""

from __future__ import annotations

import asyncio
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.core import blocks, blockwriter, staging
from bot.core.blocks import BACKWARD, FORWARD, TRANSITIONS, WINDOWS
from bot.core.staging import Staging, merged_parts
from tests.core.blockengines import BlockEngine, Session
from tests.core.test_blocks import CHAIN, ORDER, Key, as_counter, assert_holds_exactly, changes, entries


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs of 3-entry chunks merged in parts of 4 entries or more: every merge makes many parts."""
    monkeypatch.setattr(blocks, "BLOCK_ENTRIES", 3)
    monkeypatch.setattr(staging, "STAGED_CHUNK", 3)
    monkeypatch.setattr(blockwriter, "WINDOW", 2)
    monkeypatch.setattr(staging, "PART_ENTRIES", 4)


def staged(batches: list[dict[Key, int]]) -> Staging:
    out = Staging()
    for batch in batches:
        out.add(TRANSITIONS, CHAIN, ORDER, entries(batch))
    return out


@settings(max_examples=80, deadline=None)
@given(changes, st.integers(1, 9))
def test_parts_sum_the_runs_in_key_order_splitting_no_context(
    batches: list[dict[Key, int]], size: int
) -> None:
    total: Counter[Key] = Counter()
    for batch in batches:
        total.update(batch)
    runs = staged(batches).runs(TRANSITIONS, CHAIN, FORWARD)
    parts = list(merged_parts(runs, ORDER, size))
    whole = np.concatenate(parts) if parts else np.empty((0, 5), dtype=np.int64)
    assert as_counter(whole) == +total
    assert (blocks.summed(whole) == whole).all()  # sorted, each key once: parts in order, disjoint
    contexts = [set(map(tuple, part[:, :ORDER].tolist())) for part in parts]
    assert all(not a & b for i, a in enumerate(contexts) for b in contexts[i + 1 :])


async def merge(session: Session, before: list[dict[Key, int]], after: list[dict[Key, int]]) -> None:
    """Merge `before` batch by batch (as live learning does), then `after` staged, in one pass."""
    for batch in before:
        async with session.transaction():
            await session.writer().merge(CHAIN, ORDER, entries(batch))
    async with session.transaction():
        runs = staged(after)
        for direction in (FORWARD, BACKWARD):
            await session.writer().merge_sorted(
                CHAIN, ORDER, direction, runs.runs(TRANSITIONS, CHAIN, direction)
            )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes, changes)
def test_staged_runs_merged_into_blocks_keep_exactly_the_sum_in_both_directions(
    block_engine: BlockEngine, before: list[dict[Key, int]], after: list[dict[Key, int]]
) -> None:
    expected: Counter[Key] = Counter()
    for batch in [*before, *after]:
        expected.update(batch)

    async def go() -> None:
        async with block_engine.session() as session:
            await merge(session, before, after)
            await assert_holds_exactly(session, +expected)

    asyncio.run(go())


def test_staging_counts_what_it_holds_and_forgets_it_when_cleared() -> None:
    runs = staged([{(1, 2, 3, 1): 2, (1, 2, 4, 1): 1}, {(1, 2, 3, 1): 1}])
    runs.add(WINDOWS, CHAIN, 0, blocks.window_entries([(-5, 1, 1), (2**62, 1, 2)]))
    assert runs.nbytes > 0
    assert runs.chains() == [(TRANSITIONS, CHAIN, ORDER), (WINDOWS, CHAIN, 0)]
    assert len(runs.runs(TRANSITIONS, CHAIN, BACKWARD)) == 2
    assert len(runs.runs(WINDOWS, CHAIN, BACKWARD)) == 0
    runs.clear()
    assert (runs.nbytes, runs.chains()) == (0, [])
