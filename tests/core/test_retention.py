"""The retention report: every figure against an oracle computed from the raw corpus."""

from __future__ import annotations

import asyncio
import math
import random
import sqlite3
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.core import retention
from bot.core.brain import Brain
from bot.core.models import ChainKey, GenerateStatus, Message
from bot.core.tokens import tokenize

P, G, C = "test", "guild", "chan"
KEY = ChainKey(P, G, C)


def tiny_corpus() -> list[str]:
    return [
        "good morning everyone",
        "good morning to you too",
        "is anyone here today",
        "the meeting starts at noon",
        "thanks for the reminder",
    ]


def varied_corpus(n: int = 1500, seed: int = 7, words: int = 3000, prefix: str = "w") -> list[str]:
    """A seeded Zipf-like corpus: many words, short random sentences."""
    rng = random.Random(seed)
    vocab = [f"{prefix}{i}" for i in range(words)]
    weights = [1 / (i + 1) for i in range(len(vocab))]
    return [" ".join(rng.choices(vocab, weights, k=rng.randint(6, 16))) for _ in range(n)]


async def learned_brain(path: Path, corpus: list[str], order: int = 2, run_length: int = 8) -> Brain:
    brain = await Brain.open(path, flush_interval=0.05)
    await brain.update_settings(P, G, order=order, run_length=run_length)
    await brain.opt_in(P, G, "alice")
    await brain.opt_in(P, G, "bob")
    await brain.set_channel(P, G, C, True)
    for i, text in enumerate(corpus):
        await brain.learn(Message(P, G, C, "alice" if i % 2 else "bob", str(i), text))
    await brain.flush()
    return brain


def oracle(corpus: list[str], order: int) -> dict[str, float]:
    """The figures, computed directly from the raw corpus."""
    counts: dict[tuple[str, ...], Counter[str]] = defaultdict(Counter)
    vocabulary: set[str] = set()
    tokens_seen = 0
    for text in corpus:
        tokens = tokenize(text)
        tokens_seen += len(tokens)
        vocabulary.update(tokens)
        padded = ["\0BEGIN"] * order + tokens + ["\0END"]
        for i in range(order, len(padded)):
            counts[tuple(padded[i - order : i])][padded[i]] += 1
    total = sum(sum(c.values()) for c in counts.values())
    forced = sum(sum(c.values()) for c in counts.values() if len(c) == 1)
    entropy = 0.0
    for successors in counts.values():
        n = sum(successors.values())
        for k in successors.values():
            entropy -= k / total * math.log2(k / n)
    return {
        "messages_seen": len(corpus),
        "tokens_seen": tokens_seen,
        "chars_seen": sum(len(t) for t in corpus),
        "vocabulary": len(vocabulary),
        "states": len(counts),
        "transitions": sum(len(c) for c in counts.values()),
        "forced_share": forced / total,
        "entropy_bits": entropy,
    }


@pytest.mark.parametrize(
    ("corpus", "order"), [(tiny_corpus(), 2), (varied_corpus(), 2), (varied_corpus(400), 1)]
)
async def test_counts_and_shape_match_the_raw_corpus(tmp_path: Path, corpus: list[str], order: int) -> None:
    brain = await learned_brain(tmp_path / "r.db", corpus, order)
    try:
        report = await brain.stats(KEY)
    finally:
        await brain.close()
    expected = oracle(corpus, order)
    for name in ("messages_seen", "tokens_seen", "chars_seen", "vocabulary", "states", "transitions"):
        assert getattr(report, name) == expected[name], name
    assert report.forced_share == pytest.approx(expected["forced_share"], rel=0.01)
    assert report.entropy_bits == pytest.approx(expected["entropy_bits"], rel=0.01)
    assert report.bytes_seen == sum(len(t.encode()) for t in corpus)


async def sampled_outputs(brain: Brain, samples: int, seed: int) -> list[tuple[str, ...]]:
    """The same outputs the report samples: guard off, the report's seed."""
    info = await brain.store.find_chain(KEY)
    assert info is not None
    walks = await brain.store.on_walker("walks", info.id, info, samples, seed)
    return [tuple(tokens) for tokens in walks]


@pytest.mark.parametrize(
    ("corpus", "order", "high"),
    [
        (tiny_corpus(), 2, True),
        # Few words, many messages: every context recurs, so the chain keeps statistics, not messages.
        (varied_corpus(1500, words=300), 1, False),
        # Many rare words for the size: most contexts occur once, and the chain replays its source.
        (varied_corpus(1500, words=3000), 2, True),
    ],
)
async def test_copy_long_run_and_extraction_rates_match_the_raw_corpus(
    tmp_path: Path, corpus: list[str], order: int, high: bool
) -> None:
    brain = await learned_brain(tmp_path / "r.db", corpus, order=order, run_length=5)
    try:
        report = await brain.stats(KEY)
        outputs = await sampled_outputs(brain, report.samples, report.seed)
        info = await brain.store.find_chain(KEY)
        assert info is not None
        candidates = await retention.extraction_candidates(brain, info, report.extraction_budget)
        token_texts = [tuple(await brain.store.texts(c)) for c in candidates]
    finally:
        await brain.close()
    messages = [tuple(tokenize(t)) for t in corpus]
    learned = set(messages)
    windows = {m[i : i + 5] for m in messages for i in range(len(m) - 4)}
    copies = sum(o in learned for o in outputs) / len(outputs)
    long_runs = sum(any(o[i : i + 5] in windows for i in range(len(o) - 4)) for o in outputs) / len(outputs)
    extracted = set(token_texts)
    extraction = sum(m in extracted for m in messages) / len(messages)
    assert report.copy_rate == pytest.approx(copies, abs=1e-9)
    assert report.long_run_rate == pytest.approx(long_runs, abs=1e-9)
    assert report.extraction_rate == pytest.approx(extraction, abs=1e-9)
    if high:
        assert report.replays_source
        assert "mostly replays its source" in retention.summary(report)
    else:
        assert report.copy_rate < 0.05 and report.extraction_rate < 0.05 and not report.replays_source
        assert "not a store of messages" in retention.summary(report)


async def test_bytes_kept_add_up_to_the_database_pages(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    brain = await learned_brain(path, varied_corpus(300))
    try:
        await brain.set_channel(P, G, "other", True)
        # Its own words: a word used by two chains counts in both, and the sum would exceed the pages.
        for i, text in enumerate(varied_corpus(200, seed=3, prefix="v")):
            await brain.learn(Message(P, G, "other", "alice", f"o{i}", text))
        await brain.flush()
        one = await brain.stats(KEY)
        two = await brain.stats(ChainKey(P, G, "other"))
    finally:
        await brain.close()
    db = sqlite3.connect(path)
    pages = dict(
        db.execute("SELECT name, sum(pgsize) FROM dbstat WHERE aggregate = TRUE GROUP BY name").fetchall()
    )
    db.close()
    chain_tables = (
        "transitions",
        "transitions_into",
        "hubs",
        "sqlite_autoindex_hubs_1",
        "windows",
        "messages",
        "messages_by_author",
        "messages_by_fingerprint",
        "tokens",
        "sqlite_autoindex_tokens_1",
        "recent_messages",
        "recent_messages_by_author",
        "recent_messages_by_time",
    )
    assert one.bytes_kept + two.bytes_kept == pytest.approx(sum(pages[t] for t in chain_tables), abs=4)
    assert one.bytes_kept == one.bytes_transitions + one.bytes_fingerprints
    assert "recent messages' token ids" in retention.summary(one)  # the report names what it counts
    assert one.kept_ratio == pytest.approx(one.bytes_kept / one.bytes_seen)


async def test_json_has_the_documented_keys(brain: Brain) -> None:
    report = await brain.stats(KEY)
    assert list(report.as_json())[: len(retention.JSON_KEYS)] == list(retention.JSON_KEYS)
    assert report.messages_seen == 0 and "haven't learned anything" in retention.summary(report)


async def test_report_is_cached_until_the_chain_changes(tmp_path: Path) -> None:
    brain = await learned_brain(tmp_path / "r.db", tiny_corpus())
    try:
        first = await brain.stats(KEY)
        assert await brain.stats(KEY) is first
        await brain.learn(Message(P, G, C, "alice", "new", "a brand new message"))
        assert (await brain.stats(KEY)).messages_seen == first.messages_seen + 1
    finally:
        await brain.close()


corpora = st.lists(
    st.lists(st.sampled_from(["a", "b", "c", "d", "e", "f", ".", "!"]), min_size=1, max_size=10).map(
        " ".join
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corpora, st.integers(0, 1000), st.integers(3, 5))
def test_the_copy_guard_never_lets_a_copy_through(corpus: list[str], seed: int, k: int) -> None:
    messages = [tuple(tokenize(t)) for t in corpus]
    windows = {m[i : i + k] for m in messages for i in range(len(m) - k + 1)}

    async def go() -> list[tuple[GenerateStatus, tuple[str, ...]]]:
        with tempfile.TemporaryDirectory() as tmp:
            brain = await learned_brain(Path(tmp) / "g.db", corpus, run_length=k)
            try:
                rng = random.Random(seed)
                return [
                    ((r := await brain.generate(KEY, rng=rng, tries=5)).status, r.tokens) for _ in range(5)
                ]
            finally:
                await brain.close()

    for status, tokens in asyncio.run(go()):
        if status is GenerateStatus.OK:
            assert tokens not in set(messages)
            assert not any(tokens[i : i + k] in windows for i in range(len(tokens) - k + 1))
        else:
            assert status is GenerateStatus.COPY_GUARD
