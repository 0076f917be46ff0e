"""A running bot's learning process (bot.core.applier): the log applied beside the bot, exactly as by the bot itself."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import random
import signal
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.core import applier, background
from bot.core.brain import Brain
from bot.core.models import Message, UnlearnStatus
from tests.core.dump import logical_dump
from tests.core.writer_corpus import KEY, MEMBERS, corpus, learn, open_brain

FAST = {"batch_size": 25, "flush_interval": 0.02}  # many small log entries, applied as they come


async def learn_then_change(brain: Brain, messages: list[Message]) -> None:
    """Learn messages, unlearn some, forget a member, learn more: each through the bot's own calls."""
    await learn(brain, messages[:300])
    for message in messages[200:220]:
        assert await brain.unlearn(message) is UnlearnStatus.UNLEARNED
    await brain.forget("t", "g", MEMBERS[1])
    await learn(brain, messages[300:])


def nice(pid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, pid)


async def learned_here(tmp_path: Path, work: Callable[[Brain], Awaitable[None]], **options: Any) -> Path:
    """A database that work learned into, all in this process (what the learning process must equal)."""
    path = tmp_path / "here.sqlite3"
    brain = await open_brain(path, tmp_path, **options)
    try:
        await work(brain)
    finally:
        await brain.close()
    return path


async def test_a_running_bot_applies_its_log_in_a_process_below_it_and_learns_the_same(
    tmp_path: Path,
) -> None:
    messages = corpus(500)
    path = tmp_path / "bot.sqlite3"
    brain = await open_brain(path, tmp_path, in_background=True, walker="process", **FAST)
    try:
        pid = brain.store.learning_pid
        assert pid is not None and pid != os.getpid()
        assert nice(pid) == min(19, nice(0) + background.NICE)
        await learn_then_change(brain, messages)
        assert brain.store.learning_pid == pid  # one process the whole time
    finally:
        await brain.close()
    assert brain.store.learning_pid is None
    with pytest.raises(ProcessLookupError):  # ended, and reaped, with the store
        os.kill(pid, 0)
    reference = await learned_here(tmp_path, lambda brain: learn_then_change(brain, messages), **FAST)
    assert logical_dump(path, KEY) == logical_dump(reference, KEY)


def writing_elsewhere(path: Path, deadline: float) -> None:
    """Return once another connection holds the database's write lock (the learning process applying)."""
    conn = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        while time.monotonic() < deadline:
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("ROLLBACK")
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc):
                    return
                raise
        raise AssertionError("the learning process never began a transaction")
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("fault", "logged"),
    [
        (signal.SIGKILL, "the learning process ended before it answered; starting another"),
        # alive, holding the database's write lock, answering nothing
        (signal.SIGSTOP, "the learning process did not answer in 2 s; starting another"),
    ],
    ids=["killed", "stopped"],
)
async def test_a_learning_process_killed_or_stopped_mid_apply_is_replaced_and_nothing_is_lost_or_counted_twice(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    fault: signal.Signals,
    logged: str,
) -> None:
    messages = corpus(4000)
    path = tmp_path / "bot.sqlite3"
    brain = await open_brain(path, tmp_path, in_background=True, walker="process", **FAST)
    monkeypatch.setattr(applier, "ANSWER_SECONDS", 2.0)
    try:
        await learn(brain, [m for m in messages[:50]])  # every member made: from now only learning writes
        first = brain.store.learning_pid
        assert first is not None

        async def feed() -> None:
            for message in messages[50:]:
                await brain.learn(message, require_consent=False)
                await asyncio.sleep(0)  # live traffic: the applier runs between messages

        feeding = asyncio.create_task(feed())
        await asyncio.to_thread(writing_elsewhere, path, time.monotonic() + 60)
        os.kill(first, fault)
        with caplog.at_level(logging.WARNING, logger="bot.core.applier"):
            await feeding
            await brain.store.flush()
        assert brain.store.learning_pid not in (None, first)
        assert logged in caplog.text
        assert brain.store.pending == 0
    finally:
        await brain.close()
    clean = await learned_here(tmp_path, lambda brain: learn(brain, messages), **FAST)
    assert logical_dump(path, KEY) == logical_dump(clean, KEY)


async def test_a_learning_process_waiting_out_another_writers_lock_says_so_and_is_left_to_finish(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    messages = corpus(200)
    path = tmp_path / "bot.sqlite3"
    monkeypatch.setattr(applier, "ANSWER_SECONDS", 1.0)  # before it starts: it beats every 1/6 s
    brain = await open_brain(path, tmp_path, in_background=True, walker="process", **FAST)
    try:
        await learn(brain, messages[:50])
        first = brain.store.learning_pid
        other = sqlite3.connect(path, isolation_level=None)  # say, a backup: holds the lock 3 s
        other.execute("BEGIN IMMEDIATE")
        try:
            for message in messages[50:]:
                await brain.learn(message, require_consent=False)
            flushing = asyncio.create_task(brain.store.flush())
            with caplog.at_level(logging.WARNING, logger="bot.core.applier"):
                await asyncio.sleep(3.0)  # three times ANSWER_SECONDS without a reply
                assert not flushing.done(), "the apply waited for the lock"
        finally:
            other.execute("ROLLBACK")
            other.close()
        await flushing
        assert brain.store.learning_pid == first
        assert "did not answer" not in caplog.text
        assert brain.store.pending == 0
    finally:
        await brain.close()
    clean = await learned_here(tmp_path, lambda brain: learn(brain, messages), **FAST)
    assert logical_dump(path, KEY) == logical_dump(clean, KEY)


def wide(n: int) -> list[Message]:
    """n messages of words seldom repeated: a chain with many more block entries than a slice holds."""
    rng = random.Random(5)
    return [
        Message(
            "t", "g", "c", MEMBERS[i % 4], f"w{i}", " ".join(f"w{rng.randrange(10**6)}" for _ in range(8))
        )
        for i in range(n)
    ]


def delta_rows(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return sum(int(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in DELTAS)


DELTAS = ("transitions", "transitions_back", "windows")


async def test_a_running_bot_merges_what_it_learned_while_idle_in_its_learning_process(
    tmp_path: Path,
) -> None:
    messages = wide(3005)
    path = tmp_path / "bot.sqlite3"
    brain = await open_brain(
        path,
        tmp_path,
        in_background=True,
        walker="process",
        merge_rows=1,
        batch_size=100,
        flush_interval=0.02,
    )
    try:
        await learn(brain, messages[:3000])
        await learn(brain, messages[3000:])  # a small last commit merges a few entries: most of its rows wait
        assert delta_rows(path) > 0  # read before the flusher runs again (no await since the commit)
        await asyncio.wait_for(brain.store.merged_while_idle(), 60)
        assert delta_rows(path) == 0
    finally:
        await brain.close()
    clean = await learned_here(tmp_path, lambda brain: learn(brain, messages), batch_size=100)
    assert logical_dump(path, KEY) == logical_dump(clean, KEY)


async def test_a_store_that_learns_in_a_process_of_its_own_keeps_the_system_clock(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="system clock"):
        await Brain.open(tmp_path / "x.sqlite3", in_background=True, walker="process", clock=lambda: 0.0)


async def test_a_store_that_may_not_start_processes_learns_in_its_own(tmp_path: Path) -> None:
    brain = await open_brain(tmp_path / "x.sqlite3", tmp_path, in_background=True, walker="thread")
    try:
        await learn(brain, corpus(50))
        assert brain.store.learning_pid is None and brain.store.committed == 50
    finally:
        await brain.close()


def test_an_answer_that_does_not_pickle_comes_back_as_an_error_saying_so() -> None:
    ours, theirs = multiprocessing.Pipe()
    try:
        unpicklable = ValueError(lambda: None)  # as an error holding a connection or a lock would be
        assert applier._send(theirs, applier.Reply(False, unpicklable, [3], True, False))
        reply = ours.recv()
        assert not reply.ok and isinstance(reply.value, RuntimeError)
        assert "could not send its answer" in str(reply.value)
        assert (reply.wrote, reply.hubs_changed) == ([3], True)  # the bot's versions still follow
        ours.close()
        assert not applier._send(theirs, applier.Reply(True, None, [], False, False))  # the bot is gone
    finally:
        ours.close()
        theirs.close()
