"""The retention report: every figure against an oracle computed from the raw corpus."""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import math
import random
import sqlite3
import tempfile
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.core import chain as chainmod
from bot.core import chart, retention
from bot.core.brain import Brain
from bot.core.fingerprints import normalise, trimmed
from bot.core.models import ChainKey, GenerateStatus, Message
from bot.core.rates import Rate, wilson
from bot.core.tokens import tokenize
from tests.core.enginebrains import Databases, key_path, places

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


async def learned_brain(
    path: Path | str, corpus: list[str], order: int = 2, run_length: int = 8, **options: Any
) -> Brain:
    brain = await Brain.open(path, flush_interval=0.05, **options)
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
    walks = await brain.store.walker.walks(info, samples, seed)
    return [tuple(tokens) for tokens in walks]


def token_ids(path: Path) -> dict[str, int]:
    """The database's token ids (the greedy walk breaks ties by them), with BEGIN and END."""
    with sqlite3.connect(path) as db:
        ids = {text: int(i) for i, text in db.execute("SELECT id, text FROM tokens")}
    return {**ids, "\0END": 1}


class Oracle:
    """The memorisation figures computed from the raw corpus the test holds (authors alternate).

    How often a message was said counts it up to normalisation (case, compatibility forms, trailing
    punctuation), as copies of outputs are; given back means reproduced exactly.
    """

    def __init__(self, corpus: list[str], order: int, k: int, common: tuple[int, int] = (5, 3)) -> None:
        self.order, self.k, self.common_at = order, k, common
        self.messages = [tuple(tokenize(t)) for t in corpus]
        self.distinct = set(self.messages)
        self.times: Counter[tuple[str, ...]] = Counter()
        self.authors: dict[tuple[str, ...], set[str]] = defaultdict(set)
        self.window_times: Counter[tuple[str, ...]] = Counter()
        self.window_authors: dict[tuple[str, ...], set[str]] = defaultdict(set)
        self.counts: dict[tuple[str, ...], Counter[str]] = defaultdict(Counter)
        for i, m in enumerate(self.messages):
            author = "alice" if i % 2 else "bob"
            self.times[said(m)] += 1
            self.authors[said(m)].add(author)
            normal = tuple(normalise(m))
            for j in range(len(m) - k + 1):
                self.window_times[normal[j : j + k]] += 1
                self.window_authors[normal[j : j + k]].add(author)
            padded = ("\0BEGIN",) * order + m + ("\0END",)
            for j in range(order, len(padded)):
                self.counts[padded[j - order : j]][padded[j]] += 1

    def common(self, times: int, authors: int) -> bool:
        return times >= self.common_at[0] or authors >= self.common_at[1]

    def kind(self, m: tuple[str, ...]) -> tuple[bool, bool]:
        """(1-eidetic, common) of a learned message, by how often it was said in any form."""
        key = said(m)
        return self.times[key] == 1, self.common(self.times[key], len(self.authors[key]))

    def greedy(self, prefix: tuple[str, ...], ids: dict[str, int]) -> tuple[str, ...]:
        out = list(prefix)
        for _ in range(chainmod.MAX_WALK):
            successors = self.counts.get(tuple(out[-self.order :]))
            if not successors:
                break
            top = max(successors.values())
            best = min((t for t, c in successors.items() if c == top), key=lambda t: ids[t])
            if best == "\0END":
                break
            out.append(best)
        return tuple(out)

    def discoverable(self, ids: dict[str, int]) -> list[tuple[int, int]]:
        """(all, 1-eidetic, common): of the distinct messages longer than the order, (given back, how many)."""
        longer = [m for m in self.distinct if len(m) > self.order]
        hits = [m for m in longer if self.greedy(m[: self.order], ids) == m]

        def share(pick: int) -> tuple[int, int]:
            base = [m for m in longer if pick < 0 or self.kind(m)[pick]]
            return sum(m in hits for m in base), len(base)

        return [share(-1), share(0), share(1)]

    def outputs(self, outputs: list[tuple[str, ...]]) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        """((copies, of 1-eidetic, of common), (long runs, of a run said once, of common runs only))."""
        copies = [o for o in outputs if said(o) in self.times]
        runs = []
        for o in outputs:
            normal = tuple(normalise(o))
            windows = [normal[j : j + self.k] for j in range(len(o) - self.k + 1)]
            matched = [w for w in windows if w in self.window_times]
            if matched:
                runs.append(matched)
        return (
            (len(copies), sum(self.kind(o)[0] for o in copies), sum(self.kind(o)[1] for o in copies)),
            (
                len(runs),
                sum(any(self.window_times[w] == 1 for w in r) for r in runs),
                sum(
                    all(self.common(self.window_times[w], len(self.window_authors[w])) for w in r)
                    for r in runs
                ),
            ),
        )


def said(tokens: tuple[str, ...]) -> tuple[str, ...]:
    """A message as its saying is counted: normalised, trailing punctuation dropped."""
    return tuple(trimmed(normalise(tokens)))


def repeated_corpus() -> list[str]:
    """Only messages many people said: nothing is anyone's own."""
    lines = ["yeah", "good morning everyone", "lol same here", "see you tomorrow then", "thanks a lot"]
    return [line for line in lines for _ in range(6)]


def mixed_corpus() -> list[str]:
    """Messages said once, twice (neither 1-eidetic nor common) and by everyone."""
    twice = ["brb getting coffee", "anyone up for a game tonight", "that was a great match"]
    forms = ["Yeah sure thing", "yeah sure thing!", "YEAH SURE THING", "Ｙｅａｈ sure thing ."]
    return repeated_corpus() + varied_corpus(300, seed=11, words=400) + twice * 2 + forms


@pytest.mark.parametrize(
    ("corpus", "order", "verdict"),
    [
        (tiny_corpus(), 2, "replays"),
        # Few words, many messages: every context recurs, so the chain keeps statistics, not messages.
        (varied_corpus(1500, words=300), 1, "little"),
        # Many rare words for the size: most contexts occur once, and the chain replays its source.
        (varied_corpus(1500, words=3000), 2, None),
        (repeated_corpus(), 2, None),
        (mixed_corpus(), 2, None),
    ],
)
async def test_memorisation_figures_match_the_raw_corpus(
    tmp_path: Path, corpus: list[str], order: int, verdict: str | None
) -> None:
    path = tmp_path / "r.db"
    brain = await learned_brain(path, corpus, order=order, run_length=5)
    try:
        report = await brain.stats(KEY)
        outputs = await sampled_outputs(brain, report.samples, report.seed)
        info = await brain.store.find_chain(KEY)
        assert info is not None
        candidates = await retention.extraction_candidates(brain, info, report.extraction_budget)
        extracted = {tuple(await brain.store.texts(c)) for c in candidates}
        guided = await retention.extraction_candidates(brain, info, report.extraction_budget, guided=True)
        with_key = {tuple(await brain.store.texts(c)) for c in guided}
    finally:
        await brain.close()
    oracle = Oracle(corpus, order, 5)
    eidetic = [m for m in oracle.distinct if oracle.kind(m)[0]]
    assert (report.distinct_messages, report.eidetic_messages) == (len(oracle.distinct), len(eidetic))
    assert report.common_messages == sum(oracle.kind(m)[1] for m in oracle.distinct)

    rates = (report.discoverable, report.discoverable_eidetic, report.discoverable_common)
    for rate, (hits, messages) in zip(rates, oracle.discoverable(token_ids(path)), strict=True):
        assert rate.exact or not messages  # the test corpora have fewer prefixes than the sample
        # "(all n examined)": n is the messages that could be given back, hits those that were
        assert (rate.hits, rate.n) == ((hits, messages) if messages else (0, 0))
        assert rate.value == pytest.approx(hits / messages if messages else 0.0, abs=1e-9)

    (copies, copies_once, copies_common), (runs, runs_once, runs_common) = oracle.outputs(outputs)
    assert report.samples == len(outputs) == retention.DEFAULT_SAMPLES
    assert (report.copies.hits, report.copies_eidetic.hits, report.copies_common.hits) == (
        copies,
        copies_once,
        copies_common,
    )
    assert (report.long_runs.hits, report.long_runs_eidetic.hits, report.long_runs_common.hits) == (
        runs,
        runs_once,
        runs_common,
    )
    assert report.extracted_eidetic.hits == sum(m in extracted for m in eidetic)
    assert report.extracted.hits == sum(m in extracted for m in oracle.distinct)
    assert report.extracted_with_key.hits == sum(m in with_key for m in eidetic)
    # The key lets the search follow only learned runs: it finds at least what the blind one does.
    assert report.extracted_with_key.hits >= report.extracted_eidetic.hits

    if verdict is not None:
        assert report.verdict == verdict
    if not eidetic:
        assert "said more than once" in retention.headline(report)
        assert not report.replays_source


async def test_the_verdict_follows_the_headline_figures_as_they_are_rounded() -> None:
    base = retention.RetentionReport.empty()
    shown = dataclasses.replace(
        base,
        messages_seen=100,
        eidetic_messages=100,
        discoverable_eidetic=Rate(4950, 10_000),  # 49.5% is shown as 50%: the verdict must agree
        copies_eidetic=Rate(0, 100),
    )
    assert "50% of the messages said only once" in retention.headline(shown)
    assert shown.verdict == "replays"
    below = dataclasses.replace(shown, discoverable_eidetic=Rate(4940, 10_000))
    assert "49% of the messages said only once" in retention.headline(below) and below.verdict == "some"


def test_wilson_intervals_are_the_textbook_ones() -> None:
    assert wilson(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    # The report's samples keep any rate within two points at 95%.
    low, high = wilson(retention.DEFAULT_SAMPLES // 2, retention.DEFAULT_SAMPLES)
    assert high - low <= 0.04


def test_the_card_says_the_verdict_three_figures_and_why_bytes_are_kept() -> None:
    report = dataclasses.replace(
        retention.RetentionReport.empty(),
        messages_seen=258_112,
        bytes_seen=12_500_000,
        bytes_kept=124_000_000,
        eidetic_messages=180_000,
        discoverable_eidetic=Rate(180, 2400, scale=0.9),
        copies_eidetic=Rate(24, 2400),
        long_runs_eidetic=Rate(120, 2400),
    )
    assert chart.card(report, "#general").lines() == [
        "#general",
        "This chain gives back little",
        "7% of the messages said only once can be given back from their first 2 words; "
        "outputs copy one 1% of the time.",
        "messages said once, given back: 7% (6%–8%)",
        "outputs copying a message said once: 1% (1%–1%)",
        "outputs with 8 words in a row from one: 5% (4%–6%)",
        "Kept 124.0 MB for 12.5 MB of text: counts per author (so forget is exact) and keyed "
        "fingerprints (so copies are refused), not messages.",
    ]
    png = chart.render_card(report, "#general")
    assert png.startswith(b"\x89PNG") and int.from_bytes(png[16:20], "big") == 600
    assert chart.alt_text(report, "#general").startswith("#general This chain gives back little")


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
        "transitions_back",
        "transition_blocks",
        "sqlite_autoindex_transition_blocks_1",
        "hubs",
        "sqlite_autoindex_hubs_1",
        "windows",
        "window_blocks",
        "sqlite_autoindex_window_blocks_1",
        "messages",
        "messages_by_fingerprint",
        "tokens",
        "sqlite_autoindex_tokens_1",
        "recent_messages",
        "recent_messages_by_time",
    )
    assert one.bytes_kept + two.bytes_kept == pytest.approx(sum(pages[t] for t in chain_tables), abs=4)
    assert one.bytes_kept == one.bytes_transitions + one.bytes_fingerprints + one.bytes_recent > 0
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


async def test_reports_run_one_at_a_time_and_a_second_ask_gets_the_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    brain = await learned_brain(tmp_path / "r.db", tiny_corpus())
    other = ChainKey(P, G, "other")
    await brain.learn(
        Message(P, G, "other", "alice", "o1", "another channel says this"), require_consent=False
    )
    running: list[ChainKey] = []
    made: list[ChainKey] = []
    report = retention.report

    async def watched(b: Brain, chain: ChainKey) -> retention.RetentionReport:
        running.append(chain)
        assert len(running) == 1, f"two reports at once: {running}"
        made.append(chain)
        try:
            return await report(b, chain)
        finally:
            running.remove(chain)

    monkeypatch.setattr(retention, "report", watched)
    try:
        first, again, elsewhere = await asyncio.gather(brain.stats(KEY), brain.stats(KEY), brain.stats(other))
        assert again is first and elsewhere.messages_seen == 1
        assert sorted(made, key=str) == sorted(
            [KEY, other], key=str
        )  # the second ask for KEY waited, then read the cache
    finally:
        await brain.close()


corpora = st.lists(
    st.lists(st.sampled_from(["a", "b", "c", "d", "e", "f", ".", "!"]), min_size=1, max_size=10).map(
        " ".join
    ),
    min_size=1,
    max_size=12,
)


def test_the_copy_guard_never_lets_a_copy_through(databases: Databases | None) -> None:
    # On both engines (tests/core/conftest.py); PostgreSQL's examples are fewer (each empties a database).
    @settings(
        max_examples=30 if databases is None else 12,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(corpora, st.integers(0, 1000), st.integers(3, 5))
    def check(corpus: list[str], seed: int, k: int) -> None:
        never_a_copy(databases, corpus, seed, k)

    check()


def never_a_copy(databases: Databases | None, corpus: list[str], seed: int, k: int) -> None:
    messages = [tuple(tokenize(t)) for t in corpus]
    windows = {m[i : i + k] for m in messages for i in range(len(m) - k + 1)}

    async def go() -> list[tuple[GenerateStatus, tuple[str, ...]]]:
        with tempfile.TemporaryDirectory() as tmp:
            async with places(Path(tmp), databases, 1) as (where,):
                brain = await learned_brain(where, corpus, run_length=k, **key_path(where, Path(tmp)))
                try:
                    rng = random.Random(seed)
                    return [
                        ((r := await brain.generate(KEY, rng=rng, tries=5)).status, r.tokens)
                        for _ in range(5)
                    ]
                finally:
                    await brain.close()

    for status, tokens in asyncio.run(go()):
        if status is GenerateStatus.OK:
            assert tokens not in set(messages)
            assert not any(tokens[i : i + k] in windows for i in range(len(tokens) - k + 1))
        else:
            assert status is GenerateStatus.COPY_GUARD


@pytest.mark.parametrize("guided", [False, True])
async def test_cutting_the_attacks_frontier_changes_none_of_its_candidates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, guided: bool
) -> None:
    # Order 2 over 300 words: the search spends its whole expansion budget, so a wrong cut shows.
    brain = await learned_brain(tmp_path / "r.db", varied_corpus(1500, words=300), order=2, run_length=5)
    try:
        info = await brain.store.find_chain(KEY)
        assert info is not None
        monkeypatch.setattr(retention, "PRUNE_SLACK", 10**9)
        whole = await retention.extraction_candidates(brain, info, 10, guided=guided)
        cuts = []
        nsmallest = heapq.nsmallest

        def counted(n: int, items: list[Any]) -> list[Any]:
            cuts.append(len(items) - n)
            return nsmallest(n, items)

        monkeypatch.setattr(retention, "PRUNE_SLACK", 0)
        monkeypatch.setattr(heapq, "nsmallest", counted)
        cut = await retention.extraction_candidates(brain, info, 10, guided=guided)
    finally:
        await brain.close()
    assert cuts and sum(cuts) > 0  # the frontier was cut ...
    assert whole and cut == whole  # ... and the same candidates came out, in the same order
