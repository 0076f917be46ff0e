"""What crosses to the walker: one frozen, picklable call per operation, each knowing its Walker method.

A call is sent as is (to a thread, or pickled down the walker process's pipe) and run there by
Call.run, so both sides agree on the operation and its types without naming a method in a string.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from bot.core.chain import Choices
from bot.core.memorisation import Candidate, OutputSample, Prefix, Thresholds
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
    """The retention report's unguarded sample of outputs, walked from a seed (see Walker.walks)."""

    chain: ChainInfo
    samples: int
    seed: int

    def run(self, walker: Walker) -> list[list[str]]:
        """The outputs' tokens."""
        return walker.walks(self.chain, self.samples, random.Random(self.seed))


RandomState = tuple[Any, ...]  # random.Random.getstate(): where a sample taken in parts goes on from


@dataclass(frozen=True, slots=True)
class SampleOutputs(Call[tuple[OutputSample, RandomState]]):
    """Up to `samples` of the report's sampled outputs, drawn from state on, for about `seconds`
    (see bot.core.memorisation.sample_outputs)."""

    chain: ChainInfo
    samples: int
    state: RandomState
    thresholds: Thresholds
    seconds: float

    def run(self, walker: Walker) -> tuple[OutputSample, RandomState]:
        """Copies and long runs among the samples walked, and the state the next part goes on from."""
        until = time.monotonic() + self.seconds
        rng = random.Random()
        rng.setstate(self.state)
        return walker.sample_outputs(self.chain, self.samples, rng, self.thresholds, until), rng.getstate()


@dataclass(frozen=True, slots=True)
class PickOpenings(Call[tuple[int, list[Prefix]]]):
    """The report's sample of opening prefixes (see bot.core.memorisation.pick_openings)."""

    chain: ChainInfo
    samples: int
    seed: int

    def run(self, walker: Walker) -> tuple[int, list[Prefix]]:
        """How many opening prefixes the chain has, and the sample."""
        return walker.pick_openings(self.chain, self.samples, self.seed)


@dataclass(frozen=True, slots=True)
class GreedyHits(Call[tuple[list[Candidate], int]]):
    """Of some opening prefixes, in order for about `seconds`, those whose greedy walk's form is
    learned (see Walker.greedy_hits)."""

    chain: ChainInfo
    prefixes: Sequence[Prefix]
    seconds: float

    def run(self, walker: Walker) -> tuple[list[Candidate], int]:
        """The walks whose form was learned, and how many prefixes were walked."""
        until = time.monotonic() + self.seconds
        return walker.greedy_hits(self.chain, self.prefixes, until)
