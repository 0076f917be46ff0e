"""A batch as columns holds exactly its messages: picked, joined and read back as they were."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.columns import Columns
from bot.core.models import ChainInfo, PendingMessage

WORDS = ["a", "b", "c", "é", "🙂", "dd"]

messages = st.lists(
    st.tuples(
        st.sampled_from([(1, 2), (2, 3)]),  # (chain id, order)
        st.integers(1, 3),  # author id
        st.lists(st.sampled_from(WORDS), min_size=1, max_size=6),
        st.lists(st.integers(-(2**63), 2**63 - 1), max_size=4),  # window fingerprints
        st.none() | st.integers(-(2**63), 2**63 - 1),  # normalised fingerprint
        st.booleans(),  # kept for the edit window
    ),
    max_size=12,
)


def pending(batch: list) -> list[PendingMessage]:  # type: ignore[type-arg]
    return [
        PendingMessage(
            platform="p",
            message_id=str(i),
            chain=ChainInfo(chain_id, order, 8, 3),
            author_id=author,
            tokens=tuple(tokens),
            fingerprint=i * 7 - 3,
            normal=normal,
            windows=tuple(windows),
            chars=len(tokens) * 2,
            bytes=len(tokens) * 3,
            keep=keep,
        )
        for i, ((chain_id, order), author, tokens, windows, normal, keep) in enumerate(batch)
    ]


def assert_same(found: Columns, expected: Columns) -> None:
    for field in fields(Columns):
        a, b = getattr(found, field.name), getattr(expected, field.name)
        if field.name == "vocab":
            assert a == b
        else:
            assert np.array_equal(a, b), field.name
            assert a.dtype == b.dtype, field.name


@settings(max_examples=200, deadline=None)
@given(batch=messages, picks=st.lists(st.booleans(), min_size=12, max_size=12))
def test_picked_messages_are_the_columns_of_those_messages_alone(batch: list, picks: list[bool]) -> None:  # type: ignore[type-arg]
    items = pending(batch)
    mask = np.array(picks[: len(items)], dtype=np.bool_)
    picked = Columns.of(items).select(mask)
    assert_same(picked, Columns.of([item for item, keep in zip(items, mask, strict=True) if keep]))


@settings(max_examples=200, deadline=None)
@given(batch=messages, cut=st.integers(0, 12))
def test_a_range_picked_and_batches_joined_are_the_columns_of_their_messages(batch: list, cut: int) -> None:  # type: ignore[type-arg]
    items = pending(batch)
    whole = Columns.of(items)
    head, tail = whole.select(slice(0, cut)), whole.select(slice(cut, None))
    assert_same(head, Columns.of(items[:cut]))
    assert_same(Columns.concat([head, tail]), whole)
    assert_same(Columns.concat([Columns.of(items[:cut]), Columns.of(items[cut:])]), whole)


@settings(max_examples=100, deadline=None)
@given(batch=messages)
def test_each_message_s_tokens_read_back_as_they_were(batch: list) -> None:  # type: ignore[type-arg]
    items = pending(batch)
    columns = Columns.of(items)
    assert columns.token_tuples() == [item.tokens for item in items]
    assert len(columns) == len(items)
    assert columns.vocab == list(dict.fromkeys(t for item in items for t in item.tokens))
