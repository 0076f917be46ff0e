"""The walker as the Brain and the report see it: one typed method per operation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from bot.core.chain import Choices
from bot.core.memorisation import OutputSample, PrefixSample, Thresholds
from bot.core.models import ChainInfo, Generated
from bot.core.versions import ChainVersions
from bot.core.walkercalls import Attempts, Call, SampleOutputs, SamplePrefixes, Successors, Walks
from bot.core.walkerhost import WalkerHost

T = TypeVar("T")


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
        """The report's sampled outputs: copies and long runs, by how often their source was said."""
        return await self._run(chain.id, SampleOutputs(chain, samples, seed, thresholds))

    async def sample_prefixes(
        self, chain: ChainInfo, samples: int, seed: int, thresholds: Thresholds
    ) -> PrefixSample:
        """The report's discoverable sample: greedy walks from the chain's opening prefixes."""
        return await self._run(chain.id, SamplePrefixes(chain, samples, seed, thresholds))
