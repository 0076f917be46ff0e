"""A measured rate with its sample size and 95% interval (Wilson), as every report figure carries."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

Z95 = 1.959963984540054  # the standard normal quantile of a two-sided 95% interval


def wilson(hits: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion hits/n ((0, 1) when n is 0)."""
    if n <= 0:
        return 0.0, 1.0
    p = hits / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    scale = 1 + z * z / n
    return max(0.0, (centre - spread) / scale), min(1.0, (centre + spread) / scale)


@dataclass(frozen=True, slots=True)
class Rate:
    """hits of n sampled, scaled to the population's rate (scale = population units per sampled one).

    exact: every unit of the population was examined, so there is no sampling error.
    """

    hits: int
    n: int
    scale: float = 1.0
    exact: bool = False

    @property
    def value(self) -> float:
        """The rate (0 when nothing was sampled)."""
        return min(1.0, self.hits / self.n * self.scale) if self.n else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        """The 95% interval of the rate."""
        if self.exact or not self.n:
            return self.value, self.value
        low, high = wilson(self.hits, self.n)
        return min(1.0, low * self.scale), min(1.0, high * self.scale)

    def percent(self) -> str:
        """'12% (95% CI 10–14%, n = 2,400)' as the report prints it."""
        low, high = self.interval
        if self.exact or not self.n:
            return f"{self.value:.0%} (all {self.n:,} examined)"
        return f"{self.value:.0%} (95% CI {low:.0%}–{high:.0%}, n = {self.n:,})"

    def as_json(self) -> dict[str, Any]:
        """The rate, its interval and its sample as JSON."""
        low, high = self.interval
        return {"value": self.value, "low": low, "high": high, "hits": self.hits, "n": self.n}
