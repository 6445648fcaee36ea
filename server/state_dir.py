"""Where the ledger lives: OUTBOUNDCALLS_STATE_DIR, or the user's data directory."""

from __future__ import annotations

from pathlib import Path

from outboundcalls_mcp.server.settings import Settings

__all__ = ["resolve_state_dir"]


def resolve_state_dir(settings: Settings) -> Path:
    """The state directory, created if needed; sandbox dials get their own, so they never count against real caps."""
    if settings.state_dir is not None:
        base = settings.state_dir
    else:
        from platformdirs import user_data_dir

        base = Path(user_data_dir("outboundcalls-mcp", appauthor=False))
    path = base / "sandbox" if settings.sandbox else base
    path.mkdir(parents=True, exist_ok=True)
    return path
