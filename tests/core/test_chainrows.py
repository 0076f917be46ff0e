"""A context's counts (bot.core.chainrows): blocks' entries and delta rows added up by token."""

from __future__ import annotations

from collections import Counter

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from bot.core import chainrows

ORDER = 2


@given(
    st.lists(
        st.tuples(st.integers(2, 40), st.integers(1, 9), st.integers(1, 5)),
        max_size=3 * chainrows.FEW_ENTRIES,
    ),
    st.lists(st.tuples(st.integers(2, 50), st.integers(1, 5)), max_size=20),
)
def test_counts_are_the_sums_by_token_whether_counted_in_python_or_numpy(
    entries: list[tuple[int, int, int]], delta: list[tuple[int, int]]
) -> None:
    """One context's entries (next, author, count), sorted as blocks hold them, and delta (next,
    count) pairs in any order: each token once, ascending, with its whole count, on both sides of
    FEW_ENTRIES (where counting moves from Python to numpy)."""
    rows = sorted({(n, a): k for n, a, k in entries}.items())
    found = np.array([[7, 8, n, a, k] for (n, a), k in rows], dtype=np.int64).reshape(-1, ORDER + 3)
    expected: Counter[int] = Counter()
    for (n, _), k in rows:
        expected[n] += k
    for n, k in delta:
        expected[n] += k
    ids, counts = chainrows._counts(found, ORDER, delta)
    assert ids == sorted(expected)
    assert counts == [expected[i] for i in ids]
