"""The writer (bot.core.writer, countwriter, bulkwrite, writetx) on both engines: what it writes, table by table.

Each database is compared through a logical dump (ids replaced by what they name): learning the
same messages dumps the same on SQLite and PostgreSQL, a forget leaves what never learning the
member leaves, an unlearn undoes a learn, and a transaction that fails leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest

from bot.core import keys
from bot.core.messagekeys import message_key
from bot.core.models import LearnStatus, UnlearnStatus
from bot.core.store import Store, StoreError
from tests.core import pg_store_writers
from tests.core.pg_dump import pg_counts
from tests.core.writer_corpus import MEMBERS, corpus, dump, learn, open_brain
from tests.pglocks import WAITERS

ROOT = Path(__file__).resolve().parents[2]
WRITERS = 3  # tests.core.pg_store_writers: two live learners and an import, over overlapping chains and ids


async def test_learning_dumps_the_same_on_both_engines(pg_url: str, tmp_path: Path) -> None:
    messages = corpus(150)
    dumps = []
    for where in (tmp_path / "markov.sqlite3", pg_url):
        brain = await open_brain(where, tmp_path, batch_size=40)
        try:
            await learn(brain, messages)
        finally:
            await brain.close()
        dumps.append(await dump(where))
    assert dumps[0]["transitions"] and dumps[0]["windows"] and dumps[0]["recent_messages"]
    assert dumps[0] == dumps[1]


async def test_a_forget_leaves_what_never_learning_the_member_leaves(
    where: Path | str, tmp_path: Path, pg_url: str
) -> None:
    messages = corpus(120)
    forgotten = MEMBERS[1]
    brain = await open_brain(where, tmp_path, batch_size=30)
    try:
        await learn(brain, messages)
        result = await brain.forget("t", "g", forgotten)
        assert result.messages == sum(1 for m in messages if m.author == forgotten) > 0
    finally:
        await brain.close()
    never = pg_url if isinstance(where, Path) else tmp_path / "never.sqlite3"  # the other engine
    other = await open_brain(never, tmp_path, batch_size=30)
    try:
        await learn(other, [m for m in messages if m.author != forgotten])
    finally:
        await other.close()
    forgot, never_learned = await dump(where), await dump(never)
    assert forgot == never_learned
    assert all(forgotten not in author for author in forgot["authors_with_data"])


async def test_an_unlearn_undoes_a_learn(where: Path | str, tmp_path: Path) -> None:
    messages = corpus(80)
    base, extra = messages[:50], messages[50:]
    brain = await open_brain(where, tmp_path, batch_size=25)
    try:
        await learn(brain, base)
        before = await dump(where)
        await learn(brain, extra)
        assert await dump(where) != before
        for message in reversed(extra):
            assert await brain.unlearn(message) is UnlearnStatus.UNLEARNED
        assert await brain.unlearn(extra[0]) is UnlearnStatus.NOT_LEARNED
    finally:
        await brain.close()
    after = await dump(where)
    # The chains' rows stay (they learned before), and tokens fall back to what base holds.
    assert after == before


async def test_a_message_id_is_learned_once(where: Path | str, tmp_path: Path) -> None:
    messages = corpus(20)
    brain = await open_brain(where, tmp_path)
    try:
        await learn(brain, messages)
        for message in messages[:5]:  # offered again (as after a restart, or by another process)
            assert (await brain.learn(message, require_consent=False)).status is LearnStatus.QUEUED
        result = await brain.store.flush()
        assert (result.learned, result.duplicates) == (0, 5)
        info = await brain.store.find_chain(messages[0].chain)
        assert info is not None
        counters = await brain.store.chain_counters(info.id)
    finally:
        await brain.close()
    learned = [m for m in messages if m.channel == messages[0].channel]
    assert counters[0] == len(learned)
    assert len((await dump(where))["messages"]) == len(messages)


async def test_an_import_learns_what_live_learning_does(where: Path | str, tmp_path: Path) -> None:
    messages = [m for m in corpus(200) if m.channel == "c1"]
    chain = messages[0].chain
    brain = await open_brain(where, tmp_path, batch_size=20)
    try:
        async with brain.importing(chain, workers=0, deletable=True) as learner:
            for lo in range(0, len(messages), 17):
                await learner.add([(m.id, m.author, m.text) for m in messages[lo : lo + 17]])
    finally:
        await brain.close()
    live = tmp_path / "live.sqlite3"
    other = await open_brain(live, tmp_path)
    try:
        await learn(other, messages)
    finally:
        await other.close()
    assert await dump(where) == await dump(live)


async def test_a_failed_postgresql_transaction_leaves_nothing_and_the_caches_hold(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    messages = corpus(90)
    first, second = messages[:40], messages[40:]
    brain = await open_brain(pg_url, tmp_path, batch_size=100)
    try:
        await learn(brain, first)
        before, rows = await dump(pg_url), await pg_counts(pg_url)
        writes = brain.store._writes
        apply = writes.apply

        async def fails_after_writing(*args: object, **kwargs: object) -> None:
            await apply(*args, **kwargs)  # type: ignore[arg-type]
            raise RuntimeError("the disk went away")

        monkeypatch.setattr(writes, "apply", fails_after_writing)
        for message in second:
            await brain.learn(message, require_consent=False)
        with pytest.raises(RuntimeError, match="the disk went away"):
            await brain.store.flush()
        assert await dump(pg_url) == before
        assert await pg_counts(pg_url) == rows  # no token, message or delta row of the failed one
        monkeypatch.setattr(writes, "apply", apply)
        await brain.store.flush()  # the same batch again: its tokens are made anew, not taken from a cache
    finally:
        await brain.close()
    reference = tmp_path / "reference.sqlite3"
    other = await open_brain(reference, tmp_path)
    try:
        await learn(other, messages)
    finally:
        await other.close()
    assert await dump(pg_url) == await dump(reference)


async def test_three_processes_writing_one_postgresql_database_write_what_one_would(
    pg_url: str, tmp_path: Path
) -> None:
    messages = corpus(400, seed=11)
    barrier = 0x6D61726B  # an advisory lock the test holds until every writer waits on it
    gate = await asyncpg.connect(pg_url)
    await gate.execute("SELECT pg_advisory_lock($1)", barrier)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.core.pg_store_writers",
                pg_url,
                str(barrier),
                str(i),
                str(tmp_path),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                cwd=ROOT,
            )
            for i in range(WRITERS)
        ]
        while True:  # all wait on the barrier (or one has failed): then let them go at once
            waiting = await gate.fetchval(WAITERS, barrier)
            if waiting == WRITERS or any(p.returncode is not None for p in procs):
                break
            await asyncio.sleep(0.05)  # polling the server's lock table, not a wait for an outcome
        await gate.execute("SELECT pg_advisory_unlock($1)", barrier)
        outputs = [await p.communicate() for p in procs]
    finally:
        await gate.close()
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err.decode()
    learned = [json.loads(out.decode().splitlines()[-1]) for out, _ in outputs]
    assert sum(r["learned"] for r in learned) == len(messages)  # each message once, whoever took it
    reference = tmp_path / "one.sqlite3"
    one = await open_brain(reference, tmp_path)
    try:
        await learn(one, messages)
    finally:
        await one.close()
    got, want = await dump(pg_url), await dump(reference)
    assert want["transitions"] and want["windows"] and want["recent_messages"]
    assert got.keys() == want.keys()
    for table in want:
        assert got[table] == want[table], table


def test_the_three_writers_shares_overlap_and_cover_the_corpus() -> None:
    messages = corpus(400, seed=11)
    shares = [{m.id for m in pg_store_writers.share(messages, i)} for i in range(WRITERS)]
    assert set().union(*shares) == {m.id for m in messages}
    imported = {m.channel for m in pg_store_writers.share(messages, 2)}
    assert imported == {pg_store_writers.IMPORTED}
    for i in range(WRITERS):  # every two writers offer some of the same messages, of the imported chain
        for j in range(i):
            both = {m.channel for m in messages if m.id in shares[i] & shares[j]}
            assert pg_store_writers.IMPORTED in both, (i, j)


async def test_a_deadlocked_postgresql_transaction_runs_again_whole(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    messages = corpus(60)
    brain = await open_brain(pg_url, tmp_path, batch_size=100)
    runs = [0]
    try:
        writes = brain.store._writes
        apply = writes.apply

        async def deadlocks_once(*args: object, **kwargs: object) -> None:
            await apply(*args, **kwargs)  # type: ignore[arg-type]
            runs[0] += 1
            if runs[0] == 1:
                raise asyncpg.DeadlockDetectedError("deadlock detected")

        monkeypatch.setattr(writes, "apply", deadlocks_once)
        await learn(brain, messages)
        assert brain.store.committed == len(messages)
    finally:
        await brain.close()
    assert runs[0] == 2
    reference = tmp_path / "reference.sqlite3"
    other = await open_brain(reference, tmp_path)
    try:
        await learn(other, messages)
    finally:
        await other.close()
    assert await dump(pg_url) == await dump(reference)


async def test_a_member_another_store_forgot_is_dropped_from_the_queue_and_the_caches(
    where: Path | str, tmp_path: Path
) -> None:
    messages = [m for m in corpus(40) if m.author in ("alice", "bob")]
    alice = next(m for m in messages if m.author == "alice")
    first = await open_brain(where, tmp_path)
    second = await open_brain(where, tmp_path)
    try:
        await learn(first, messages)
        old_id = await first.store.find_author("t", "g", "alice")
        assert old_id is not None
        await first.learn(replace(alice, id="late"), require_consent=False)  # queued with alice's cached id
        assert (await second.forget("t", "g", "alice")).messages > 0
        result = await first.store.flush()
        assert (result.learned, result.duplicates) == (0, 1)  # dropped: its author is gone
        assert not await first.store.is_learned("t", "late")
        assert "alice" not in {a for (_, _, a) in first.store._registry.authors}
        await learn(first, [replace(alice, id="later")])  # made again, under a new id
        assert await first.store.find_author("t", "g", "alice") not in (None, old_id)
    finally:
        await second.close()
        await first.close()
    dumped = await dump(where)
    assert [m for m in dumped["messages"] if m[2][2] == "alice"] == [
        m for m in dumped["messages"] if m[0] == message_key("t", "later")
    ]


async def test_a_postgresql_store_given_no_key_makes_its_key_file_and_is_refused_another(
    pg_url: str, tmp_path: Path
) -> None:
    key_path = tmp_path / "keys" / "markov"
    store = await Store(pg_url, key_path=key_path, walker="thread").open()
    try:
        made = store.key
    finally:
        await store.close()
    assert keys.read_file(keys.key_file(key_path)) == made
    again = await Store(pg_url, key_path=key_path, walker="thread").open()
    try:
        assert again.key == made
    finally:
        await again.close()
    with pytest.raises(StoreError, match="not the fingerprint key"):
        await Store(pg_url, key=bytes(32), walker="thread").open()
