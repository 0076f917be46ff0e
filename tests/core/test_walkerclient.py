"""The walker's client: the report's samples asked in short parts, so that a message never waits for a whole report."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest

from bot.core import memorisation, walkerclient
from bot.core.memorisation import Thresholds
from bot.core.versions import Version
from bot.core.walker import Walker
from bot.core.walkercalls import Attempts, Call, GreedyHits, SampleOutputs
from bot.core.walkerhost import WalkerHost
from tests.core.test_retention import KEY, learned_brain, varied_corpus

Sent = list[Call[Any]]


def record(monkeypatch: pytest.MonkeyPatch, asked: asyncio.Event | None = None) -> Sent:
    """Every call the walker is asked to run, in order; asked is set once a sample's first part is sent."""
    sent: Sent = []
    run = WalkerHost.run

    async def recording(host: WalkerHost, version: Version, call: Call[Any]) -> Any:
        sent.append(call)
        if asked is not None and isinstance(call, SampleOutputs):
            asked.set()
        return await run(host, version, call)

    monkeypatch.setattr(WalkerHost, "run", recording)
    return sent


async def test_the_report_sample_asked_in_parts_is_the_sample_of_one_walk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    brain = await learned_brain(tmp_path / "parts.db", varied_corpus(600))
    monkeypatch.setattr(walkerclient, "REPORT_PART_SECONDS", 0.0)  # one walk a part
    monkeypatch.setattr(walkerclient, "PREFIXES_PER_PART", 7)
    try:
        info = await brain.store.find_chain(KEY)
        assert info is not None
        samples, seed, thresholds = 150, 11, Thresholds(times=2, authors=2)
        sent = record(monkeypatch)
        outputs = await brain.store.walker.sample_outputs(info, samples, seed, thresholds)
        prefixes = await brain.store.walker.sample_prefixes(info, samples, seed)
        walker = Walker(tmp_path / "parts.db", brain.store.key, 1000)  # the same reads, in one go
        try:
            whole = memorisation.sample_outputs(walker, info, samples, random.Random(seed), thresholds)
            total, picked = memorisation.pick_openings(walker, info, samples, seed)
            found, walked = memorisation.greedy_hits(walker, info, picked)
        finally:
            walker.close()
    finally:
        await brain.close()
    assert outputs == whole
    assert prefixes == (total, len(picked), found)
    assert whole.copies.all > 0 and found, "the sample found copies: the parts' sums were tested"
    assert walked == len(picked) > 7
    parts = [call.samples for call in sent if isinstance(call, SampleOutputs)]
    greedy = [len(call.prefixes) for call in sent if isinstance(call, GreedyHits)]
    assert parts == list(range(samples, 0, -1))  # each asked for what was left, and walked one
    assert greedy == [min(7, len(picked) - i) for i in range(len(picked))]


async def test_a_message_asked_for_during_a_report_sample_is_answered_before_the_sample_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    brain = await learned_brain(tmp_path / "busy.db", varied_corpus(600), walker="process")
    asked = asyncio.Event()
    sent = record(monkeypatch, asked)
    try:
        info = await brain.store.find_chain(KEY)
        assert info is not None
        sample = asyncio.create_task(brain.store.walker.sample_outputs(info, 5_000, 5, Thresholds()))
        await asked.wait()  # the walker is walking the sample's first part
        generated = await brain.generate(KEY, rng=random.Random(3))
        assert generated.ok
        assert not sample.done(), "the message waited for the whole sample"
        await sample
    finally:
        await brain.close()
    generation = next(i for i, call in enumerate(sent) if isinstance(call, Attempts))
    assert 0 < generation < len(sent) - 1, "asked between the sample's parts"
