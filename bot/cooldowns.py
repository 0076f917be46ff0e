"""How often and how much a member may ask for, on every platform (Discord, Matrix)."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

#: Most messages one generate command posts.
MAX_COUNT = 5

#: The commands a cooldown covers, each with its own clock per member: generate (answering a
#: mention counts as a generate) and stats. Every other command is cheap and answers at once.
GENERATE = "generate"
STATS = "stats"

_PRUNE_AT = 10_000  # entries kept before expired ones are dropped


class Cooldowns:
    """A per-member cooldown: (scope, member, command) → time of last use; the clock is injectable."""

    def __init__(self, seconds: float, clock: Callable[[], float] | None = None) -> None:
        self.seconds = seconds
        self._clock = clock
        self._last: dict[tuple[Hashable, Hashable, str], float] = {}
        self._warned: set[tuple[Hashable, Hashable, str]] = set()

    def now(self) -> float:
        """The current time (looked up at call time, so a test clock can replace time.monotonic)."""
        return self._clock() if self._clock is not None else time.monotonic()

    def remaining(self, scope: Hashable, member: Hashable, command: str = GENERATE) -> float:
        """Seconds until this member may use the command again (0 when they may now)."""
        last = self._last.get((scope, member, command))
        if last is None or self.seconds <= 0:
            return 0.0
        return max(0.0, last + self.seconds - self.now())

    def use(self, scope: Hashable, member: Hashable, command: str = GENERATE) -> None:
        """Record a use now (and forget that the member was told to slow down)."""
        if self.seconds <= 0:
            return
        key = (scope, member, command)
        self._last[key] = self.now()
        self._warned.discard(key)
        if len(self._last) > _PRUNE_AT:
            cutoff = self.now() - self.seconds
            self._last = {k: v for k, v in self._last.items() if v > cutoff}
            self._warned &= set(self._last)

    def first_warning(self, scope: Hashable, member: Hashable, command: str = GENERATE) -> bool:
        """True the first time a member is refused within one cooldown (later refusals go unanswered)."""
        key = (scope, member, command)
        if key in self._warned:
            return False
        self._warned.add(key)
        return True
