"""The SQLite ledger's schema: versioned migrations applied at open, under the file's write lock.

Each version is a list of statements that takes the schema from the one before; a fresh file runs
them all. They run inside one IMMEDIATE transaction, so two processes opening the same file at
once migrate it once. A file written by a newer release is refused, naming the release to run.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from outboundcalls.version import __version__
from outboundcalls_mcp.server.ledger import LedgerError, NewerSchemaError

__all__ = ["BUSY_TIMEOUT_MS", "MIGRATIONS", "SCHEMA_VERSION", "open_connection"]

BUSY_TIMEOUT_MS: Final = 10_000

_V1: Final = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS policy_holders (
        holder_id TEXT PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        summary TEXT NOT NULL,
        started_at TEXT NOT NULL,
        seen_at TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS intents (
        token_hash TEXT PRIMARY KEY,
        intent_id TEXT NOT NULL UNIQUE,
        batch_id TEXT,
        agent_id TEXT NOT NULL,
        to_number TEXT NOT NULL,
        phone_number_id TEXT,
        contact_id TEXT,
        args_hash TEXT NOT NULL,
        mode TEXT NOT NULL,
        estimate_per_minute REAL,
        estimate_per_call REAL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'dialing', 'dialed', 'failed', 'unknown')),
        claimed_at TEXT,
        call_id TEXT,
        failure_status INTEGER,
        failure_message TEXT,
        unknown_reason TEXT,
        finished_at TEXT,
        reconciled_at TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS intents_by_claim ON intents (claimed_at)",
    "CREATE INDEX IF NOT EXISTS intents_by_number ON intents (to_number, claimed_at)",
    "CREATE INDEX IF NOT EXISTS intents_by_batch ON intents (batch_id) WHERE batch_id IS NOT NULL",
    """CREATE TABLE IF NOT EXISTS audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        intent_id TEXT,
        agent_id TEXT,
        to_number TEXT,
        estimate REAL,
        charge REAL,
        detail TEXT NOT NULL DEFAULT '{}'
    )""",
    # Append-only is enforced by the database, not by the goodwill of the code that writes it.
    """CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END""",
)

# Version 2: consents become their own records, used once; an intent is a decided dial. Tokens of
# version 1 that were never confirmed are dropped (they lived five minutes); every dial is kept,
# so the caps, cooldowns and holds carry over.
_V2: Final = (
    # token_hash, never the token: whoever reads the file cannot confirm anything with it.
    """CREATE TABLE consents (
        consent_id TEXT PRIMARY KEY,
        token_hash TEXT UNIQUE,
        kind TEXT NOT NULL CHECK (kind IN ('single', 'batch')),
        mode TEXT NOT NULL CHECK (mode IN ('token', 'elicit')),
        agent_id TEXT NOT NULL,
        phone_number_id TEXT,
        contact_id TEXT,
        binding TEXT NOT NULL,
        destinations TEXT NOT NULL,
        question TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('open', 'used')),
        answer TEXT,
        answered_at TEXT,
        answer_key TEXT UNIQUE
    )""",
    "CREATE INDEX consents_by_binding ON consents (binding, state, created_at)",
    "ALTER TABLE intents RENAME TO intents_v1",
    # One decision per consent and position: a second confirmation can never claim the same slot.
    """CREATE TABLE intents (
        intent_id TEXT PRIMARY KEY,
        consent_id TEXT REFERENCES consents (consent_id),
        position INTEGER NOT NULL DEFAULT 0,
        agent_id TEXT NOT NULL,
        to_number TEXT NOT NULL,
        phone_number_id TEXT,
        contact_id TEXT,
        mode TEXT NOT NULL,
        estimate_per_minute REAL,
        estimate_per_call REAL,
        state TEXT NOT NULL CHECK (state IN ('dialing', 'dialed', 'failed', 'unknown', 'refused')),
        refused_rules TEXT,
        decided_at TEXT NOT NULL,
        call_id TEXT,
        failure_status INTEGER,
        failure_message TEXT,
        unknown_reason TEXT,
        finished_at TEXT,
        reconciled_at TEXT,
        UNIQUE (consent_id, position)
    )""",
    """INSERT INTO intents (intent_id, agent_id, to_number, phone_number_id, contact_id, mode, estimate_per_minute,
        estimate_per_call, state, decided_at, call_id, failure_status, failure_message, unknown_reason,
        finished_at, reconciled_at)
       SELECT intent_id, agent_id, to_number, phone_number_id, contact_id, mode, estimate_per_minute,
        estimate_per_call, state, claimed_at, call_id, failure_status, failure_message, unknown_reason,
        finished_at, reconciled_at
       FROM intents_v1 WHERE state != 'pending'""",
    # Dropped before the new indexes are made: version 1's indexes moved with the renamed table.
    "DROP TABLE intents_v1",
    "CREATE INDEX intents_by_decision ON intents (decided_at)",
    "CREATE INDEX intents_by_number ON intents (to_number, decided_at)",
    "CREATE INDEX intents_by_call ON intents (call_id) WHERE call_id IS NOT NULL",
)

# Version 3: each claim names the process that made it, so a process known to be gone can have
# its claims settled by another before they grow stale.
_V3: Final = ("ALTER TABLE intents ADD COLUMN claimed_by TEXT",)

# MIGRATIONS[n - 1] takes the schema to version n.
MIGRATIONS: Final[tuple[Sequence[str], ...]] = (_V1, _V2, _V3)
SCHEMA_VERSION: Final = len(MIGRATIONS)


def open_connection(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the ledger file in WAL mode, migrated to this release's schema."""
    created = not path.exists()
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
    if created:
        # The ledger holds the numbers people were called at: readable by the owner only.
        os.chmod(path, 0o600)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if _enter_wal(conn) != "wal":
        conn.close()
        raise LedgerError(f"{path}: SQLite could not use WAL mode here (a network filesystem?)")
    # FULL: with NORMAL a power cut can undo a committed claim, and a lost claim can dial twice.
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("BEGIN IMMEDIATE")
    try:
        _migrate(conn, path)
    except BaseException:
        conn.execute("ROLLBACK")
        conn.close()
        raise
    conn.execute("COMMIT")
    return conn


def _enter_wal(conn: sqlite3.Connection) -> str:
    """Switch the file to WAL, waiting out another connection that is writing it (up to the busy timeout)."""
    # SQLite does not apply busy_timeout to this pragma: on a file another process is creating it
    # fails at once with "database is locked", so two servers starting together would not both start.
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(0.01)


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Bring the schema to SCHEMA_VERSION inside the caller's transaction, or refuse a newer one."""
    has_meta = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone()
    rows = dict(conn.execute("SELECT key, value FROM meta").fetchall()) if has_meta else {}
    current = int(rows.get("schema_version", 0))
    if current > SCHEMA_VERSION:
        raise NewerSchemaError(
            str(path),
            current,
            rows.get("written_by"),
            SCHEMA_VERSION,
            kept_in="state directory",
            setting="OUTBOUNDCALLS_STATE_DIR",
        )
    for version in range(current + 1, SCHEMA_VERSION + 1):
        for statement in MIGRATIONS[version - 1]:
            conn.execute(statement)
    if current != SCHEMA_VERSION:
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('written_by', ?)", (__version__,))
