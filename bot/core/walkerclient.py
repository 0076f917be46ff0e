"""The walker as the Brain and the report see it: one typed method per operation."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TypeVar

from bot.core.chain import Choices
from bot.core.memorisation import Candidate, OutputSample, Split, Thresholds
from bot.core.models import ChainInfo, Generated
from bot.core.versions import ChainVersions
from bot.core.walkercalls import (
    Attempts,
    Call,
    GreedyHits,
    PickOpenings,
    SampleOutputs,
    Successors,
    Walks,
)
from bot.core.walkerhost import WalkerHost

T = TypeVar("T")

# The report's walks are asked for in parts of about this long: the walker answers one call after
# another, so a message asked for meanwhile waits for one part, not the whole sample (3-5 s at
# 1,000,000 messages, cold: benchmarks/README.md).
REPORT_PART_SECONDS = 0.01
PREFIXES_PER_PART = 100  # prefixes sent with a part (what the time leaves is sent again)


class WalkerClient:
    """Calls to the walker (on its thread or in its process), each sent with its chain's version."""

    def __init__(self, host: WalkerHost, versions: ChainVersions) -> None:
        self._host = host
        self._versions = versions

    @property
    def pid(self) -> int | None:
        """The walker process, when there is one."""
        return self._host.pid

    async def _run(self, chain_id: int, call: Call[T]) -> T:
        return await self._host.run(self._versions.of(chain_id), call)

    async def attempts(
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
        call = Attempts(chain, seed, tuple(start_ids), author_id, guard, attempts, deadline)
        return await self._run(chain.id, call)

    async def successors(self, chain_id: int, ctx: bytes, author_id: int | None = None) -> Choices:
        """Tokens that follow a context, with cumulative counts (cached on the walker)."""
        return await self._run(chain_id, Successors(chain_id, ctx, author_id))

    async def walks(self, chain: ChainInfo, samples: int, seed: int) -> list[list[str]]:
        """`samples` outputs walked from `seed` with the guard off (the report's sample)."""
        return await self._run(chain.id, Walks(chain, samples, seed))

    async def sample_outputs(
        self, chain: ChainInfo, samples: int, seed: int, thresholds: Thresholds
    ) -> OutputSample:
        """The report's sampled outputs (those `walks` gives): copies and long runs, by how often
        their source was said. Asked in parts of REPORT_PART_SECONDS, each going on from the random
        state the one before left."""
        state = random.Random(seed).getstate()
        sample = OutputSample(0, Split(), Split())
        while sample.samples < samples:
            call = SampleOutputs(chain, samples - sample.samples, state, thresholds, REPORT_PART_SECONDS)
            part, state = await self._run(chain.id, call)
            sample += part
        return sample

    async def sample_prefixes(
        self, chain: ChainInfo, samples: int, seed: int
    ) -> tuple[int, int, list[Candidate]]:
        """The report's discoverable sample, greedy walks from the chain's opening prefixes in parts:
        (the chain's opening prefixes, how many were walked, the walks whose form was learned)."""
        total, picked = await self._run(chain.id, PickOpenings(chain, samples, seed))
        found: list[Candidate] = []
        done = 0
        while done < len(picked):
            prefixes = picked[done : done + PREFIXES_PER_PART]
            part, walked = await self._run(chain.id, GreedyHits(chain, prefixes, REPORT_PART_SECONDS))
            found, done = found + part, done + walked
        return total, len(picked), found
