"""Forget and reset through the writer's removal part (bot.core.removal), on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

from bot.core import blockwriter, removal
from bot.core.brain import Brain
from bot.core.models import ChainKey, ForgetResult, LearnStatus, Message
from tests.core.dump import logical_dump
from tests.core.enginebrains import Where, rows_of

P, G = "test", "guild"
KEY = b"0123456789abcdef"  # the fingerprint key, for two databases that must dump alike


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


async def test_a_forget_reads_only_the_chains_the_member_has_messages_in(
    brain: Brain, where: Where, monkeypatch: pytest.MonkeyPatch
) -> None:
    await learn(brain, "alice", "1", "the cat sat", channel="c1")
    await learn(brain, "bob", "2", "the cat sat on the mat", channel="c1")
    await learn(brain, "bob", "3", "the dog ran far", channel="c2")
    c1, c2 = [await brain.store.find_chain(ChainKey(P, G, c)) for c in ("c1", "c2")]
    assert c1 is not None and c2 is not None
    before = {c.id: await removals(where, c.id) for c in (c1, c2)}
    removal = brain.store._writes.removal
    scanned: list[int] = []
    forget_author = removal.counts.forget_author

    async def recording(chain_id: int, *args: object) -> object:
        scanned.append(chain_id)
        return await forget_author(chain_id, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(removal.counts, "forget_author", recording)
    assert await removal.forget(P, G, "alice") == ForgetResult(messages=1, tokens=3, chains=1)
    assert scanned == [c1.id]
    assert await removals(where, c1.id) > before[c1.id]
    assert await removals(where, c2.id) == before[c2.id]  # the walker's caches of c2 stay valid
    assert await brain.store.chain_counters(c2.id) == (1, 4, 15, 15)


async def test_forget_opts_out_a_member_of_whom_nothing_was_learned_yet(brain: Brain) -> None:
    await brain.opt_in(P, G, "alice")
    assert await brain.forget(P, G, "alice") == ForgetResult(0, 0, 0)
    assert not await brain.is_opted_in(P, G, "alice")


async def test_a_message_that_passed_the_consent_check_before_a_forget_is_not_learned_after_it(
    brain: Brain, where: Where, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The member's consent was read (opted in), then the forget ran to its end before the message
    reached the queue: no author is made for it again, and nothing of the member is learned."""
    await learn(brain, "bob", "1", "the dog ran far")
    await brain.opt_in(P, G, "alice")
    read, resume = asyncio.Event(), asyncio.Event()
    checked = Brain.is_opted_in

    async def slow_read(self: Brain, platform: str, guild: str, member: str) -> bool:
        opted_in = await checked(self, platform, guild, member)
        if member == "alice" and not read.is_set():
            read.set()
            await resume.wait()  # the answer is on its way back while the forget runs
        return opted_in

    monkeypatch.setattr(Brain, "is_opted_in", slow_read)
    learning = asyncio.create_task(brain.learn(Message(P, G, "c1", "alice", "2", "the cat sat")))
    await read.wait()
    assert await brain.forget(P, G, "alice") == ForgetResult(0, 0, 0)
    resume.set()
    assert (await learning).status is LearnStatus.NOT_OPTED_IN
    await brain.flush()
    assert not await brain.is_learned(P, "2")
    assert await brain.store.find_author(P, G, "alice") is None
    assert await rows_of(where, "SELECT external_id FROM authors") == [("bob",)]


@pytest.mark.parametrize("learning_log", [True, False], ids=["log", "direct"])
async def test_a_forget_drops_the_members_messages_still_queued_and_keeps_the_others(
    learning_log: bool, tmp_path: Path
) -> None:
    """A forget does not wait for the queue: what the member has on its way is never learned, and
    the database ends as one that learned only the others."""
    forgot_db, clean_db = tmp_path / "forgot.sqlite3", tmp_path / "clean.sqlite3"
    for path, with_alice in ((forgot_db, True), (clean_db, False)):
        brain = await Brain.open(path, flush_interval=3600, learning_log=learning_log, key=KEY)
        try:
            await brain.opt_in(P, G, "alice")
            await brain.opt_in(P, G, "bob")
            await brain.set_channel(P, G, "c1", True)
            await brain.learn(Message(P, G, "c1", "bob", "1", "the dog ran far"))
            if with_alice:
                await brain.learn(Message(P, G, "c1", "alice", "2", "the cat sat"))
                await brain.flush()
                await brain.learn(Message(P, G, "c1", "alice", "3", "the cat ran"))  # queued
            await brain.learn(Message(P, G, "c1", "bob", "4", "a dog sat far"))  # queued
            assert brain.store.pending >= 1
            if with_alice:
                assert await brain.forget(P, G, "alice") == ForgetResult(messages=1, tokens=3, chains=1)
            else:
                await brain.store.guild_state.set_consent(P, G, "alice", False)
            await brain.flush()
            assert await brain.is_learned(P, "4") and not await brain.is_learned(P, "3")
        finally:
            await brain.close()
    assert logical_dump(forgot_db, KEY) == logical_dump(clean_db, KEY)


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


async def test_a_forget_cut_in_processes_leaves_the_blocks_a_thread_leaves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bot's forget cuts blocks in spawned processes (a walker process means it may start them):
    the same bytes as cutting them here, and the processes did the cutting."""
    rng = random.Random(7)
    words = [f"w{i}" for i in range(60)]
    texts = [" ".join(rng.choices(words, k=rng.randint(3, 12))) for _ in range(400)]
    submitted: list[object] = []
    submit = removal.ProcessPoolExecutor.submit

    def counted(pool: ProcessPoolExecutor, fn: Callable[..., object], /, *args: object) -> Future[object]:
        submitted.append(fn)
        return submit(pool, fn, *args)

    monkeypatch.setattr(removal.ProcessPoolExecutor, "submit", counted)
    dumps = []
    for workers in (0, 2):
        path = tmp_path / f"{workers}.db"
        brain = await Brain.open(path, flush_interval=0.05, key=b"k" * 32)
        try:
            await brain.set_channel(P, G, "c1", True)
            for i, text in enumerate(texts):
                author = ("alice", "bob", "carol")[i % 3]
                await brain.learn(Message(P, G, "c1", author, str(i), text), require_consent=False)
            await brain.flush()
            brain.store._writes.removal.cut_workers = workers
            assert (await brain.forget(P, G, "bob")).messages == len(texts) // 3
        finally:
            await brain.close()
        dumps.append(
            [
                await rows_of(
                    path, f"SELECT chain_id, direction, first, entries, data FROM {table} ORDER BY id"
                )
                for table in ("transition_blocks", "window_blocks")
            ]
        )
    assert len(dumps[0][0]) > 2  # several blocks, so several windows' worth of cutting
    assert dumps[0] == dumps[1]
    assert blockwriter._without_author in submitted  # the cutting went to the processes
    assert all(fn in (blockwriter._without_author, blockwriter.ready) for fn in submitted)


async def test_a_cutting_process_killed_mid_forget_fails_it_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL to a forget's cutting process: the forget fails (no hang), the database is as before."""
    submit = removal.ProcessPoolExecutor.submit

    def killing(pool: ProcessPoolExecutor, fn: Callable[..., object], /, *args: object) -> Future[object]:
        future = submit(pool, fn, *args)
        for process in list((pool._processes or {}).values()):  # started by the submit above
            with contextlib.suppress(ProcessLookupError):  # killed at an earlier submit, and reaped
                os.kill(process.pid, signal.SIGKILL)
        return future

    monkeypatch.setattr(removal.ProcessPoolExecutor, "submit", killing)
    path = tmp_path / "k.db"
    brain = await Brain.open(path, flush_interval=0.05, key=b"k" * 32)
    try:
        await brain.set_channel(P, G, "c1", True)
        for i in range(60):
            author = ("alice", "bob")[i % 2]
            await brain.learn(
                Message(P, G, "c1", author, str(i), f"w{i % 7} w{i % 5} w{i % 3}"), require_consent=False
            )
        await brain.flush()
        blocks = "SELECT chain_id, direction, first, data FROM transition_blocks ORDER BY id"
        before = await rows_of(path, blocks)
        assert before
        brain.store._writes.removal.cut_workers = 2
        with pytest.raises(BrokenProcessPool):
            await brain.forget(P, G, "bob")
        assert await rows_of(path, blocks) == before
        assert await brain.is_learned(P, "1") and await brain.store.find_author(P, G, "bob") is not None
        brain.store._writes.removal.cut_workers = 0  # and a forget after it works
        assert (await brain.forget(P, G, "bob")).messages == 30
    finally:
        await brain.close()
