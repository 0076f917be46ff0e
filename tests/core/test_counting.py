"""Counting a batch with numpy gives exactly the rows that counting message by message gives."""

from __future__ import annotations

from collections import Counter
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core import blocks, counting
from bot.core import chain as chainmod
from bot.core.columns import Columns
from bot.core.models import PendingMessage
from tests.core.test_columns import pending as made

WORDS = [f"w{i}" for i in range(12)]
# Ids as the vocabulary gives them, and some past 2**31 (a context's ids are packed as uint32).
IDS = {w: (2 + i if i < 8 else 2**32 - 1 - i) for i, w in enumerate(WORDS)}

messages = st.lists(
    st.tuples(
        st.sampled_from([(1, 1), (2, 2), (3, 3), (4, 2)]),  # (chain id, order)
        st.sampled_from([1, 2, 2**40]),  # author id
        st.lists(st.sampled_from(WORDS), min_size=1, max_size=9),
        st.lists(st.integers(-(2**63), 2**63 - 1) | st.integers(0, 3), max_size=5),  # window fingerprints
    ),
    max_size=40,
)


def pending(batch: list[tuple[tuple[int, int], int, list[str], list[int]]]) -> list[PendingMessage]:
    """The messages of a drawn batch (no form, kept), as test_columns makes them."""
    return made([(chain, author, tokens, windows, None, True) for chain, author, tokens, windows in batch])


# Rows are made a slice at a time (ROWS_AT_ONCE): slices of 3 cut every batch here, the shipped size none.
AT_ONCE = pytest.mark.parametrize("at_once", [3, counting.ROWS_AT_ONCE])


@AT_ONCE
@settings(max_examples=200, deadline=None)
@given(batch=messages)
def test_transitions_are_the_sorted_sum_of_each_messages_transitions(batch: list, at_once: int) -> None:  # type: ignore[type-arg]
    items = pending(batch)
    expected: Counter[tuple[int, bytes, int, int]] = Counter()
    refs: Counter[int] = Counter()
    for item in items:
        ids = [IDS[t] for t in item.tokens]
        refs.update(ids)
        for ctx, nxt in chainmod.transitions(ids, item.chain.order):
            expected[(item.chain.id, ctx, nxt, item.author_id)] += 1
    with mock.patch.object(counting, "ROWS_AT_ONCE", at_once):
        columns = Columns.of(items)
        counted, counted_refs = counting.count(
            columns, np.array([IDS[w] for w in columns.vocab], dtype=np.int64)
        )
        rows = [row for c in counted for row in c.rows()]
        back = [row for c in counted for row in c.back_rows()]
    assert rows == [(*key, k) for key, k in sorted(expected.items())]
    assert counted_refs == dict(refs)
    rotated = [(chain_id, nxt, ctx[4:] + ctx[:4], author, k) for chain_id, ctx, nxt, author, k in rows]
    assert back == sorted(rotated)


@AT_ONCE
@settings(max_examples=200, deadline=None)
@given(batch=messages)
def test_windows_are_the_sorted_sum_of_each_messages_windows(batch: list, at_once: int) -> None:  # type: ignore[type-arg]
    items = pending(batch)
    expected = Counter((item.chain.id, fp, item.author_id) for item in items for fp in item.windows)
    with mock.patch.object(counting, "ROWS_AT_ONCE", at_once):
        rows = list(counting.window_rows(counting.windows(Columns.of(items))))
    assert rows == [[*key, k] for key, k in sorted(expected.items())]


@settings(max_examples=100, deadline=None)
@given(messages)
def test_window_entries_are_each_chains_windows_as_blocks_hold_them(batch: list) -> None:  # type: ignore[type-arg]
    table = counting.windows(Columns.of(pending(batch)))
    by_chain: dict[int, list[tuple[int, int, int]]] = {}
    for chain_id, fp, author_id, k in counting.window_rows(table):
        by_chain.setdefault(chain_id, []).append((fp, author_id, k))
    found = counting.window_entries_by_chain(table)
    assert sorted(found) == sorted(by_chain)
    for chain_id, rows in by_chain.items():
        assert found[chain_id].tolist() == blocks.window_entries(rows).tolist()
