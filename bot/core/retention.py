"""The retention report: how much of its source a chain keeps, measured.

Every figure has one definition (see DESIGN.md, "The retention report"); the tests check each
against an oracle computed from the raw corpus.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import heapq
import itertools
import json
import logging
import math
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.core import chain as chainmod
from bot.core import memorisation
from bot.core.fingerprints import EXACT
from bot.core.memorisation import (
    COMMON_AUTHORS,
    COMMON_TIMES,
    OutputSample,
    PrefixSample,
    Split,
    Thresholds,
)
from bot.core.models import ChainInfo, ChainKey
from bot.core.rates import Rate
from bot.core.reports import BlockBytes, TableRows

if TYPE_CHECKING:
    from bot.core.brain import Brain

log = logging.getLogger(__name__)

DEFAULT_SAMPLES = 2400  # outputs sampled: every rate's 95% interval is then within ±2 points
DEFAULT_PREFIXES = 2400  # opening prefixes greedy-walked for the discoverable rate
DEFAULT_BUDGET = 1000  # candidate messages the extraction attack may produce
BRANCHING = 32  # most likely successors the attack follows from each state
EXPANSION_FACTOR = 20  # states the attack may expand per candidate of budget
PRUNE_SLACK = 4096  # states the attack's frontier holds past what it can still pop before it is cut
REPLAYS = 0.5  # a chain that gives back this share of messages said once replays its source ...
COPIES_REPLAY = 0.2  # ... as does one whose outputs copy one this often
SOME = 0.1  # below these, a chain gives back little of what any one person said
COPIES_SOME = 0.05

BYTES_METHOD = (
    "pages of each table and index (SQLite dbstat), shared among chains in proportion to their rows "
    "(to their bytes, for transition blocks)"
)

NONE = Rate(0, 0)


@dataclass(frozen=True)
class RetentionReport:
    """Every figure of /markov stats for one chain."""

    messages_seen: int
    tokens_seen: int
    chars_seen: int
    bytes_seen: int
    distinct_messages: int  # distinct learned messages (by fingerprint)
    eidetic_messages: int  # of them, learned once (1-eidetic)
    common_messages: int  # of them, learned often or from several authors
    vocabulary: int
    states: int
    transitions: int
    bytes_kept: int
    bytes_transitions: int
    bytes_fingerprints: int
    bytes_recent: int  # recent messages kept (encrypted) for the edit window
    kept_ratio: float
    forced_share: float
    entropy_bits: float
    discoverable: Rate  # learned messages the greedy walk gives back from their first n tokens
    discoverable_eidetic: Rate
    discoverable_common: Rate
    copies: Rate  # sampled outputs equal to a learned message
    copies_eidetic: Rate
    copies_common: Rate
    long_runs: Rate  # sampled outputs holding a run of K tokens from one learned message
    long_runs_eidetic: Rate
    long_runs_common: Rate
    extracted: Rate  # learned messages the unprompted best-first attack reproduces
    extracted_eidetic: Rate
    extracted_with_key: Rate  # of the messages said once, what a search the key guides reproduces
    extraction_budget: int
    prefixes: int  # distinct opening prefixes of the chain
    samples: int
    run_length: int
    order: int
    seed: int
    common_times: int = COMMON_TIMES
    common_authors: int = COMMON_AUTHORS

    @property
    def verdict(self) -> str:
        """'replays', 'some' or 'little': from the two headline figures, rounded as they are shown."""
        given_back = round(self.discoverable_eidetic.value * 100) / 100
        copied = round(self.copies_eidetic.value * 100) / 100
        if given_back >= REPLAYS or copied >= COPIES_REPLAY:
            return "replays"
        if given_back >= SOME or copied >= COPIES_SOME:
            return "some"
        return "little"

    @property
    def replays_source(self) -> bool:
        """True when the chain gives back much of what was said only once."""
        return bool(self.messages_seen) and self.verdict == "replays"

    def as_json(self) -> dict[str, Any]:
        """The report as a JSON-ready dict, in the documented order."""
        data: dict[str, Any] = {}
        for key in JSON_KEYS:
            value = getattr(self, key)
            data[key] = value.as_json() if isinstance(value, Rate) else value
        return data

    def to_json(self) -> str:
        """The report as a JSON document."""
        return json.dumps(self.as_json(), indent=2)

    @classmethod
    def empty(cls, run_length: int = 8, order: int = 2) -> RetentionReport:
        """The report of a chain that learned nothing."""
        fields: dict[str, Any] = {f.name: 0 for f in dataclasses.fields(cls)}
        fields.update(dict.fromkeys(RATE_FIELDS, NONE))
        fields.update(run_length=run_length, order=order, common_times=COMMON_TIMES)
        fields.update(common_authors=COMMON_AUTHORS)
        return cls(**fields)


#: The report's rates (each with its sample and interval).
RATE_FIELDS = tuple(f.name for f in dataclasses.fields(RetentionReport) if f.type == "Rate")
#: The JSON keys of `markovbot stats --json`, in order: every field, then the verdict.
JSON_KEYS = (*(f.name for f in dataclasses.fields(RetentionReport)), "verdict")


def human_bytes(n: float) -> str:
    """1234567 -> '1.2 MB'."""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def headline(r: RetentionReport) -> str:
    """The one sentence the card and every reply start with: the messages only one person said."""
    if not r.messages_seen:
        return "I haven't learned anything in this channel yet, so I keep nothing from it."
    if not r.eidetic_messages:
        return (
            "Every message I learned here was said more than once, so none is anyone's own to give "
            f"back; outputs copy a learned message {r.copies.value:.0%} of the time."
        )
    words = "word" if r.order == 1 else f"{r.order} words"
    return (
        f"{r.discoverable_eidetic.value:.0%} of the messages said only once can be given back from "
        f"their first {words}; outputs copy one {r.copies_eidetic.value:.0%} of the time."
    )


def summary(r: RetentionReport) -> str:
    """The headline, the verdict that follows from it, and why the bytes kept are what they are."""
    if not r.messages_seen:
        return headline(r)
    if r.verdict == "replays":
        verdict = (
            "This chain replays much of what was said here: it is too small or too repetitive to "
            "hide it. The copy guard keeps those copies from being posted."
        )
    elif r.verdict == "some":
        verdict = (
            "This chain gives back some of what people said only once; the copy guard refuses those copies."
        )
    else:
        verdict = "This chain gives back little of what any one person said: it keeps word statistics."
    common = (
        f" Messages many people said (at least {r.common_times} times or by {r.common_authors} "
        f"people) come back {r.discoverable_common.value:.0%} of the time: that is repeating "
        "what many said, not memorising anyone."
        if r.common_messages
        else ""
    )
    recent = (
        ", and recent messages' token ids, encrypted, for the edit window (so that a deleted message "
        "is unlearned even after a restart)"
        if r.bytes_recent
        else ""
    )
    kept = (
        f" It keeps {human_bytes(r.bytes_kept)} for {human_bytes(r.bytes_seen)} of text seen: "
        "counts per author (so that /markov forget is exact), keyed fingerprints (so that the "
        f"copy guard can refuse copies){recent}."
    )
    return f"{headline(r)} {verdict}{common}{kept}"


@dataclass(frozen=True)
class _Sizes:
    """What the byte shares need besides the chain's transition rows and vocabulary."""

    pages: dict[str, int]  # bytes of each table and index
    totals: TableRows  # rows of transitions, windows, messages, tokens (all chains)
    window_rows: int
    message_rows: int
    recent_rows: tuple[int, int] = (0, 0)  # recent_messages rows of the chain, of all chains
    delta_rows: int = 0  # the chain's transition rows not yet merged into blocks
    block_bytes: BlockBytes = field(default_factory=lambda: BlockBytes(0, 0))  # the chain's, every chain's


async def _sizes(brain: Brain, info: ChainInfo) -> _Sizes:
    store = brain.store
    message_rows, _, _, _ = await store.chain_counters(info.id)
    return _Sizes(
        await store.reports.table_bytes(),
        await store.reports.table_rows(),
        await store.reports.window_rows(info.id),
        message_rows,
        await store.reports.recent_rows(info.id),
        await store.reports.delta_rows(info.id),
        await store.reports.block_bytes(info.id),
    )


def _bytes_kept(sizes: _Sizes, vocabulary: int) -> tuple[int, int, int]:
    """(transition, fingerprint, recent message) bytes of a chain; see BYTES_METHOD."""
    total_trans, total_windows, total_messages, total_tokens = sizes.totals

    def share(names: list[str], rows: int, total: int) -> float:
        if not total:
            return 0.0
        pages = sum(sizes.pages.get(name, 0) for name in names)
        return pages * rows / total

    token_tables = [
        name for name in sizes.pages if name == "tokens" or name.startswith("sqlite_autoindex_tokens")
    ]
    message_tables = ["messages", "messages_by_fingerprint"]
    delta_tables = ["transitions", "transitions_back", "hubs", "sqlite_autoindex_hubs_1"]
    block_tables = ["transition_blocks", "sqlite_autoindex_transition_blocks_1"]
    # Tables without a row of any chain (the delta right after a merge) go with the blocks, and
    # the other way round: every page is some chain's.
    by_delta = (sizes.delta_rows, total_trans) if total_trans else sizes.block_bytes
    by_blocks = sizes.block_bytes if sizes.block_bytes.every else (sizes.delta_rows, total_trans)
    kept_transitions = (
        share(delta_tables, *by_delta)
        + share(block_tables, *by_blocks)
        + share(token_tables, vocabulary, total_tokens)
    )
    recent_tables = ["recent_messages", "recent_messages_by_time"]
    window_tables = ["windows", "window_blocks", "sqlite_autoindex_window_blocks_1"]
    kept_fingerprints = share(window_tables, sizes.window_rows, total_windows) + share(
        message_tables, sizes.message_rows, total_messages
    )
    kept_recent = share(recent_tables, *sizes.recent_rows)
    return round(kept_transitions), round(kept_fingerprints), round(kept_recent)


async def extraction_candidates(
    brain: Brain, info: ChainInfo, budget: int, *, guided: bool = False
) -> list[tuple[int, ...]]:
    """The attack: best-first search for the most likely complete messages from BEGIN.

    Expands states in order of path probability, follows at most BRANCHING successors per
    state, and stops after `budget` complete candidates or budget * EXPANSION_FACTOR expansions.
    guided: the attacker holds the database and its key, and follows a path only while its last
    K tokens are a learned K-run (the window fingerprints confirm it), so the budget goes to
    paths that are parts of learned messages.
    """
    order, k = info.order, info.run_length
    await brain.store.reports.refresh(info.id)  # nothing read before a forget answers after it
    branches: dict[bytes, tuple[array[float], array[int]]] = {}  # packed: a few MB for 20,000 states
    runs: dict[tuple[int, ...], bool] = {}

    async def learned_run(run: tuple[int, ...]) -> bool:
        if run not in runs:
            _, windows = brain.fingerprints.guarded(await brain.store.texts(run), k, info.scheme)
            runs[run] = await brain.store.reports.windows_present(info.id, windows)
        return runs[run]

    async def best(ctx: tuple[int, ...]) -> Iterable[tuple[float, int]]:
        # (-log probability, token) of the most likely successors; a state is often reached again.
        packed = chainmod.pack(ctx)
        if packed not in branches:
            rows = await brain.store.reports.top_successors(info.id, packed, BRANCHING)
            branches[packed] = (
                array("d", [-math.log(k / total) for _, k, total in rows]),
                array("q", [token for token, _, _ in rows]),
            )
        return zip(*branches[packed], strict=True)

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
            longer = (*path, token)
            if guided and token != chainmod.END and len(longer) >= k and not await learned_run(longer[-k:]):
                continue
            heapq.heappush(heap, (cost + step, next(tie), (*ctx, token)[-order:], longer))
        # At most `left` more states are ever popped, so the rest (ties are broken by the counter:
        # a total order) can never be: dropping them keeps memory bounded and the result the same.
        left = budget - len(found) + budget * EXPANSION_FACTOR - expansions
        if len(heap) > 2 * left + PRUNE_SLACK:
            heap = heapq.nsmallest(left, heap)  # sorted, so already a heap
    return found


async def _extraction(
    brain: Brain, info: ChainInfo, budget: int, thresholds: Thresholds, *, guided: bool = False
) -> Split:
    """The distinct learned messages the attack reproduces exactly, by how often they were said."""
    candidates = await extraction_candidates(brain, info, budget, guided=guided)
    texts = [await brain.store.texts(c) for c in candidates]
    reports = brain.store.reports
    exact = sorted({brain.fingerprints.message(t) for t in texts})
    found = Split()
    if info.scheme == EXACT:
        for start in range(0, len(exact), 500):
            chunk = exact[start : start + 500]
            for said in await reports.message_multiplicity(info.id, chunk, normalised=False):
                found = found.add(said.times, said.authors, thresholds)
        return found
    # Scheme 2: how often each was said is its form's count, kept among the windows.
    forms = {brain.fingerprints.message(t): brain.fingerprints.whole(t, info.scheme) for t in texts}
    learned = sorted(await reports.learned_fingerprints(info.id, exact))
    wanted = sorted({forms[fp] for fp in learned})
    by_form = {m.fingerprint: m for m in await reports.message_multiplicity(info.id, wanted, normalised=True)}
    for fingerprint in learned:
        form = by_form.get(forms[fingerprint])
        if form is not None:
            found = found.add(form.times, form.authors, thresholds)
    return found


@dataclass(frozen=True)
class _Messages:
    """Distinct learned messages: all, and those longer than the order (which can be discovered)."""

    distinct: Split
    longer: Split


async def _messages(brain: Brain, info: ChainInfo, thresholds: Thresholds) -> _Messages:
    n = await brain.store.reports.learned_messages(
        info.id,
        normalised=info.scheme != EXACT,
        times=thresholds.times,
        authors=thresholds.authors,
        order=info.order,
    )
    return _Messages(
        Split(n.distinct, n.eidetic, n.common), Split(n.longer, n.longer_eidetic, n.longer_common)
    )


def _discoverable(sample: PrefixSample, longer: Split) -> tuple[Rate, Rate, Rate]:
    """The discoverable rates over the messages: sampled prefixes' hits scaled to all (all walked: hits)."""
    exact = sample.sampled == sample.prefixes

    def rate(hits: int, messages: int) -> Rate:
        if not messages:
            return NONE
        if exact:  # every prefix walked: of the messages that could be given back, those that were
            return Rate(hits, messages, exact=True)
        return Rate(hits, sample.sampled, sample.prefixes / messages)

    return (
        rate(sample.hits.all, longer.all),
        rate(sample.hits.eidetic, longer.eidetic),
        rate(sample.hits.common, longer.common),
    )


def state_seed(info: ChainInfo, counters: tuple[int, int, int, int]) -> int:
    """The sample's seed, from the chain's own state: the same chain is sampled alike on any machine.

    No one picks it (a seed could be picked for a flattering sample), and it changes only when
    the chain learns or forgets.
    """
    state = json.dumps([info.order, info.run_length, *counters]).encode("ascii")
    digest = hashlib.blake2b(state, digest_size=4, person=b"markovbot-sample").digest()
    return int.from_bytes(digest, "big")


async def report(
    brain: Brain,
    chain: ChainKey,
    *,
    samples: int = DEFAULT_SAMPLES,
    prefixes: int = DEFAULT_PREFIXES,
    budget: int = DEFAULT_BUDGET,
    thresholds: Thresholds | None = None,
) -> RetentionReport:
    """Measure every figure of the retention report for one chain (seed: see state_seed)."""
    store = brain.store
    thresholds = thresholds or Thresholds()
    info = await store.find_chain(chain)
    if info is None:
        settings = await store.guild_state.settings(chain.platform, chain.guild)
        return RetentionReport.empty(settings.run_length, settings.order)
    messages, tokens, chars, size = await store.chain_counters(info.id)
    seed = state_seed(info, (messages, tokens, chars, size))

    async def on_reader() -> tuple[_Sizes, Split, Split]:
        sizes = await _sizes(brain, info)
        extracted = guided = Split()
        if messages:
            extracted = await _extraction(brain, info, budget, thresholds)
            guided = await _extraction(brain, info, budget, thresholds, guided=True)
        return sizes, extracted, guided

    async def on_walker() -> tuple[OutputSample, PrefixSample]:
        if not messages:
            return OutputSample(0, Split(), Split()), PrefixSample(0, 0, Split())
        outputs = await store.walker.sample_outputs(info, samples, seed, thresholds)
        total, sampled, found = await store.walker.sample_prefixes(info, prefixes, seed)
        # Given back means reproduced exactly: under scheme 2 the walks whose form was learned are
        # checked against the rows at once, off the walker (a read of every row: the bot's messages
        # would wait for it there).
        exact = (
            None
            if info.scheme == EXACT
            else await store.reports.learned_fingerprints(info.id, [f for f, *_ in found])
        )
        return outputs, PrefixSample(total, sampled, memorisation.exact_hits(found, exact, thresholds))

    # Side by side: the transitions' scan and the messages' one (each on a connection of its own in
    # a thread; SQLite releases the GIL), the walker's samples, and the reader's attack.
    scanned, learned, (outputs, opening), (sizes, extracted, guided) = await asyncio.gather(
        store.reports.scan(info.id, info.order), _messages(brain, info, thresholds), on_walker(), on_reader()
    )
    _, states, transitions, forced, total, ctx_log, pair_log = scanned.shape
    vocabulary = scanned.vocabulary
    entropy = (ctx_log - pair_log) / total if total else 0.0
    kept_transitions, kept_fingerprints, kept_recent = _bytes_kept(sizes, vocabulary)
    bytes_kept = kept_transitions + kept_fingerprints + kept_recent
    discoverable = _discoverable(opening, learned.longer)
    n = outputs.samples
    return RetentionReport(
        messages_seen=messages,
        tokens_seen=tokens,
        chars_seen=chars,
        bytes_seen=size,
        distinct_messages=learned.distinct.all,
        eidetic_messages=learned.distinct.eidetic,
        common_messages=learned.distinct.common,
        vocabulary=vocabulary,
        states=states,
        transitions=transitions,
        bytes_kept=bytes_kept,
        bytes_transitions=kept_transitions,
        bytes_fingerprints=kept_fingerprints,
        bytes_recent=kept_recent,
        kept_ratio=bytes_kept / size if size else 0.0,
        forced_share=forced / total if total else 0.0,
        entropy_bits=max(0.0, float(entropy)),
        discoverable=discoverable[0],
        discoverable_eidetic=discoverable[1],
        discoverable_common=discoverable[2],
        copies=Rate(outputs.copies.all, n),
        copies_eidetic=Rate(outputs.copies.eidetic, n),
        copies_common=Rate(outputs.copies.common, n),
        long_runs=Rate(outputs.runs.all, n),
        long_runs_eidetic=Rate(outputs.runs.eidetic, n),
        long_runs_common=Rate(outputs.runs.common, n),
        extracted=Rate(extracted.all, learned.distinct.all, exact=True),
        extracted_eidetic=Rate(extracted.eidetic, learned.distinct.eidetic, exact=True),
        extracted_with_key=Rate(guided.eidetic, learned.distinct.eidetic, exact=True),
        extraction_budget=budget,
        prefixes=opening.prefixes,
        samples=n,
        run_length=info.run_length,
        order=info.order,
        seed=seed,
        common_times=thresholds.times,
        common_authors=thresholds.authors,
    )
