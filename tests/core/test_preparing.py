"""A batch prepared at once (an import's worker) holds what preparing its messages one by one gives."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core import fingerprints, preparing
from bot.core.columns import Columns
from bot.core.fingerprints import Fingerprinter
from bot.core.messagekeys import message_key
from bot.core.models import ChainInfo
from bot.core.tokens import tokenize
from tests.core.test_columns import assert_same

FP = Fingerprinter(bytes(range(32)))
SCHEMES = pytest.mark.parametrize(
    "scheme", [fingerprints.EXACT, fingerprints.NORMALISED, fingerprints.PER_TOKEN]
)
texts = st.lists(
    st.lists(
        st.sampled_from(["hello", "Hello", "world", "!", "```x```", "  ", "é", "🙂", "<@1>"]), max_size=8
    ).map(" ".join),
    max_size=15,
)


def one_by_one(batch: list[str], run_length: int, scheme: int) -> tuple[Columns, list[int]]:
    """Each text through fingerprinted() and pending(), as Brain.learn makes it (chains and authors 0)."""
    info = ChainInfo(0, 0, run_length, scheme)
    made, kept = [], []
    for i, text in enumerate(batch):
        tokens = tuple(tokenize(text))
        if tokens:
            prepared = preparing.fingerprinted(FP, tokens, run_length, scheme)
            size = len(text.encode("utf-8", "surrogatepass"))
            made.append(preparing.pending("t", f"m{i}", info, 0, prepared, len(text), size, keep=False))
            kept.append(i)
    return Columns.of(made), kept


@SCHEMES
@settings(max_examples=60, deadline=None)
@given(batch=texts, run_length=st.integers(2, 4))
def test_a_batch_prepared_at_once_equals_its_messages_prepared_one_by_one(
    batch: list[str], run_length: int, scheme: int
) -> None:
    ids = [f"m{i}" for i in range(len(batch))]
    columns, kept = preparing.prepare_all(FP, batch, run_length, scheme, "t", ids)
    expected, expected_kept = one_by_one(batch, run_length, scheme)
    assert kept.tolist() == expected_kept
    assert columns.keys.tolist() == [message_key("t", ids[i]) for i in expected_kept]
    assert_same(columns, expected)


@SCHEMES
@settings(max_examples=30, deadline=None)
@given(batch=texts)
def test_a_batch_fingerprinted_again_equals_one_prepared_with_its_chain_s_scheme(
    batch: list[str], scheme: int
) -> None:
    ids = [f"m{i}" for i in range(len(batch))]
    made, _ = preparing.prepare_all(FP, batch, 3, fingerprints.PER_TOKEN, "t", ids)
    expected, _ = preparing.prepare_all(FP, batch, 2, scheme, "t", ids)
    assert_same(preparing.refit(FP, made, 2, scheme), expected)
