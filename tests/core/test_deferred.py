"""A change kept for later reads back as the call it was."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core import deferred
from bot.core.deferred import Deferred, Kind
from bot.core.models import Message

texts = st.text(max_size=20)  # any Unicode, lone surrogates included (a platform may send them)
messages = st.builds(Message, texts, texts, texts, texts, texts, texts)
changes = st.builds(
    Deferred, st.sampled_from(Kind), messages, st.none() | messages, st.booleans(), st.booleans()
)


@given(changes)
@settings(max_examples=300)
def test_a_change_reads_back_exactly_as_it_was(change: Deferred) -> None:
    assert deferred.decode(deferred.encode(change)) == change


def test_a_delete_by_id_holds_nothing_but_its_platform_and_id() -> None:
    assert deferred.by_id("discord", "123") == Message("discord", "", "", "", "123", "")


def test_a_change_holds_the_members_whose_message_it_carries_in_that_guild_only() -> None:
    alice = Message("t", "g", "c", "alice", "1", "hello there")
    edit = Deferred(Kind.EDIT, Message("t", "g", "c", "bob", "1", "hi"), before=alice)
    assert edit.holds("t", "g", "alice") and edit.holds("t", "g", "bob")
    assert not edit.holds("t", "other guild", "alice") and not edit.holds("m", "g", "alice")
    assert not edit.holds("t", "g", "carol")
    assert not Deferred(Kind.DELETE, deferred.by_id("t", "1")).holds("t", "g", "alice")
