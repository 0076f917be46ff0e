"""Generation's side of the database: walks, the copy guard and their caches.

A Walker is plain synchronous code over a read-only connection of its own (bot.core.reads: a
sqlite3 connection, or asyncpg on a private event loop when the store is on PostgreSQL). The Store
runs it on a thread, or in a process of its own (the bot's default; see bot.core.walkerhost):
there its walks and copy checks take no turns on the interpreter lock with the event loop and the
writer, which under load held generate p99 back. The Store's side calls it through a typed client
(bot.core.walkerclient) whose calls (bot.core.walkercalls) are picklable: chain ids and counters,
token ids, random seeds.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from bot.core import blocks, chainrows, hubs, memorisation, reads, windowrows
from bot.core import chain as chainmod
from bot.core.chain import ChainReader, Choices
from bot.core.fingerprints import Fingerprinter
from bot.core.lru import LRU
from bot.core.memorisation import Candidate, OutputSample, Prefix, Thresholds
from bot.core.models import ChainInfo, Generated, GenerateStatus
from bot.core.tokens import detokenize, neutralise
from bot.core.versions import Version

log = logging.getLogger(__name__)

W = TypeVar("W", bound=tuple[Sequence[Any], Any])  # a cached read: (ids or contexts, weights)
# What a cached read was current with: (writer's generation, commits seen or the chain's marker; see sync)
Stamp = tuple[int, Hashable] | None

ENTRY_LIMIT = 20_000  # contexts considered when anchoring a start word
WIDE_STATE = 64  # successors from which a cached state may lag new learning ...
STALE_SECONDS = 30.0  # ... by this long (see Walker._fresh)
# Tries made whatever the guard's time budget: a varied chain's walk is a copy 1 time in 5 at
# most, so five copies in a row (1 in 3,000) mean the chain replays its source, not that the
# machine was busy.
MIN_GUARD_TRIES = 5
MAX_OUTPUT_CHARS = 1900


class Walker:
    """Walks chains and checks outputs against the fingerprints, with caches; one thread at a time."""

    def __init__(self, where: str | Path, key: bytes, cache_size: int) -> None:
        self.where = where  # a SQLite file, or a PostgreSQL URL (see bot.core.reads.database)
        self.fingerprints = Fingerprinter(key)
        self._db: reads.Reads | None = None
        self._choices: LRU[tuple[Any, ...], tuple[Choices, Stamp, float]] = LRU(cache_size)
        self._entries: LRU[tuple[Any, ...], tuple[tuple[list[bytes], Choices], Stamp, float]] = LRU(
            max(16, cache_size // 100)
        )
        self._texts: LRU[int, str] = LRU(cache_size)  # token ids are never reused: true forever
        self._blocks: blocks.Cache = LRU(blocks.CACHED_BLOCKS)  # decoded by id: dropped when removals change
        self._windows = windowrows.WindowReader()  # the copy guard's K-run lookups, with their caches
        self._hub_contexts: dict[int, set[bytes]] = {}  # per chain, as of _hubs_version
        self._hubs_version = 0
        self._data_version: Hashable = None  # SQLite's data_version when last looked (Reads.commits)
        self._commits = 0  # commits by other connections seen (changes of data_version)
        self._checked: dict[int, int] = {}  # per chain: _commits when its removals were read
        self._generation: dict[int, tuple[int, Hashable]] = {}  # per chain: (writer's generation, commits)
        self._removals: dict[int, int] = {}  # per chain: its removals column, keys the caches

    def sync(self, version: Version) -> None:
        """Bring the caches' view of the chain up to date, before a call (see bot.core.walkercalls).

        One look per call (Reads.commits). On SQLite, PRAGMA data_version: it changes when another
        connection (this process's writer, or another process) committed; only then is the chain's
        removals column read again. PostgreSQL has no data_version: there the look is one row, the
        chain's own, giving its removals and its learning counters (messages_seen, tokens_seen),
        which every transaction that adds counts to the chain changes (see PgReads.commits). Either
        way a new removals value (an unlearn, forget or reset, in any process) keys fresh caches at
        the next call and drops the decoded blocks, and a commit that learned lets narrow cached
        states be read again.
        """
        chain_id = version.chain_id
        before = self._removals.get(chain_id)
        marker, removals = self._connection().commits(chain_id)
        if removals is not None:  # PostgreSQL: the chain's own marker, and its removals
            self._removals[chain_id] = removals
            self._generation[chain_id] = (version.generation, marker)
        else:
            if marker != self._data_version:
                self._data_version = marker
                self._commits += 1
            if self._checked.get(chain_id) != self._commits:
                rows = self._rows("chain_removals", (chain_id,))
                self._removals[chain_id] = int(rows[0][0]) if rows else -1
                self._checked[chain_id] = self._commits
            self._generation[chain_id] = (version.generation, self._commits)
        if before is not None and self._removals[chain_id] != before:
            self._blocks.clear()  # a forget rewrote the chain's blocks in place (ids kept)
            self._windows.clear()
        if version.hubs != self._hubs_version:
            self._hub_contexts.clear()
            self._hubs_version = version.hubs

    def close(self) -> None:
        """Close the connection (it reopens on the next read)."""
        if self._db is not None:
            self._db.close()
            self._db = None

    def _connection(self) -> reads.Reads:
        if self._db is None:
            self._db = reads.connect(self.where)
            self._data_version = None
        return self._db

    def _rows(self, name: str, params: tuple[Any, ...]) -> list[Any]:
        return self._connection().rows(name, *params)

    def query(self, name: str, params: tuple[Any, ...]) -> list[Any]:
        """The rows of a named read-only statement (a list of ids as ids() gives it)."""
        return self._rows(name, params)

    def ids(self, values: Sequence[int]) -> Any:
        """A list of ids or fingerprints as a statement's parameter, on this walker's engine."""
        return self._connection().ids(values)

    def scan(
        self, chain: ChainInfo, prefix: Sequence[int], visit: Callable[[chainrows.Entries], None]
    ) -> None:
        """A chain's entries whose context starts with prefix, in chunks (see chainrows.scan)."""
        chainrows.scan(self._connection(), chain.id, chain.order, visit, prefix)

    # ---------------------------------------------------------------- what a walk reads

    def reader(self, chain: ChainInfo, author_id: int | None = None) -> ChainReader:
        """The reads a walk over a chain (or one author's part of it) needs."""
        return ChainReader(
            chain.order,
            functools.partial(self.successors, chain.id, author_id=author_id),
            functools.partial(self._predecessors, chain.id, author_id=author_id),
            functools.partial(self._entries_into, chain.id, chain.order, author_id=author_id),
        )

    def successors(self, chain_id: int, ctx: bytes, author_id: int | None = None) -> Choices:
        """Tokens that follow a context, with cumulative counts (cached)."""
        key = (chain_id, self._removals.get(chain_id), author_id, ctx)
        cached = self._fresh(chain_id, self._choices.get(key))
        if cached is not None:
            return cached
        if (
            author_id is None
            and ctx in self._hubs_of(chain_id)
            and (hub := self._rows("hub", (chain_id, ctx)))
        ):
            choices = hubs.choices(hubs.decode(*hub[0]))
        else:
            choices = chainmod.weighted(
                *chainrows.successors(self._connection(), chain_id, ctx, author_id, self._blocks)
            )
        self._choices.put(key, (choices, self._generation.get(chain_id), time.monotonic()))
        return choices

    def _hubs_of(self, chain_id: int) -> set[bytes]:
        """A chain's hub contexts (a hub made since is read from transitions until the next call)."""
        found = self._hub_contexts.get(chain_id)
        if found is None:
            found = {bytes(ctx) for (ctx,) in self._rows("hubs_of_chain", (chain_id,))}
            self._hub_contexts[chain_id] = found
        return found

    def _predecessors(
        self, chain_id: int, next_id: int, suffix: bytes, author_id: int | None = None
    ) -> Choices:
        """Tokens that can precede (suffix, next): the first token of contexts leading into next."""
        key = (chain_id, self._removals.get(chain_id), author_id, "pred", next_id, suffix)
        cached = self._fresh(chain_id, self._choices.get(key))
        if cached is not None:
            return cached
        choices = chainmod.weighted(
            *chainrows.predecessors(self._connection(), chain_id, next_id, suffix, author_id, self._blocks)
        )
        self._choices.put(key, (choices, self._generation.get(chain_id), time.monotonic()))
        return choices

    def _entries_into(
        self, chain_id: int, order: int, next_id: int, author_id: int | None = None
    ) -> tuple[list[bytes], Choices]:
        """Contexts that lead into a token, and choices over their indexes weighted by count."""
        key = (chain_id, self._removals.get(chain_id), author_id, next_id)
        cached = self._fresh(chain_id, self._entries.get(key))
        if cached is not None:
            return cached
        contexts, counts = chainrows.entries_into(
            self._connection(), chain_id, order, next_id, author_id, ENTRY_LIMIT
        )
        result = contexts, chainmod.weighted(range(len(counts)), counts)
        self._entries.put(key, (result, self._generation.get(chain_id), time.monotonic()))
        return result

    def _fresh(self, chain_id: int, cached: tuple[W, Stamp, float] | None) -> W | None:
        """A cached read still good to walk: current, or a wide state read shortly before new learning.

        Only removals invalidate outright (the cache key holds their count): after learning alone,
        every transition of an older read is still learned, it just lacks the newest counts. Narrow
        states are cheap to re-read, so they are always current; a wide one (the costly reads on a
        busy chain) may lag the writer by up to STALE_SECONDS.
        """
        if cached is None:
            return None
        value, generation, stamp = cached
        if generation == self._generation.get(chain_id):
            return value
        if len(value[0]) >= WIDE_STATE and time.monotonic() - stamp < STALE_SECONDS:
            return value
        return None

    def texts(self, ids: Sequence[int]) -> list[str]:
        """Token texts for ids."""
        found = {i: text for i in set(ids) if (text := self._texts.get(i)) is not None}
        missing = [i for i in set(ids) if i not in found]
        if missing:
            for token_id, text in self._rows("tokens_by_id", (self.ids(missing),)):
                found[int(token_id)] = text
                self._texts.put(int(token_id), text)
        return [found.get(i, "") for i in ids]

    def copies(self, chain: ChainInfo, tokens: Sequence[str]) -> tuple[bool, bool]:
        """(tokens equal a learned message, they contain a run of K tokens from one), per chain scheme.

        Under the normalised scheme both hold up to letter case, compatibility forms and (for a
        whole message) trailing punctuation; chains learned before it compare exact tokens.
        """
        normal, windows = self.fingerprints.guarded(tokens, chain.run_length, chain.scheme)
        if normal is None:
            exact = self.fingerprints.message(tokens)
            whole = bool(self._rows("message_fingerprint_exists", (chain.id, exact)))
        else:  # the normalised whole is kept among the chain's windows (bot.core.counting.windows)
            whole = self._windows.present(self._connection(), chain.id, [normal])
        runs = self._windows.present(self._connection(), chain.id, windows)
        return whole, runs

    def copied(self, chain: ChainInfo, tokens: Sequence[str]) -> bool:
        """What the guard refuses: tokens that are a learned message or hold a run of K tokens of one
        (see copies); under scheme 2 one lookup of the chain's windows answers both."""
        normal, windows = self.fingerprints.guarded(tokens, chain.run_length, chain.scheme)
        if normal is None:
            return any(self.copies(chain, tokens))
        return self._windows.present(self._connection(), chain.id, [normal, *windows])

    def window_multiplicity(self, chain_id: int, fps: Sequence[int]) -> dict[int, tuple[int, int]]:
        """(times learned, authors) of each of these fingerprints (K-runs, normalised wholes) learned in the chain."""
        return self._windows.multiplicity(self._connection(), chain_id, fps)

    # ---------------------------------------------------------------- what the calls run (bot.core.walkercalls)

    def attempts(
        self,
        chain: ChainInfo,
        seed: int,
        start_ids: Sequence[int],
        author_id: int | None,
        guard: bool,
        attempts: int,
        deadline: float,
    ) -> Generated:
        """Walk (random from seed) until an output passes the copy guard, in at most `attempts` tries."""
        rng = random.Random(seed)
        reader = self.reader(chain, author_id)
        produced = False
        for attempt in range(1, attempts + 1):
            ids = chainmod.walk(reader, rng, start_ids)
            if ids is None:
                return Generated(GenerateStatus.UNKNOWN_START, tries=attempt)
            if not ids:
                # Only a member with no data in this chain walks into nothing at all.
                if author_id is not None:
                    return Generated(GenerateStatus.NO_MEMBER_DATA, tries=attempt)
                continue
            produced = True
            tokens = self.texts(ids)
            if guard and self.copied(chain, tokens):
                if attempt >= MIN_GUARD_TRIES and time.monotonic() > deadline:
                    return Generated(GenerateStatus.COPY_GUARD, tries=attempt)
                continue
            text = neutralise(detokenize(tokens))[:MAX_OUTPUT_CHARS]
            return Generated(GenerateStatus.OK, text, tuple(tokens), attempt)
        if not produced:
            return Generated(GenerateStatus.NO_CHAIN, tries=attempts)
        return Generated(GenerateStatus.COPY_GUARD, tries=attempts)

    def walks(self, chain: ChainInfo, samples: int, rng: random.Random) -> list[list[str]]:
        """The retention report's sample: `samples` outputs walked (drawing from rng) with the guard off."""
        reader = self.reader(chain)
        return [self.texts(chainmod.walk(reader, rng) or []) for _ in range(samples)]

    def sample_outputs(
        self, chain: ChainInfo, samples: int, rng: random.Random, thresholds: Thresholds, until: float
    ) -> OutputSample:
        """The report's sampled outputs: copies and long runs, by how often their source was said."""
        return memorisation.sample_outputs(self, chain, samples, rng, thresholds, until)

    def pick_openings(self, chain: ChainInfo, samples: int, seed: int) -> tuple[int, list[Prefix]]:
        """The report's sample of opening prefixes (see memorisation.pick_openings)."""
        return memorisation.pick_openings(self, chain, samples, seed)

    def greedy_hits(
        self, chain: ChainInfo, prefixes: Sequence[Prefix], until: float
    ) -> tuple[list[Candidate], int]:
        """Of these opening prefixes, those whose greedy walk's form is learned (see memorisation.greedy_hits)."""
        return memorisation.greedy_hits(self, chain, prefixes, until)
