"""Which Discord shards this process runs: `--shards 0-1 --shard-count 4`, or MARKOV_SHARDS / MARKOV_SHARD_COUNT."""

from __future__ import annotations

import re
from dataclasses import dataclass

IDS_ENV = "MARKOV_SHARDS"
COUNT_ENV = "MARKOV_SHARD_COUNT"
IDS_OPTION = "--shards"
COUNT_OPTION = "--shard-count"
MAX_COUNT = 100_000  # far past any bot's shard count; bounds what a mistyped range can ask for
_PART = re.compile(r"(\d+)(?:-(\d+))?")


class ShardError(ValueError):
    """A shard setting that cannot work; the message says which and how to fix it."""


@dataclass(frozen=True)
class ShardPlan:
    """The shards of this process: ids None means all of them; count None means one connection, unsharded."""

    ids: tuple[int, ...] | None = None
    count: int | None = None

    @property
    def syncs_commands(self) -> bool:
        """True for the one process that syncs the command tree: the one holding shard 0 (or all)."""
        return self.ids is None or 0 in self.ids

    def describe(self) -> str:
        """For the log: 'shards 0-1 of 4', 'all 4 shards' or 'unsharded'."""
        if self.count is None:
            return "unsharded"
        if self.ids is None:
            return f"all {self.count} shard(s)"
        return f"shard(s) {format_ids(self.ids)} of {self.count}"


UNSHARDED = ShardPlan()


def parse_count(raw: str, source: str) -> int:
    """A shard count: a whole number from 1 to MAX_COUNT."""
    text = raw.strip()
    if not text.isdigit():
        raise ShardError(f"{source} must be a whole number of shards (1 or more), got {raw!r}.")
    count = int(text)
    if not 1 <= count <= MAX_COUNT:
        raise ShardError(f"{source} must be between 1 and {MAX_COUNT:,}, got {count}.")
    return count


def parse_ids(raw: str, source: str) -> tuple[int, ...]:
    """Shard ids: '3', '0-1' or '0,2,5-7' (no repeats); returned sorted."""
    ids: list[int] = []
    for part in raw.split(","):
        match = _PART.fullmatch(part.strip())
        if match is None:
            raise ShardError(
                f"{source} must be shard ids like 0-1, 0,2 or 3 (ids from 0, a range low-high), got {raw!r}."
            )
        low = int(match.group(1))
        high = int(match.group(2)) if match.group(2) is not None else low
        if high < low:
            raise ShardError(f"{source} has a range that runs backwards ({part.strip()}): write it low-high.")
        if high >= MAX_COUNT:
            raise ShardError(f"{source} names shard {high}, past the largest count ({MAX_COUNT:,}).")
        ids.extend(range(low, high + 1))
    if len(set(ids)) != len(ids):
        raise ShardError(f"{source} names a shard twice ({raw.strip()}): list each shard once.")
    return tuple(sorted(ids))


def plan(
    ids: tuple[int, ...] | None,
    count: int | None,
    *,
    ids_source: str = IDS_OPTION,
    count_source: str = COUNT_OPTION,
) -> ShardPlan:
    """Check ids against the count (every id below it; ids need a count) and return the plan."""
    if ids is None:
        return ShardPlan(None, count)
    if count is None:
        raise ShardError(
            f"{ids_source} needs {count_source}: the total number of shards across all processes."
        )
    outside = [i for i in ids if i >= count]
    if outside:
        raise ShardError(
            f"{ids_source} names shard {outside[0]}, but with {count_source} {count} "
            f"the shards are 0 to {count - 1}."
        )
    return ShardPlan(ids, count)


def format_ids(ids: tuple[int, ...]) -> str:
    """Ids as ranges: (0, 1, 2, 5) -> '0-2,5'."""
    runs: list[str] = []
    start = prev = ids[0]
    for i in (*ids[1:], None):
        if i is not None and i == prev + 1:
            prev = i
            continue
        runs.append(str(start) if start == prev else f"{start}-{prev}")
        if i is not None:
            start = prev = i
    return ",".join(runs)
