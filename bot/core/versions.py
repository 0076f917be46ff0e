"""Where this process's writer stands on each chain: what the walker's caches check against."""

from __future__ import annotations

from collections import Counter
from typing import NamedTuple


class Version(NamedTuple):
    """Where this process's writer stands on one chain, sent with every walker call.

    What other processes commit, the walker learns from the file itself (see Walker.sync).
    """

    chain_id: int
    generation: int  # bumped on every write to the chain
    hubs: int = 0  # bumped after a commit that made or dropped hubs (in any chain)


class ChainVersions:
    """The writer's counters: one generation per chain, and one for the hubs of every chain."""

    def __init__(self) -> None:
        self._generations: Counter[int] = Counter()
        self._hubs = 0

    def wrote(self, chain_id: int) -> None:
        """A write to a chain was committed (or is about to be, inside its transaction)."""
        self._generations[chain_id] += 1

    def hubs_changed(self) -> None:
        """A commit or rollback made or dropped hubs: the walker reads them again."""
        self._hubs += 1

    def generation(self, chain_id: int) -> int:
        """A number that changes whenever the chain is written to (by this process)."""
        return self._generations[chain_id]

    def counters(self) -> tuple[dict[int, int], int]:
        """Every chain's generation and the hubs' counter, as they stand (compared by since)."""
        return dict(self._generations), self._hubs

    def since(self, before: tuple[dict[int, int], int]) -> tuple[list[int], bool]:
        """The chains written since counters() gave before, and whether hubs changed meanwhile."""
        generations, hubs = before
        wrote = [c for c, n in self._generations.items() if generations.get(c) != n]
        return sorted(wrote), self._hubs != hubs

    def of(self, chain_id: int) -> Version:
        """The version of a chain to send with a walker call."""
        return Version(chain_id, self._generations[chain_id], self._hubs)
