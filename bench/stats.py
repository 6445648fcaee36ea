"""Small statistics for the report: medians with their spread, and latency percentiles."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Spread", "paired_ratio", "percentile", "ratio"]


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


def paired_ratio(ours: Sequence[float], other: Sequence[float]) -> float | None:
    """The median of ours[i] / other[i] over rounds, or None unless both sides have every round.

    Each pair was measured back to back, so the machine's drift over minutes (20-30% here) falls
    on both of its terms; the ratio of the two medians has it on neither and moves more between runs.
    """
    if not ours or len(ours) != len(other) or not all(other):
        return None
    return statistics.median(o / t for o, t in zip(ours, other, strict=True))


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
