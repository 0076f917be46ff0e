"""Generating from a chain: a request resolved to ids, walked by the walker with the copy guard.

A chain (start word, member) whose every try was a copy is remembered for a while (a replay
verdict): meanwhile a reply makes only a few tries, so that a burst of `/markov generate` in a
small channel that replays its source does not spend a full budget of walks on each call.
"""

from __future__ import annotations

import random
import time

from bot.core.lru import LRU
from bot.core.models import ChainInfo, ChainKey, Generated, GenerateStatus
from bot.core.store import Store
from bot.core.tokens import tokenize

# A chain whose every try was a copy is re-examined in full at most this often; meanwhile a reply
# still makes RECHECK_TRIES tries.
REPLAY_VERDICT_SECONDS = 30.0
RECHECK_TRIES = 2

#: A generate request resolved: (chain, author id or None, start token ids).
Resolved = tuple[ChainInfo, int | None, list[int]]


class Generation:
    """Resolves generate requests and walks them, keeping the replay verdicts."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._replays: LRU[tuple[int, int | None, tuple[int, ...]], float] = LRU(1024)

    async def _start_ids(self, start: str) -> list[int] | None:
        """Token ids for a start phrase, trying the word as typed, then other cases."""
        words = tokenize(start)
        ids: list[int] = []
        for i, word in enumerate(words):
            variants = (
                [word, word.lower(), word.capitalize(), word.upper()] if i == 0 else [word, word.lower()]
            )
            for variant in dict.fromkeys(variants):
                token_id = await self._store.token_id(variant)
                if token_id is not None:
                    ids.append(token_id)
                    break
            else:
                return None
        return ids

    async def resolve(
        self, chain: ChainKey, start: str | None, author: str | None
    ) -> Resolved | GenerateStatus:
        """(chain, author id, start token ids) of a generate request, or why there is nothing to walk."""
        info = await self._store.find_chain(chain)
        if info is None:
            return GenerateStatus.NO_CHAIN
        author_id = None
        if author is not None:
            author_id = await self._store.find_author(chain.platform, chain.guild, author)
            if author_id is None:
                return GenerateStatus.NO_MEMBER_DATA
        start_ids: list[int] = []
        if start is not None and start.strip():
            found = await self._start_ids(start)
            if not found:
                return GenerateStatus.UNKNOWN_START
            start_ids = found
        return info, author_id, start_ids

    async def generate(
        self,
        chain: ChainKey,
        *,
        start: str | None,
        author: str | None,
        rng: random.Random,
        guard: bool | None,
        tries: int,
        budget: float,
    ) -> Generated:
        """One message from a chain: up to tries walks, the guarded ones within budget seconds."""
        resolved = await self.resolve(chain, start, author)
        if isinstance(resolved, GenerateStatus):
            return Generated(resolved)
        info, author_id, start_ids = resolved
        if guard is None:
            guard = (await self._store.guild_state.settings(chain.platform, chain.guild)).copy_guard
        verdict_key = (info.id, author_id, tuple(start_ids))
        verdict = self._replays.get(verdict_key) if guard else None
        now = time.monotonic()
        rechecking = verdict is not None and now - verdict < REPLAY_VERDICT_SECONDS
        if rechecking:
            tries = min(tries, RECHECK_TRIES)
        # One draw seeds the walks: a few bytes to the walker process instead of rng's whole state
        # both ways, and rng's stream still decides every reply.
        seed = rng.getrandbits(64)
        result = await self._store.walker.attempts(
            info, seed, start_ids, author_id, guard, tries, now + budget
        )
        if result.status is GenerateStatus.OK:
            self._replays.pop(verdict_key)
        elif result.status is GenerateStatus.COPY_GUARD and not rechecking:
            self._replays.put(verdict_key, time.monotonic())
        return result
