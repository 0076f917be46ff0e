"""A running bot's CPUs (bot.core.background.Apart): its walker process on one of its own, the bot's threads on the others."""

from __future__ import annotations

import os
import random
import signal
import threading
from pathlib import Path

import pytest

from bot.core.models import ChainKey, GenerateStatus
from tests.core.writer_corpus import CHANNELS, corpus, learn, open_brain

pytestmark = pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="CPU affinity is Linux's")


def threads() -> dict[int, frozenset[int]]:
    """This process's threads and the CPUs each may run on."""
    found = {}
    for task in os.listdir("/proc/self/task"):
        try:
            found[int(task)] = frozenset(os.sched_getaffinity(int(task)))
        except OSError:  # ended meanwhile
            continue
    return found


def affinity_of_new_thread() -> set[int]:
    """The CPUs a thread started now may run on."""
    seen: list[set[int]] = []
    thread = threading.Thread(target=lambda: seen.append(os.sched_getaffinity(0)))
    thread.start()
    thread.join()
    return seen[0]


async def test_a_running_bots_walker_keeps_a_cpu_of_its_own_and_gives_it_back_on_close(
    tmp_path: Path,
) -> None:
    cpus = os.sched_getaffinity(0)
    brain = await open_brain(tmp_path / "bot.sqlite3", tmp_path, in_background=True, walker="process")
    try:
        walker, learning = brain.store.walker_pid, brain.store.learning_pid
        assert walker is not None and learning is not None
        if len(cpus) > 1:
            own = {max(cpus)}
            assert os.sched_getaffinity(walker) == own
            assert set(threads().values()) == {
                frozenset(cpus - own)
            }  # the event loop's and every other thread
            assert affinity_of_new_thread() == cpus - own  # and those started later
        else:  # one CPU: nothing to share out
            assert os.sched_getaffinity(walker) == cpus
            assert set(threads().values()) == {frozenset(cpus)}
        assert os.sched_getaffinity(learning) == cpus  # learning runs wherever there is room, below
    finally:
        await brain.close()
    assert set(threads().values()) == {frozenset(cpus)}
    assert affinity_of_new_thread() == cpus


async def test_a_walker_started_again_after_it_was_killed_keeps_the_same_cpu(tmp_path: Path) -> None:
    cpus = os.sched_getaffinity(0)
    brain = await open_brain(tmp_path / "bot.sqlite3", tmp_path, in_background=True, walker="process")
    try:
        await learn(brain, corpus(200))
        first = brain.store.walker_pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        generated = await brain.generate(ChainKey("t", "g", CHANNELS[0]), rng=random.Random(1), guard=False)
        assert generated.status is GenerateStatus.OK
        second = brain.store.walker_pid
        assert second is not None and second != first
        assert os.sched_getaffinity(second) == ({max(cpus)} if len(cpus) > 1 else cpus)
    finally:
        await brain.close()


async def test_a_store_that_is_not_a_running_bots_leaves_the_cpus_alone(tmp_path: Path) -> None:
    cpus = os.sched_getaffinity(0)
    brain = await open_brain(tmp_path / "import.sqlite3", tmp_path, walker="process")  # as markovbot import
    try:
        walker = brain.store.walker_pid
        assert walker is not None
        assert os.sched_getaffinity(walker) == cpus
        assert set(threads().values()) == {frozenset(cpus)}
    finally:
        await brain.close()
