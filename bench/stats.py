"""Small statistics for the report: medians with their spread, and latency percentiles."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Spread", "percentile", "ratio"]


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank q-th percentile (q in 0..100) of a non-empty sample."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def ratio(ours: float | None, floor: float | None) -> float | None:
    """ours / floor, or None when either is unknown or the floor is zero."""
    if ours is None or not floor:
        return None
    return ours / floor


@dataclass(frozen=True)
class Spread:
    """The median of a few rounds, with the smallest and largest."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        """The spread of a non-empty sample."""
        return cls(statistics.median(values), min(values), max(values))

    def show(self, digits: int = 0) -> str:
        """`median (min-max)`."""
        return f"{self.median:,.{digits}f} ({self.low:,.{digits}f}-{self.high:,.{digits}f})"
