"""What crosses to the walker: one frozen, picklable call per operation, each knowing its Walker method.

A call is sent as is (to a thread, or pickled down the walker process's pipe) and run there by
Call.run, so both sides agree on the operation and its types without naming a method in a string.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from bot.core.chain import Choices
from bot.core.memorisation import OutputSample, PrefixSample, Thresholds
from bot.core.models import ChainInfo, Generated

if TYPE_CHECKING:
    from bot.core.walker import Walker

T_co = TypeVar("T_co", covariant=True)


class Call(Generic[T_co]):
    """One walker operation with its arguments; run on the walker's side."""

    __slots__ = ()

    def run(self, walker: Walker) -> T_co:
        """Do the operation on the walker (its caches already brought up to date)."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Pid(Call[int]):
    """The process the walker runs in (a process's first answer)."""

    def run(self, walker: Walker) -> int:
        """The walker's process id."""
        return os.getpid()


@dataclass(frozen=True, slots=True)
class Attempts(Call[Generated]):
    """Walk until an output passes the copy guard (see Walker.attempts)."""

    chain: ChainInfo
    seed: int
    start_ids: Sequence[int]
    author_id: int | None
    guard: bool
    attempts: int
    deadline: float  # time.monotonic() after which the guard stops retrying

    def run(self, walker: Walker) -> Generated:
        """One reply."""
        return walker.attempts(
            self.chain, self.seed, self.start_ids, self.author_id, self.guard, self.attempts, self.deadline
        )


@dataclass(frozen=True, slots=True)
class Successors(Call[Choices]):
    """Tokens that follow a context, with cumulative counts (see Walker.successors)."""

    chain_id: int
    ctx: bytes
    author_id: int | None = None

    def run(self, walker: Walker) -> Choices:
        """The choices, cached on the walker."""
        return walker.successors(self.chain_id, self.ctx, self.author_id)


@dataclass(frozen=True, slots=True)
class Walks(Call[list[list[str]]]):
    """The retention report's unguarded sample of outputs (see Walker.walks)."""

    chain: ChainInfo
    samples: int
    seed: int

    def run(self, walker: Walker) -> list[list[str]]:
        """The outputs' tokens."""
        return walker.walks(self.chain, self.samples, self.seed)


@dataclass(frozen=True, slots=True)
class SampleOutputs(Call[OutputSample]):
    """The report's sampled outputs (see bot.core.memorisation.sample_outputs)."""

    chain: ChainInfo
    samples: int
    seed: int
    thresholds: Thresholds

    def run(self, walker: Walker) -> OutputSample:
        """Copies and long runs among the samples."""
        return walker.sample_outputs(self.chain, self.samples, self.seed, self.thresholds)


@dataclass(frozen=True, slots=True)
class SamplePrefixes(Call[PrefixSample]):
    """The report's discoverable sample (see bot.core.memorisation.sample_prefixes)."""

    chain: ChainInfo
    samples: int
    seed: int
    thresholds: Thresholds

    def run(self, walker: Walker) -> PrefixSample:
        """Greedy walks from the chain's opening prefixes."""
        return walker.sample_prefixes(self.chain, self.samples, self.seed, self.thresholds)
