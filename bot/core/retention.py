"""The retention report: how much of its source a chain keeps, measured.

Every figure has one definition (see DESIGN.md, "The retention report"); the tests check each
against an oracle computed from the raw corpus.
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import itertools
import json
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.core import chain as chainmod
from bot.core.models import ChainInfo, ChainKey

if TYPE_CHECKING:
    from bot.core.brain import Brain

log = logging.getLogger(__name__)

DEFAULT_SAMPLES = 200
DEFAULT_SEED = 0
DEFAULT_BUDGET = 1000  # candidate messages the extraction attack may produce
BRANCHING = 32  # most likely successors the attack follows from each state
EXPANSION_FACTOR = 20  # states the attack may expand per candidate of budget

BYTES_METHOD = (
    "pages of each table and index (SQLite dbstat), shared among chains in proportion to their rows"
)

#: The JSON keys of `markovbot stats --json`, in order.
JSON_KEYS = (
    "messages_seen",
    "tokens_seen",
    "chars_seen",
    "vocabulary",
    "states",
    "transitions",
    "bytes_kept",
    "kept_ratio",
    "forced_share",
    "entropy_bits",
    "copy_rate",
    "long_run_rate",
    "extraction_rate",
    "samples",
    "run_length",
)


@dataclass(frozen=True)
class RetentionReport:
    """Every figure of /markov stats for one chain."""

    messages_seen: int
    tokens_seen: int
    chars_seen: int
    bytes_seen: int
    vocabulary: int
    states: int
    transitions: int
    bytes_kept: int
    bytes_transitions: int
    bytes_fingerprints: int
    kept_ratio: float
    forced_share: float
    entropy_bits: float
    copy_rate: float
    long_run_rate: float
    extraction_rate: float
    samples: int
    run_length: int
    order: int
    seed: int
    extraction_budget: int
    extracted: int

    def as_json(self) -> dict[str, Any]:
        """The report as a JSON-ready dict: the documented keys first, then the details."""
        data = dataclasses.asdict(self)
        ordered = {key: data.pop(key) for key in JSON_KEYS}
        ordered.update(data)
        return ordered

    def to_json(self) -> str:
        """The report as a JSON document."""
        return json.dumps(self.as_json(), indent=2)

    @classmethod
    def empty(cls, run_length: int = 8, order: int = 2) -> RetentionReport:
        """The report of a chain that learned nothing."""
        return cls(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0, run_length, order, 0, 0, 0)

    @property
    def replays_source(self) -> bool:
        """True when the chain mostly replays what it learned."""
        return self.forced_share >= 0.5 or self.copy_rate >= 0.2 or self.extraction_rate >= 0.2


def human_bytes(n: float) -> str:
    """1234567 -> '1.2 MB'."""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def summary(r: RetentionReport) -> str:
    """The plain-language verdict that comes before the figures."""
    if not r.messages_seen:
        return "I haven't learned anything in this channel yet, so I keep nothing from it."
    kept = (
        f"Kept {human_bytes(r.bytes_kept)} for {human_bytes(r.bytes_seen)} seen "
        f"({r.kept_ratio:.2f} bytes kept per byte seen, counting the counts, fingerprints and recent messages' token ids)."
    )
    forced = f"{r.forced_share:.0%} of states have a single successor"
    copies = (
        f"{r.copy_rate:.0%} of {r.samples} sampled outputs were copies of a learned message, "
        f"{r.long_run_rate:.0%} repeated a run of {r.run_length} words from one"
    )
    extraction = (
        f"an extraction attack ({r.extraction_budget:,} most likely candidates) recovered "
        f"{r.extraction_rate:.0%} of the learned messages"
    )
    if r.replays_source:
        verdict = (
            f"{forced}, so this chain mostly replays its source: {copies}, and {extraction}. "
            "It is too small or too repetitive to hide what it learned; the copy guard keeps "
            "those copies from being posted."
        )
    else:
        verdict = (
            f"{forced}; {copies}, and {extraction}. This chain is a table of word statistics, "
            "not a store of messages."
        )
    return f"{kept} {verdict[0].upper()}{verdict[1:]}"


@dataclass(frozen=True)
class _Sizes:
    """What the byte shares need besides the chain's transition rows and vocabulary."""

    pages: dict[str, int]  # bytes of each table and index
    totals: tuple[int, int, int, int]  # rows of transitions, windows, messages, tokens (all chains)
    window_rows: int
    message_rows: int
    recent_rows: tuple[int, int] = (0, 0)  # recent_messages rows of the chain, of all chains


async def _sizes(brain: Brain, info: ChainInfo) -> _Sizes:
    store = brain.store
    pages = {str(name): int(size) for name, size in await store.named("table_bytes")}
    totals = (await store.named("table_rows"))[0]
    (window_rows,) = (await store.named("rows_windows", info.id))[0]
    (message_rows,) = (await store.named("chain_counters", info.id))[0][:1]
    (recent, recent_total) = (await store.named("rows_recent", info.id))[0]
    return _Sizes(
        pages,
        (totals[0], totals[1], totals[2], totals[3]),
        int(window_rows),
        int(message_rows),
        (int(recent), int(recent_total)),
    )


def _bytes_kept(sizes: _Sizes, vocabulary: int, transition_rows: int) -> tuple[int, int]:
    """(transition bytes, fingerprint bytes) of a chain; see BYTES_METHOD.

    The fingerprint side also counts the chain's recent messages (token ids kept for the edit window).
    """
    total_trans, total_windows, total_messages, total_tokens = sizes.totals

    def share(names: list[str], rows: int, total: int) -> float:
        if not total:
            return 0.0
        pages = sum(sizes.pages.get(name, 0) for name in names)
        return pages * rows / total

    token_tables = [
        name for name in sizes.pages if name == "tokens" or name.startswith("sqlite_autoindex_tokens")
    ]
    message_tables = ["messages", "messages_by_author", "messages_by_fingerprint"]
    transition_tables = ["transitions", "transitions_into", "hubs", "sqlite_autoindex_hubs_1"]
    kept_transitions = share(transition_tables, transition_rows, total_trans) + share(
        token_tables, vocabulary, total_tokens
    )
    recent_tables = ["recent_messages", "recent_messages_by_author", "recent_messages_by_time"]
    kept_fingerprints = (
        share(["windows"], sizes.window_rows, total_windows)
        + share(message_tables, sizes.message_rows, total_messages)
        + share(recent_tables, *sizes.recent_rows)
    )
    return round(kept_transitions), round(kept_fingerprints)


async def extraction_candidates(brain: Brain, info: ChainInfo, budget: int) -> list[tuple[int, ...]]:
    """The attack: best-first search for the most likely complete messages from BEGIN.

    Expands states in order of path probability, follows at most BRANCHING successors per
    state, and stops after `budget` complete candidates or budget * EXPANSION_FACTOR expansions.
    """
    order = info.order
    branches: dict[tuple[int, ...], list[tuple[float, int]]] = {}

    async def best(ctx: tuple[int, ...]) -> list[tuple[float, int]]:
        # (-log probability, token) of the most likely successors; a state is often reached again.
        if ctx not in branches:
            rows = await brain.store.named("top_successors", info.id, chainmod.pack(ctx), BRANCHING)
            branches[ctx] = [(-math.log(int(k) / int(total)), int(token)) for token, k, total in rows]
        return branches[ctx]

    tie = itertools.count()
    heap: list[tuple[float, int, tuple[int, ...], tuple[int, ...]]] = [
        (0.0, next(tie), (chainmod.BEGIN,) * order, ())
    ]
    found: list[tuple[int, ...]] = []
    expansions = 0
    while heap and len(found) < budget and expansions < budget * EXPANSION_FACTOR:
        cost, _, ctx, path = heapq.heappop(heap)
        if path and path[-1] == chainmod.END:
            found.append(path[:-1])
            continue
        expansions += 1
        for step, token in await best(ctx):
            if token != chainmod.END and len(path) >= chainmod.MAX_WALK:
                continue
            heapq.heappush(heap, (cost + step, next(tie), (*ctx, token)[-order:], (*path, token)))
    return found


async def _extraction(brain: Brain, info: ChainInfo, budget: int) -> int:
    """How many learned messages the attack reproduces exactly."""
    candidates = await extraction_candidates(brain, info, budget)
    fingerprints = [brain.fingerprints.message(await brain.store.texts(c)) for c in candidates]
    matched = 0
    for start in range(0, len(fingerprints), 500):
        chunk = json.dumps(fingerprints[start : start + 500])
        matched += int((await brain.store.named("messages_with_fingerprints", info.id, chunk))[0][0])
    return matched


async def report(
    brain: Brain,
    chain: ChainKey,
    *,
    samples: int = DEFAULT_SAMPLES,
    seed: int = DEFAULT_SEED,
    budget: int = DEFAULT_BUDGET,
) -> RetentionReport:
    """Measure every figure of the retention report for one chain."""
    store = brain.store
    info = await store.find_chain(chain)
    if info is None:
        settings = await store.settings(chain.platform, chain.guild)
        return RetentionReport.empty(settings.run_length, settings.order)
    messages, tokens, chars, size = await store.chain_counters(info.id)

    async def on_reader() -> tuple[_Sizes, int, int, int, int]:
        # While the two shape scans run on a connection of their own.
        sizes = await _sizes(brain, info)
        (vocabulary,) = (await store.named("report_vocabulary", info.id))[0]
        copies = long_runs = extracted = 0
        if messages:
            copies, long_runs = await store.on_walker("sample", info.id, info, samples, seed)
            extracted = await _extraction(brain, info, budget)
        return sizes, int(vocabulary), copies, long_runs, extracted

    shape, (sizes, vocabulary, copies, long_runs, extracted) = await asyncio.gather(
        store.report_shape(info.id), on_reader()
    )
    rows, states, transitions, forced, total, ctx_log, pair_log = shape
    entropy = (ctx_log - pair_log) / total if total else 0.0
    kept_transitions, kept_fingerprints = _bytes_kept(sizes, vocabulary, rows)
    bytes_kept = kept_transitions + kept_fingerprints
    return RetentionReport(
        messages_seen=messages,
        tokens_seen=tokens,
        chars_seen=chars,
        bytes_seen=size,
        vocabulary=vocabulary,
        states=states,
        transitions=transitions,
        bytes_kept=bytes_kept,
        bytes_transitions=kept_transitions,
        bytes_fingerprints=kept_fingerprints,
        kept_ratio=bytes_kept / size if size else 0.0,
        forced_share=forced / total if total else 0.0,
        entropy_bits=max(0.0, float(entropy)),
        copy_rate=copies / samples if messages and samples else 0.0,
        long_run_rate=long_runs / samples if messages and samples else 0.0,
        extraction_rate=extracted / messages if messages else 0.0,
        samples=samples if messages else 0,
        run_length=info.run_length,
        order=info.order,
        seed=seed,
        extraction_budget=budget,
        extracted=extracted,
    )
