"""The store's reads of learned messages (bot.core.learned), on SQLite and on PostgreSQL."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from bot.core.brain import Brain
from bot.core.models import ChainKey, Message, UnlearnStatus
from bot.core.sealed import Sealer
from bot.core.store import Store
from bot.core.tokens import tokenize

P, G, C = "test", "guild", "c1"


@pytest.fixture
def brain(engine_brain: Brain) -> Brain:
    """This module's Brain: on each engine in turn."""
    return engine_brain


async def learn(brain: Brain, author: str, mid: str, text: str) -> None:
    await brain.opt_in(P, G, author)
    await brain.set_channel(P, G, C, True)
    await brain.learn(Message(P, G, C, author, mid, text))
    await brain.flush()


async def test_a_learned_message_reads_back_with_its_chain_author_and_counters(brain: Brain) -> None:
    learned = brain.store.learned
    assert await learned.message(P, "1") is None
    assert not await learned.is_learned(P, "1")
    await learn(brain, "alice", "1", "the cat sat")
    await learn(brain, "bob", "2", "a dog ran far")
    chain = await brain.store.find_chain(ChainKey(P, G, C))
    alice = await brain.store.find_author(P, G, "alice")
    assert chain is not None and alice is not None
    found = await learned.message(P, "1")
    assert found is not None and found[:2] == (chain, alice)
    assert await learned.is_learned(P, "1") and await learned.is_learned(P, "2")
    assert not await learned.is_learned(P, "3")
    assert await learned.chain_counters(chain.id) == (2, 7, 24, 24)
    assert await learned.chain_counters(chain.id + 1000) == (0, 0, 0, 0)
    assert await learned.member_totals(P, G, alice) == (1, 3, 1)


async def test_a_recent_row_opens_with_the_stores_key_and_with_no_other(brain: Brain) -> None:
    await learn(brain, "alice", "1", "the cat sat")
    found = await brain.store.learned.recent(P, "1")
    assert found is not None
    _, _, ids, chars, size = found
    assert ids is not None and await brain.store.texts(ids) == tokenize("the cat sat")
    assert (chars, size) == (11, 11)
    other = copy.copy(brain.store.learned)
    other.sealer = Sealer(b"another key 0123")
    sealed = await other.recent(P, "1")
    assert sealed is not None and sealed[2] is None  # the row is there; another key does not open it
    assert await brain.store.learned.recent(P, "2") is None


async def test_meta_values_round_trip(brain: Brain) -> None:
    learned = brain.store.learned
    assert await learned.get_meta("test_value") is None
    await learned.set_meta("test_value", "one")
    await learned.set_meta("test_value", "two")
    assert await learned.get_meta("test_value") == "two"


async def test_a_store_not_open_has_no_learned_part(tmp_path: Path) -> None:
    store = Store(tmp_path / "markov.sqlite3")
    with pytest.raises(RuntimeError, match="store is not open"):
        await store.is_learned(P, "1")


@pytest.mark.parametrize("read", ["message", "recent"])
async def test_a_chain_reset_while_its_message_is_read_reads_as_not_learned_or_whole(
    brain: Brain, read: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A message deleted on the platform (unlearned by id) as a moderator resets its channel: the
    # reset commits between the reads of the message and of its chain.
    await learn(brain, "alice", "1", "the cat sat")
    before = await brain.store.find_chain(ChainKey(P, G, C))
    learned = brain.store.learned
    reader = learned._reader
    fetchone = reader.fetchone
    reset: list[int] = []

    async def reset_after_the_first_read(sql: str, args: object = ()) -> object:
        row = await fetchone(sql, args)  # type: ignore[arg-type]
        if not reset:
            reset.append(await brain.reset(ChainKey(P, G, C)))
        return row

    monkeypatch.setattr(reader, "fetchone", reset_after_the_first_read)
    found = await (learned.message(P, "1") if read == "message" else learned.recent(P, "1"))
    assert reset == [1]
    assert found is None or found[0] == before  # as it was when read, or gone: never half of each
    monkeypatch.undo()
    assert await learned.message(P, "1") is None and await learned.recent(P, "1") is None
    assert await brain.unlearn_id(P, "1") is UnlearnStatus.NOT_LEARNED
