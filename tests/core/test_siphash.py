"""SipHash of one word, in Python and with numpy: the published vectors, and the two forms agreeing."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from bot.core import siphash

# The reference implementation's vectors (SipHash-2-4, key 00 01 .. 0f): the 8-byte message 00 01 .. 07.
KEY = (0x0706050403020100, 0x0F0E0D0C0B0A0908)
MESSAGE = 0x0706050403020100
SIPHASH_2_4 = 0x93F5F5799A932462


def test_both_forms_give_the_published_siphash_2_4() -> None:
    assert siphash.one(KEY, MESSAGE, (2, 4)) == SIPHASH_2_4
    assert (
        siphash.many(KEY, np.array([MESSAGE, MESSAGE], dtype=np.uint64), (2, 4)).tolist() == [SIPHASH_2_4] * 2
    )


@given(
    st.tuples(st.integers(0, siphash.MASK), st.integers(0, siphash.MASK)),
    st.lists(st.integers(0, siphash.MASK)),
)
def test_numpy_gives_what_python_gives_word_by_word(key: tuple[int, int], words: list[int]) -> None:
    got = siphash.many(key, np.array(words, dtype=np.uint64)).tolist()
    assert got == [siphash.one(key, word) for word in words]
