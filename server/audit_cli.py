"""`outboundcalls-mcp audit`: the dispatch audit trail for the owner, as a table or JSON lines."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Final, TextIO

if TYPE_CHECKING:
    from outboundcalls_mcp.server.ledger import AuditEntry
    from outboundcalls_mcp.server.settings import Settings

__all__ = ["MAX_LIMIT", "format_table", "print_audit", "summarize"]

MAX_LIMIT: Final = 1000
_DETAIL_CHARS: Final = 70
_COLUMNS: Final = ("TIME (UTC)", "KIND", "TO", "AGENT", "EST/MIN", "CHARGE", "DETAIL")


def print_audit(settings: Settings, *, limit: int, as_json: bool, out: TextIO | None = None) -> int:
    """Print the most recent `limit` entries, oldest first; the exit status."""
    import anyio

    from outboundcalls_mcp.server.ledger_place import describe_ledger, read_audit_trail

    stream = out or sys.stdout
    if not 1 <= limit <= MAX_LIMIT:
        print(f"outboundcalls-mcp: --limit must be 1..{MAX_LIMIT}, got {limit}", file=sys.stderr)
        return 2
    # Oldest first, like a log: the newest entry is the last line on the terminal.
    entries = list(reversed(anyio.run(read_audit_trail, settings, limit)))
    if as_json:
        for entry in entries:
            stream.write(entry.model_dump_json() + "\n")
        return 0
    if not entries:
        stream.write(f"No dispatch has been audited yet (ledger in {describe_ledger(settings)}).\n")
        return 0
    stream.write(format_table(entries) + "\n")
    return 0


def format_table(entries: list[AuditEntry]) -> str:
    """Aligned columns, one entry a line; a long detail is cut, never wrapped."""
    rows = [_COLUMNS] + [_row(entry) for entry in entries]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS) - 1)]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)] + [row[-1]]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def summarize(entry: AuditEntry) -> str:
    """The entry's detail in a few words: rules for a refusal, the call or status for an outcome."""
    detail = dict(entry.detail)
    if entry.intent_id:
        detail.setdefault("intent", entry.intent_id)
    if "question" in detail:
        detail["question"] = "shown"  # the full text is in --json
    rules = detail.get("rules")
    if isinstance(rules, list):
        detail["rules"] = ",".join(str(rule) for rule in rules)
    parts = [f"{key}={_plain(value)}" for key, value in detail.items() if value is not None]
    text = " ".join(parts)
    return text if len(text) <= _DETAIL_CHARS else text[: _DETAIL_CHARS - 1] + "…"


def _row(entry: AuditEntry) -> tuple[str, ...]:
    return (
        f"{entry.at:%Y-%m-%d %H:%M:%S}",
        entry.kind,
        entry.to_number or "-",
        entry.agent_id or "-",
        "-" if entry.estimated_credits_per_minute is None else f"{entry.estimated_credits_per_minute:g}",
        "-" if entry.charge_credits is None else f"{entry.charge_credits:g}",
        summarize(entry),
    )


def _plain(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    # One line per entry, whatever a detail holds.
    return " ".join(str(text).split())
