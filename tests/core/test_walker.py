"""The walker: in a process of its own it walks exactly as on a thread, and it never outlives the bot."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.core import chain as chainmod
from bot.core import walker as walkermod
from bot.core import walkerhost as walkerhostmod
from bot.core.brain import Brain
from bot.core.chain import Choices
from bot.core.memorisation import Thresholds
from bot.core.models import ChainInfo, ChainKey, GenerateStatus, Message
from bot.core.versions import Version
from bot.core.walker import Walker
from bot.core.walkercalls import (
    Attempts,
    GreedyHits,
    PickOpenings,
    SampleOutputs,
    Successors,
    Walks,
)
from bot.core.walkerhost import WalkerHost
from tests.core import readengines
from tests.core.readengines import Corpus, Tkey, corpus
from tests.core.test_retention import varied_corpus

P, G, C = "test", "guild", "chan"
KEY = ChainKey(P, G, C)
FINGERPRINT_KEY = b"0123456789abcdef"


async def learned(path: Path, walker: str) -> Brain:
    brain = await Brain.open(path, walker=walker, key=FINGERPRINT_KEY, flush_interval=0.05)
    for i, text in enumerate(varied_corpus(400, words=600)):
        await brain.learn(Message(P, G, C, f"m{i % 3}", str(i), text), require_consent=False)
    await brain.flush()
    return brain


async def outputs(brain: Brain) -> list[tuple[GenerateStatus, str | None]]:
    """Ten replies from one random stream (its state must carry from call to call), some anchored."""
    rng = random.Random(11)
    replies = []
    for i in range(10):
        start = "w1" if i % 3 == 0 else None
        author = "m1" if i % 4 == 0 else None
        result = await brain.generate(KEY, rng=rng, start=start, author=author)
        replies.append((result.status, result.text))
    return replies


async def test_the_walker_process_replies_exactly_as_the_walker_thread(tmp_path: Path) -> None:
    seen = {}
    for walker in ("thread", "process"):
        brain = await learned(tmp_path / f"{walker}.sqlite3", walker)
        try:
            assert (brain.store.walker_pid is not None) == (walker == "process")
            seen[walker] = (await outputs(brain), (await brain.stats(KEY)).as_json())
        finally:
            await brain.close()
    thread, process = seen["thread"], seen["process"]
    assert len({text for _, text in thread[0]}) > 5, "different replies, not one repeated"
    assert process == thread


async def test_a_killed_walker_process_is_replaced_and_the_reply_still_comes(tmp_path: Path) -> None:
    brain = await learned(tmp_path / "m.sqlite3", "process")
    try:
        first = brain.store.walker_pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        result = await brain.generate(KEY, rng=random.Random(1))
        assert result.status is GenerateStatus.OK
        assert brain.store.walker_pid not in (None, first)
    finally:
        await brain.close()
    assert not alive(first)


async def test_a_walker_process_that_stops_answering_is_replaced_once_and_every_waiting_reply_comes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    brain = await learned(tmp_path / "m.sqlite3", "process")
    monkeypatch.setattr(walkerhostmod, "ANSWER_SECONDS", 2.0)
    try:
        first = brain.store.walker_pid
        assert first is not None
        os.kill(first, signal.SIGSTOP)  # alive, its pipe open, answering nothing
        with caplog.at_level(logging.WARNING, logger="bot.core.walkerhost"):
            results = await asyncio.gather(*(brain.generate(KEY, rng=random.Random(i)) for i in range(3)))
        assert [r.status for r in results] == [GenerateStatus.OK] * 3
        assert brain.store.walker_pid not in (None, first)
        assert caplog.text.count("the walker process did not answer in 2 s; starting another") == 1
    finally:
        await brain.close()
    assert not alive(first)


def alive(pid: int) -> bool:
    """True while a process (not a zombie) has this pid."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


BOT = """
import asyncio, sys
from bot.core.brain import Brain

async def main():
    brain = await Brain.open(sys.argv[1], walker="process")
    print(brain.store.walker_pid, flush=True)
    await asyncio.sleep(60)

if __name__ == "__main__":
    asyncio.run(main())
"""


@pytest.mark.skipif(not Path("/proc").exists(), reason="reads /proc")
def test_the_walker_process_ends_when_the_bot_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "bot_main.py"
    script.write_text(BOT)
    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
    bot = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "k.sqlite3")], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert bot.stdout is not None
        walker_pid = int(bot.stdout.readline())
        assert alive(walker_pid)
    finally:
        bot.kill()
        bot.wait()
    deadline = time.monotonic() + 10
    while alive(walker_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(walker_pid), "the walker process outlived the bot"


UNGUARDED = """
import asyncio, sys
from bot.core.brain import Brain

asyncio.run(Brain.open(sys.argv[1], walker="process"))
"""


def test_a_script_without_a_main_guard_is_told_how_to_run_the_walker(tmp_path: Path) -> None:
    # The walker process starts by importing the main script again: unguarded, it would open the
    # database once more in there. The bot refuses to start, and says what to change.
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED)
    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
    run = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "u.sqlite3")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert run.returncode != 0
    last = run.stderr.strip().splitlines()[-1]
    assert "WalkerDied" in last and 'if __name__ == "__main__":' in last and "MARKOV_WALKER=thread" in last


# ---------------------------------------------------------------- the walker on each engine (bot.core.reads)


def counts_of(choices: Choices) -> list[tuple[int, int]]:
    """Choices (ids, cumulative counts) as (id, count) pairs."""
    ids, cum = choices
    return [(int(i), int(c - p)) for i, c, p in zip(ids, cum, [0, *cum][: len(cum)], strict=True)]


def summed(
    counts: Counter[Tkey], keep: Callable[[Tkey], bool], by: Callable[[Tkey], int]
) -> list[tuple[int, int]]:
    """The oracle's counts of the keys kept, summed by one column, in id order."""
    out: Counter[int] = Counter()
    for k, v in counts.items():
        if keep(k):
            out[by(k)] += v
    return sorted((i, v) for i, v in out.items() if v)


def assert_reads_as(walker: Walker, chain: ChainInfo, data: Corpus) -> None:
    """Every context's successors, every (next, suffix)'s predecessors and every token's entries, for
    the chain and for each author, are the oracle's counts; so are every window's multiplicities."""
    n = chain.order
    for author in (None, 1, 2, 3):
        mine = Counter({k: v for k, v in data.counts.items() if author is None or k[-1] == author})
        reader = walker.reader(chain, author)
        for ctx in {k[:n] for k in data.counts}:
            expected = summed(mine, lambda k, c=ctx: k[:n] == c, lambda k: k[n])
            assert counts_of(reader.successors(chainmod.pack(ctx))) == expected
        for next_id, *suffix in {(k[n], *k[1:n]) for k in data.counts}:
            expected = summed(
                mine, lambda k, x=next_id, s=tuple(suffix): (k[n], *k[1:n]) == (x, *s), lambda k: k[0]
            )
            assert counts_of(reader.predecessors(next_id, chainmod.pack(suffix))) == expected
        for next_id in {k[n] for k in data.counts}:
            contexts, choices = reader.entries_into(next_id)
            into: Counter[tuple[int, ...]] = Counter()
            for k, v in mine.items():
                if k[n] == next_id:
                    into[k[:n]] += v
            expected_into = sorted((ctx, v) for ctx, v in into.items() if v)
            got = [(chainmod.unpack(c), k) for c, (_, k) in zip(contexts, counts_of(choices), strict=True)]
            assert got == expected_into
    fps = sorted({fp for fp, _ in data.windows})
    authors: dict[int, set[int]] = {}
    times: Counter[int] = Counter()
    for (fp, author), k in data.windows.items():
        authors.setdefault(fp, set()).add(author)
        times[fp] += k
    expected_windows = {fp: (times[fp], len(authors[fp])) for fp in fps}
    assert walker.window_multiplicity(chain.id, [*fps, 12345]) == expected_windows


async def test_the_walker_reads_blocks_and_delta_summed_exactly_on_each_engine(where: Path | str) -> None:
    data = corpus(1)
    chain = await readengines.write(where, data)

    def check() -> None:
        walker = Walker(where, readengines.KEY, 1000)
        try:
            walker.sync(Version(chain.id, 0))
            assert_reads_as(walker, chain, data)
            assert_reads_as(walker, chain, data)  # from the caches
        finally:
            walker.close()

    await asyncio.to_thread(check)  # the walker's thread: no event loop running there


async def test_walks_follow_only_learned_transitions_on_each_engine(where: Path | str) -> None:
    data = corpus(2)
    chain = await readengines.write(where, data)
    n = chain.order
    learned = {(k[:n], k[n]) for k in data.counts} | {(k[:n], k[n], k[-1]) for k in data.counts}
    tokens = sorted(data.token_ids.values())

    def check() -> None:
        walker = Walker(where, readengines.KEY, 1000)

        @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(
            seed=st.integers(0, 2**32),
            start=st.sampled_from([None, *tokens, 999]),
            author=st.sampled_from([None, 1, 2, 3]),
        )
        def walks_learned(seed: int, start: int | None, author: int | None) -> None:
            walker.sync(Version(chain.id, 0))
            ids = chainmod.walk(walker.reader(chain, author), random.Random(seed), [start] if start else [])
            into = {x for _, x, *a in learned if author is None or a == [author]}
            if ids is None:
                assert start not in into
                return
            if start is not None:
                assert start in ids
            whole = len(ids) < chainmod.MAX_WALK - 1  # both ends reached: BEGIN before, END after
            padded = [chainmod.BEGIN] * n * whole + ids + [chainmod.END] * whole
            for i in range(n, len(padded)):
                step = (tuple(padded[i - n : i]), padded[i])
                assert (step if author is None else (*step, author)) in learned

        try:
            walks_learned()
        finally:
            walker.close()

    await asyncio.to_thread(check)


async def test_the_copy_guard_sees_every_learned_message_and_run_on_each_engine(where: Path | str) -> None:
    data = corpus(3)
    chain = await readengines.write(where, data)

    def check() -> None:
        walker = Walker(where, readengines.KEY, 1000)
        try:
            walker.sync(Version(chain.id, 0))
            for _, tokens in data.messages:
                assert walker.copies(chain, tokens) == (True, len(tokens) >= chain.run_length)
                assert walker.copies(chain, ["unsaid", *tokens])[1] == (len(tokens) >= chain.run_length)
                assert walker.copied(chain, tokens)  # what the guard asks: both halves in one lookup
                assert walker.copied(chain, ["unsaid", *tokens]) == (len(tokens) >= chain.run_length)
            assert walker.copies(chain, ["never", "said", "in", "this", "chain"]) == (False, False)
            assert not walker.copied(chain, ["never", "said", "in", "this", "chain"])
        finally:
            walker.close()

    await asyncio.to_thread(check)


async def test_a_removal_or_learning_committed_by_another_connection_is_seen_at_the_next_call(
    where: Path | str,
) -> None:
    data = corpus(4, wide=walkermod.WIDE_STATE)  # a wide state, which may lag learning but never a removal
    chain = await readengines.write(where, data)
    walker = Walker(where, readengines.KEY, 100_000)  # every read stays cached
    thread = ThreadPoolExecutor(1)  # the walker's one thread, as WalkerHost runs it

    async def on_walker(fn: Callable[..., object], *args: object) -> None:
        await asyncio.get_running_loop().run_in_executor(thread, fn, *args)

    try:
        await on_walker(walker.sync, Version(chain.id, 0))
        await on_walker(assert_reads_as, walker, chain, data)  # every read cached
        await readengines.forget(where, chain, data, author=2)  # another process's forget
        await on_walker(walker.sync, Version(chain.id, 0))  # this process's writer wrote nothing
        await on_walker(assert_reads_as, walker, chain, data)
        first = next(iter(data.counts))
        await readengines.learn_delta(where, chain, data, (*first[: chain.order], 99, 3))  # a new successor
        await on_walker(walker.sync, Version(chain.id, 0))
        await on_walker(assert_reads_as, walker, chain, data)
    finally:
        await on_walker(walker.close)
        thread.shutdown()


async def test_both_engines_walk_and_sample_the_same_from_the_same_seed(tmp_path: Path, pg_url: str) -> None:
    data = corpus(5)
    seen = []
    for where in (tmp_path / "same.sqlite3", pg_url):
        chain = await readengines.write(where, data)
        host = WalkerHost(where, 1000, "thread")
        await host.start(readengines.KEY)
        try:
            version = Version(chain.id, 0)
            walks = await host.run(version, Walks(chain, 40, 7))
            outputs, _ = await host.run(
                version, SampleOutputs(chain, 40, random.Random(7).getstate(), Thresholds(), math.inf)
            )
            _, picked = await host.run(version, PickOpenings(chain, 40, 7))
            prefixes, _ = await host.run(version, GreedyHits(chain, picked, math.inf))
            guarded = await host.run(version, Attempts(chain, 9, (), None, True, 20, time.monotonic() + 5))
        finally:
            await host.stop()
        seen.append((walks, outputs, prefixes, guarded))
    assert len({tuple(w) for w in seen[0][0]}) > 10, "varied walks, not one repeated"
    assert seen[0][1].copies.all > 0 and seen[0][2], "the sample found copies"
    assert seen[1] == seen[0]


async def test_the_walker_process_on_postgresql_walks_as_its_thread_and_sees_a_forget(pg_url: str) -> None:
    data = corpus(6)
    chain = await readengines.write(pg_url, data)
    ctx = chainmod.pack([chainmod.BEGIN] * chain.order)
    seen = {}
    for mode in ("thread", "process"):
        host = WalkerHost(pg_url, 1000, mode)
        await host.start(readengines.KEY)
        try:
            assert (host.pid is not None) == (mode == "process")
            version = Version(chain.id, 0)
            seen[mode] = await host.run(version, Walks(chain, 30, 3))
            before = counts_of(await host.run(version, Successors(chain.id, ctx)))
            if mode == "process":
                assert before == summed(data.counts, lambda k: k[:2] == (0, 0), lambda k: k[2])
                await readengines.forget(pg_url, chain, data, author=1)
                after = counts_of(await host.run(version, Successors(chain.id, ctx)))
                assert after == summed(data.counts, lambda k: k[:2] == (0, 0), lambda k: k[2]) != before
        finally:
            await host.stop()
    assert seen["process"] == seen["thread"]
