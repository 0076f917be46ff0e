"""A batch's message keys are each id's key, whichever the platform."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bot.core.messagekeys import OWN_KEYS, message_key, message_keys

ids = st.lists(st.text() | st.integers(0, 2**64).map(str) | st.just("0123"), max_size=10)


@given(st.sampled_from([OWN_KEYS, "matrix", "local", "é\x1f"]), ids)
def test_a_batch_s_keys_are_each_id_s_key(platform: str, message_ids: list[str]) -> None:
    keys = message_keys(platform, message_ids)
    assert keys.tolist() == [message_key(platform, message_id) for message_id in message_ids]
    assert keys.dtype == "int64"
