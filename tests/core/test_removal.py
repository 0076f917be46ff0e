"""Forget and reset through the writer's removal part (bot.core.removal), on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest

from bot.core.brain import Brain
from bot.core.models import ChainKey, ForgetResult, Message
from tests.core.enginebrains import Where, rows_of

P, G = "test", "guild"


@pytest.fixture
def brain(engine_brain: Brain) -> Brain:
    """This module's Brain: on each engine in turn."""
    return engine_brain


async def learn(brain: Brain, author: str, mid: str, text: str, channel: str = "c1") -> None:
    await brain.opt_in(P, G, author)
    await brain.set_channel(P, G, channel, True)
    await brain.learn(Message(P, G, channel, author, mid, text))
    await brain.flush()


async def removals(where: Where, chain_id: int) -> int:
    """The chain's removals column: what keys the walker's caches of it."""
    return int((await rows_of(where, f"SELECT removals FROM chains WHERE id = {chain_id}"))[0][0])


async def test_forget_removes_the_member_and_marks_the_chain(brain: Brain, where: Where) -> None:
    await learn(brain, "alice", "1", "the cat sat")
    await learn(brain, "bob", "2", "the dog ran far")
    chain = await brain.store.find_chain(ChainKey(P, G, "c1"))
    assert chain is not None
    before = await removals(where, chain.id)
    removal = brain.store._writes.removal
    assert await removal.forget(P, G, "alice") == ForgetResult(messages=1, tokens=3, chains=1)
    assert not await brain.is_learned(P, "1") and await brain.is_learned(P, "2")
    assert not await brain.is_opted_in(P, G, "alice") and await brain.is_opted_in(P, G, "bob")
    assert await brain.store.find_author(P, G, "alice") is None
    assert await brain.store.chain_counters(chain.id) == (1, 4, 15, 15)  # bob's alone
    assert await removals(where, chain.id) > before
    assert await removal.forget(P, G, "alice") == ForgetResult(0, 0, 0)  # nothing left to remove


async def test_reset_deletes_one_chain_and_says_how_many_messages_it_held(brain: Brain) -> None:
    await learn(brain, "alice", "1", "alpha beta", channel="a")
    await learn(brain, "alice", "2", "gamma delta", channel="a")
    await learn(brain, "alice", "3", "epsilon zeta", channel="b")
    removal = brain.store._writes.removal
    assert await removal.reset(ChainKey(P, G, "a")) == 2
    assert await brain.store.find_chain(ChainKey(P, G, "a")) is None
    assert not await brain.is_learned(P, "1") and await brain.is_learned(P, "3")
    assert await brain.store.token_id("alpha") is None and await brain.store.token_id("zeta") is not None
    assert await removal.reset(ChainKey(P, G, "a")) == 0
