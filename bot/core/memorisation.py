"""Memorisation measured on the chain as stored (runs on the walker, next to the chain's reads).

Two measures from the literature, on learned messages told apart by how often they were said:

How often a message was said counts it up to letter case, compatibility forms and trailing
punctuation on chains of fingerprint scheme 2 (bot.core.fingerprints), exactly before. An output
copies a learned message when it equals one up to that normalisation (what the copy guard
refuses); a message is given back (discoverable, extracted) when it is reproduced exactly.

- a message is *1-eidetic* when it was learned once (Carlini et al. 2021, k-eidetic with k = 1), and
  *common* when it was learned at least `Thresholds.times` times or from `Thresholds.authors` authors;
  repeating a common message ("yeah", "good morning") is saying what many said, not memorising anyone;
- a learned message is *discoverable* when the chain's greedy walk (the most likely successor at
  each step, ties to the smaller token id) from its first n tokens (n = the chain's order)
  reproduces the rest of it exactly (Carlini et al. 2022).

No message text is stored, so the learned messages cannot be listed. Each opening prefix p has one
greedy continuation g(p), and a message m is discoverable exactly when g(prefix(m)) = m, so the
discoverable messages are the continuations g(p) that are learned messages. They are counted over
a uniform sample of the distinct prefixes (all of them when there are few), scaled by the number
of prefixes, and divided by the number of distinct learned messages longer than n tokens.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Container, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from bot.core import chain as chainmod
from bot.core import fingerprints
from bot.core.models import ChainInfo

if TYPE_CHECKING:
    from bot.core.walker import Walker

log = logging.getLogger(__name__)

COMMON_TIMES = 5  # a message said this often is common ...
COMMON_AUTHORS = 3  # ... and so is one said by this many authors

Prefix = tuple[int, ...]  # an opening prefix's token ids


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When a learned message (or K-run) counts as common."""

    times: int = COMMON_TIMES
    authors: int = COMMON_AUTHORS

    def common(self, times: int, authors: int) -> bool:
        """True for a message learned often enough, or from enough authors, to be common."""
        return times >= self.times or authors >= self.authors


@dataclass(frozen=True, slots=True)
class Split:
    """A count in all, and of it what concerned 1-eidetic and common messages."""

    all: int = 0
    eidetic: int = 0
    common: int = 0

    def add(self, times: int, authors: int, thresholds: Thresholds) -> Split:
        """This count plus one unit of a message learned `times` times by `authors` authors."""
        return Split(
            self.all + 1,
            self.eidetic + (times == 1),
            self.common + thresholds.common(times, authors),
        )

    def __add__(self, other: Split) -> Split:
        """Two counts together (a sample taken in parts)."""
        return Split(self.all + other.all, self.eidetic + other.eidetic, self.common + other.common)


@dataclass(frozen=True, slots=True)
class OutputSample:
    """Of `samples` outputs walked with the guard off: copies of a learned message, and long runs."""

    samples: int
    copies: Split
    runs: Split

    def __add__(self, other: OutputSample) -> OutputSample:
        """Two parts of a sample together."""
        return OutputSample(self.samples + other.samples, self.copies + other.copies, self.runs + other.runs)


@dataclass(frozen=True, slots=True)
class PrefixSample:
    """Of `sampled` of the chain's `prefixes` opening prefixes, those whose greedy walk is learned."""

    prefixes: int
    sampled: int
    hits: Split


def said(walker: Walker, chain: ChainInfo, tokens: Sequence[str]) -> tuple[int, int] | None:
    """(times, authors) of the learned message these tokens are (up to the chain scheme's
    normalisation, as the guard compares), or None."""
    whole = walker.fingerprints.whole(tokens, chain.scheme)
    if chain.scheme != fingerprints.EXACT:  # normalised wholes are kept among the chain's windows
        return walker.window_multiplicity(chain.id, [whole]).get(whole)
    rows = walker.query("message_multiplicity", (chain.id, walker.ids([whole])))
    return (int(rows[0][1]), int(rows[0][2])) if rows else None


#: A greedy walk whose form was learned: (its exact fingerprint, times and authors of its form).
Candidate = tuple[int, int, int]


def exact_hits(
    candidates: Sequence[Candidate], learned: Container[int] | None, thresholds: Thresholds
) -> Split:
    """Of greedy walks whose form was learned, those learned exactly (their exact fingerprint in
    learned; None: all, as scheme 1 counts by exact fingerprint), by how often their form was said."""
    hits = Split()
    for fp, times, authors in candidates:
        if learned is None or fp in learned:
            hits = hits.add(times, authors, thresholds)
    return hits


def sample_outputs(
    walker: Walker,
    chain: ChainInfo,
    samples: int,
    rng: random.Random,
    thresholds: Thresholds,
    until: float = math.inf,
) -> OutputSample:
    """Walk up to `samples` outputs (guard off, drawing from rng) and classify the learned messages
    and runs they copy; after the first, none is begun once time.monotonic() passes until.

    A long run is of a 1-eidetic message when one of its K-windows was learned exactly once, and
    common when every window it copies is common.
    """
    copies, runs = Split(), Split()
    walked = 0
    while walked < samples and not (walked and time.monotonic() >= until):
        (tokens,) = walker.walks(chain, 1, rng)
        walked += 1
        found = said(walker, chain, tokens)
        if found is not None:
            copies = copies.add(*found, thresholds)
        _, windows = walker.fingerprints.guarded(tokens, chain.run_length, chain.scheme)
        matched = list(walker.window_multiplicity(chain.id, windows).values())
        if matched:
            once = any(times == 1 for times, _ in matched)
            common = all(thresholds.common(times, authors) for times, authors in matched)
            runs = Split(runs.all + 1, runs.eidetic + once, runs.common + common)
    return OutputSample(walked, copies, runs)


def greedy(walker: Walker, chain: ChainInfo, prefix: tuple[int, ...], cache: dict[bytes, int]) -> list[int]:
    """The greedy walk from a prefix: the most likely successor at each step, ties to the smaller id."""
    n = chain.order
    out = list(prefix)
    ctx = tuple(prefix[-n:])
    for _ in range(chainmod.MAX_WALK):
        key = chainmod.pack(ctx)
        best = cache.get(key)
        if best is None:
            ids, cum = walker.successors(chain.id, key)
            if not ids:
                break
            counts = [cum[0]] + [cum[i] - cum[i - 1] for i in range(1, len(cum))]
            top = max(counts)
            best = cache[key] = ids[counts.index(top)]  # ids ascend: the first of the tied is the smallest
        if best == chainmod.END:
            break
        out.append(best)
        ctx = (*ctx, best)[-n:]
    return out


def pick_openings(walker: Walker, chain: ChainInfo, samples: int, seed: int) -> tuple[int, list[Prefix]]:
    """A uniform sample (from seed) of the chain's distinct opening prefixes: (how many there are, the sample)."""
    n = chain.order
    parts: list[np.ndarray] = []

    def visit(chunk: np.ndarray) -> None:
        keep = chunk[:, n] > chainmod.END
        if n > 1:
            keep &= chunk[:, 1] != chainmod.BEGIN
        pairs = chunk[keep][:, 1 : n + 1]  # (t1 .. t(n-1), next) of each entry, sorted by key
        change = np.ones(len(pairs), dtype=bool)
        change[1:] = np.any(pairs[1:] != pairs[:-1], axis=1)
        parts.append(pairs[change].astype(np.int32))  # each once: whole contexts stay in one chunk

    walker.scan(chain, [chainmod.BEGIN], visit)
    openings = np.concatenate(parts) if parts else np.empty((0, n), dtype=np.int32)
    total = len(openings)
    picked = sorted(random.Random(seed).sample(range(total), min(samples, total)))
    return total, [tuple(openings[index].tolist()) for index in picked]


def greedy_hits(
    walker: Walker, chain: ChainInfo, prefixes: Sequence[Prefix], until: float = math.inf
) -> tuple[list[Candidate], int]:
    """Greedy-walk the prefixes in order, none begun after the first once time.monotonic() passes
    until: (the walks whose form was learned, how many were walked); exact_hits keeps the exact ones."""
    cache: dict[bytes, int] = {}
    walked = 0
    found: list[Candidate] = []
    for prefix in prefixes:
        if walked and time.monotonic() >= until:
            break
        walked += 1
        path = greedy(walker, chain, prefix, cache)
        if len(path) <= chain.order:
            continue  # the walk ends at once: no rest to reproduce
        tokens = walker.texts(path)
        form = said(walker, chain, tokens)
        if form is not None:
            found.append((walker.fingerprints.message(tokens), *form))
    return found, walked
