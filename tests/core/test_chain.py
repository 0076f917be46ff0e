"""Chain mechanics: the weighted choice over a state's successors."""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from bot.core.chain import choose, cumulative


def test_rows_at_zero_are_never_chosen_and_none_left_means_no_choice() -> None:
    ids, cum = cumulative([(5, 2), (6, 0), (7, 3)])
    assert (list(ids), list(cum)) == ([5, 7], [2, 5])
    assert [list(part) for part in cumulative([(5, 0)])] == [[], []]
    assert [list(part) for part in cumulative([])] == [[], []]


@given(
    st.lists(
        st.tuples(st.integers(2, 2**31), st.integers(1, 1000)),
        min_size=1,
        max_size=50,
        unique_by=lambda r: r[0],
    )
)
def test_choose_draws_exactly_as_random_choices_does(rows: list[tuple[int, int]]) -> None:
    choices = cumulative(rows)
    ids, weights = [i for i, _ in rows], [c for _, c in rows]
    ours, theirs = random.Random(3), random.Random(3)
    assert [choose(choices, ours) for _ in range(50)] == theirs.choices(ids, weights, k=50)


def test_choose_follows_the_counts() -> None:
    rng = random.Random(1)
    drawn = Counter(choose(cumulative([(10, 1), (11, 3)]), rng) for _ in range(8000))
    assert set(drawn) == {10, 11} and 2.7 < drawn[11] / drawn[10] < 3.3
