"""The audit trail as an MCP resource, `outboundcalls://audit`: what the server dialed, refused and asked."""

from __future__ import annotations

from typing import Any, Final

from mcp.server.mcpserver import MCPServer

from outboundcalls_mcp.server.ledger_place import read_audit_trail
from outboundcalls_mcp.server.settings import Settings

__all__ = ["AUDIT_LIMIT", "AUDIT_URI", "register_audit_resource"]

AUDIT_URI: Final = "outboundcalls://audit"
AUDIT_LIMIT: Final = 50


def register_audit_resource(mcp: MCPServer[Any], settings: Settings) -> None:
    """Add the audit resource; it reads the ledger in the state directory on each read."""

    # A static resource takes no Context, so it opens the ledger itself: reads are short, and a
    # second connection (to the WAL file, or from the database's pool) never blocks the dialing one.
    @mcp.resource(
        AUDIT_URI,
        name="audit",
        title="Dispatch audit trail",
        description=(
            f"The {AUDIT_LIMIT} most recent dispatch audit entries, newest first: previews, questions, answers, "
            "refusals with their rules, dials, outcomes, reconciliations and charges; numbers in E.164, "
            "estimates in credits per minute."
        ),
        mime_type="application/json",
    )
    async def recent_audit_entries() -> dict[str, Any]:
        entries = await read_audit_trail(settings, AUDIT_LIMIT)
        return {"entries": [entry.model_dump(mode="json") for entry in entries]}
