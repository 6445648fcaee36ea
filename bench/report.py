"""One table: each figure for our server and the floor, the ratio, the target, and whether it is met."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bench.stats import Spread, paired_ratio, percentile, ratio

__all__ = ["Row", "Table", "latency_row"]


@dataclass(frozen=True)
class Row:
    """A line of the table; `met` is None where no target applies."""

    figure: str
    ours: str
    floor: str = ""
    ratio: float | None = None
    target: str = ""
    met: bool | None = None
    ratio_note: str = ""  # shown after the ratio, e.g. the ratio of the minima


class Table:
    """Rows collected in order, printed as Markdown."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.rows: list[Row] = []

    def add(self, row: Row) -> None:
        """Append a row."""
        self.rows.append(row)

    def render(self) -> str:
        """The table as Markdown."""
        head = ["figure", "ours", "floor", "ratio", "target", "met"]
        lines = [f"### {self.title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in self.rows:
            shown_ratio = ("" if row.ratio is None else f"{row.ratio:.2f}x") + row.ratio_note
            met = "" if row.met is None else ("yes" if row.met else "**no**")
            cells = [row.figure, row.ours, row.floor, shown_ratio, row.target, met]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


def spread_row(
    figure: str,
    ours: Sequence[float],
    floor: Sequence[float],
    *,
    max_ratio: float | None = None,
    unit: str = "ms",
    digits: int = 0,
) -> Row:
    """A median-of-rounds row, optionally with a ratio target; the paired ratio and that of the minima are shown too."""
    o, f = Spread.of(ours), Spread.of(floor)
    r = ratio(o.median, f.median)
    best = ratio(o.low, f.low)
    paired = paired_ratio(ours, floor)
    target = "" if max_ratio is None else f"<= {max_ratio:.2f}x"
    met = None if max_ratio is None or r is None else r <= max_ratio
    notes = ([] if paired is None else [f"paired {paired:.2f}x"]) + ([] if best is None else [f"min/min {best:.2f}x"])
    note = f" ({'; '.join(notes)})" if notes else ""
    return Row(f"{figure} ({unit})", o.show(digits), f.show(digits), r, target, met, note)


def latency_row(label: str, ours: Sequence[float], echo: Sequence[float], round_trip: Sequence[float] | None) -> Row:
    """p50 / p99 in ms; target: p50 <= 2 x the floor's echo p50 + the upstream round trip p50 (sent back to back)."""
    p50, p99 = percentile(ours, 50), percentile(ours, 99)
    echo50, echo99 = percentile(echo, 50), percentile(echo, 99)
    target, met = "", None
    if round_trip:
        rt = percentile(round_trip, 50)
        limit = 2 * echo50 + rt
        target, met = f"p50 <= {limit:.2f} (2x{echo50:.2f} + {rt:.2f} upstream, back to back)", p50 <= limit
    return Row(
        f"{label} p50 / p99 (ms)",
        f"{p50:.2f} / {p99:.2f}",
        f"{echo50:.2f} / {echo99:.2f}",
        ratio(p50, echo50),
        target,
        met,
    )


def served_read_row(label: str, ours: Sequence[float], echo: Sequence[float], minimal_read: Sequence[float]) -> Row:
    """The same target with the upstream round trip as a server sees it: a minimal MCPServer's read of it minus echo."""
    p50, echo50, read50 = percentile(ours, 50), percentile(echo, 50), percentile(minimal_read, 50)
    rt = read50 - echo50
    limit = 2 * echo50 + rt
    return Row(
        f"  {label} against the upstream as a minimal server sees it: its read {read50:.2f} - echo (ms)",
        f"{p50:.2f}",
        f"{read50:.2f}",
        ratio(p50, read50),
        f"p50 <= {limit:.2f} (2x{echo50:.2f} + {rt:.2f} upstream, in a server)",
        p50 <= limit,
    )
