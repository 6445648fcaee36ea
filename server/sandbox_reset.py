"""Starting the sandbox afresh: its account, its ledger and its stored call ends, never under a live server.

The check and the reset are one serialized decision: the ledger's write lock is taken first
(BEGIN IMMEDIATE), the policy leases are read under it, and only then are the ledger's rows
deleted, the account and the call ends started afresh, and the ledger committed last. A server
starting meanwhile waits on that lock to join the ledger and finds it fresh. Files are emptied in
place, never deleted: a process that still had a deleted SQLite file open would write on into a
file nobody reads. The ledger's audit trail is append-only for servers; only this reset, on a
sandbox state directory only, lifts the triggers that say so, and puts them back in the same
transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Final

__all__ = ["SandboxInUseError", "live_server_seen_at", "reset_sandbox"]

# Tables a reset keeps: the schema version, and SQLite's own.
_KEPT_TABLES: Final = ("meta",)
_BUSY_TIMEOUT_SECONDS: Final = 10.0


class SandboxInUseError(Exception):
    """A server process still holds the sandbox ledger (its policy lease is live)."""

    def __init__(self, state_dir: Path, seen_at: datetime) -> None:
        from outboundcalls_mcp.server.ledger_sqlite import POLICY_LEASE

        super().__init__(
            f"a sandbox server still uses {state_dir} (last seen {seen_at:%Y-%m-%d %H:%M:%S} UTC): stop it "
            "(quit the MCP host that started `outboundcalls-mcp --sandbox`, or end that process), then run "
            "`outboundcalls-mcp sandbox reset` again; a process that crashed stops counting "
            f"{POLICY_LEASE.total_seconds() / 60:g} minutes after it was last seen."
        )
        self.seen_at = seen_at


def live_server_seen_at(state_dir: Path, *, now: datetime) -> datetime | None:
    """When a live server last renewed its lease on the sandbox ledger; None if no server holds it."""
    from outboundcalls_mcp.server.ledger_sqlite import LEDGER_FILENAME

    ledger = state_dir / LEDGER_FILENAME
    if not ledger.exists():
        return None
    with closing(_connect(ledger)) as conn:
        return _live_lease(conn, now)


async def reset_sandbox(state_dir: Path, *, account: Path, now: datetime) -> None:
    """Empty the ledger and the call ends and start the account afresh, or raise SandboxInUseError."""
    from outboundcalls.sandbox import Sandbox
    from outboundcalls_mcp.server.call_events import CALL_ENDS_FILENAME
    from outboundcalls_mcp.server.ledger_sqlite import LEDGER_FILENAME

    if state_dir.name != "sandbox":
        # The live ledger must never be emptied by a reset, whatever the caller resolved.
        raise ValueError(f"{state_dir} is not a sandbox state directory")
    # Blocking calls on the caller's loop: this is the owner's one-off command, not a server.
    with _held(state_dir / LEDGER_FILENAME) as ledger:
        if ledger is not None:
            seen_at = _live_lease(ledger, now)
            if seen_at is not None:
                raise SandboxInUseError(state_dir, seen_at)
            _empty(ledger)
        if account.exists():
            sandbox = Sandbox.persistent(account)
            try:
                await sandbox.reset()
            finally:
                sandbox.close()
        with _held(state_dir / CALL_ENDS_FILENAME) as call_ends:
            if call_ends is not None:
                _empty(call_ends)


@contextmanager
def _held(path: Path) -> Iterator[sqlite3.Connection | None]:
    """A connection to an existing database holding its write lock, committed on success; None if absent."""
    if not path.exists():
        yield None
        return
    with closing(_connect(path)) as conn:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=_BUSY_TIMEOUT_SECONDS)


def _live_lease(conn: sqlite3.Connection, now: datetime) -> datetime | None:
    """The newest live policy lease's last renewal, as the ledger itself counts leases."""
    from outboundcalls_mcp.server.ledger_sqlite import POLICY_LEASE, from_db, to_db

    if not _tables(conn) & {"policy_holders"}:
        return None
    row = conn.execute("SELECT MAX(seen_at) FROM policy_holders WHERE seen_at >= ?", (to_db(now - POLICY_LEASE),))
    seen_at = row.fetchone()[0]
    return None if seen_at is None else from_db(seen_at)


def _empty(conn: sqlite3.Connection) -> None:
    """Delete every row but the schema version, in the caller's transaction; triggers lifted, then restored."""
    triggers = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'").fetchall()
    for name, _ in triggers:
        conn.execute(f'DROP TRIGGER "{name}"')
    for table in sorted(_tables(conn) - set(_KEPT_TABLES)):
        conn.execute(f'DELETE FROM "{table}"')
    for _, sql in triggers:
        conn.execute(sql)


def _tables(conn: sqlite3.Connection) -> set[str]:
    """The database's tables, SQLite's own (sqlite_sequence: AUTOINCREMENT counters) included."""
    return {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
