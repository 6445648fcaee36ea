"""The SQLite ledger's tables, row conversions, and the statements its operations share."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final, Literal

from pydantic import JsonValue

from server.ledger import (
    USAGE_WINDOW,
    AuditEntry,
    AuditKind,
    DispatchArgs,
    IntentRecord,
    LedgerError,
    LedgerStateError,
    PolicyMismatchError,
    UnknownIntentError,
    UnknownTokenError,
    UsageFacts,
)

__all__ = [
    "BUSY_TIMEOUT_MS",
    "SCHEMA",
    "SCHEMA_VERSION",
    "audit_from_row",
    "audit_intent",
    "audit_refused_claim",
    "find_intent",
    "find_intent_by_call",
    "from_db",
    "from_db_or_none",
    "hold_policy",
    "insert_audit",
    "insert_charge",
    "open_connection",
    "query_usage",
    "record_from_row",
    "refuse_secrets",
    "settle_unknown",
    "to_db",
]

SCHEMA_VERSION: Final = 1
BUSY_TIMEOUT_MS: Final = 10_000
# Dials that may have reached the vendor; they count for the caps and the cooldown, refusals do not.
_REACHED_VENDOR: Final = "('dialing', 'dialed', 'unknown')"
_SECRET_WORDS: Final = ("token", "secret", "password", "authorization", "api_key", "apikey")
# Fixed-width UTC text: readable in the sqlite3 shell, and it sorts the way time does.
_TIME_FORMAT: Final = "%Y-%m-%dT%H:%M:%S.%fZ"

SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS policy_holders (
        holder_id TEXT PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        summary TEXT NOT NULL,
        started_at TEXT NOT NULL,
        seen_at TEXT NOT NULL
    )""",
    # token_hash, never the token: whoever reads the file cannot confirm anything with it.
    # batch_id is reserved for one token covering several destinations (a later issue).
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


def open_connection(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the ledger file in WAL mode with its tables."""
    created = not path.exists()
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
    if created:
        # The ledger holds the numbers people were called at: readable by the owner only.
        os.chmod(path, 0o600)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if conn.execute("PRAGMA journal_mode = WAL").fetchone()[0].lower() != "wal":
        raise LedgerError(f"{path}: SQLite could not use WAL mode here (a network filesystem?)")
    # FULL: with NORMAL a power cut can undo a committed claim, and a lost claim can dial twice.
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in SCHEMA:
            conn.execute(statement)
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        elif int(row[0]) > SCHEMA_VERSION:
            raise LedgerError(f"{path} was written by a newer version (schema {row[0]}); upgrade this one")
    except BaseException:
        conn.execute("ROLLBACK")
        conn.close()
        raise
    conn.execute("COMMIT")
    return conn


def query_usage(conn: sqlite3.Connection, to_number: str | None, at: datetime) -> UsageFacts:
    """Dials and estimated credits in the window before at, and to_number's last dial and unknown outcome."""
    calls, credits = conn.execute(
        f"SELECT COUNT(*), COALESCE(SUM(estimate_per_call), 0) FROM intents "
        f"WHERE state IN {_REACHED_VENDOR} AND claimed_at > ?",
        (to_db(at - USAGE_WINDOW),),
    ).fetchone()
    last_dial = unknown_at = None
    if to_number is not None:
        last_dial, unknown_at = conn.execute(
            f"SELECT MAX(CASE WHEN state IN {_REACHED_VENDOR} THEN claimed_at END), "
            "MAX(CASE WHEN state = 'unknown' THEN claimed_at END) "
            "FROM intents WHERE to_number = ?",
            (to_number,),
        ).fetchone()
    return UsageFacts(
        to_number=to_number,
        calls_last_24h=calls,
        credits_last_24h=round(credits, 2),
        last_dial_at=from_db_or_none(last_dial),
        unknown_outcome_at=from_db_or_none(unknown_at),
    )


def to_db(moment: datetime) -> str:
    """An aware time as fixed-width UTC text."""
    return moment.astimezone(UTC).strftime(_TIME_FORMAT)


def from_db(text: str) -> datetime:
    """Stored UTC text back to an aware time."""
    # Not strptime: on first use it imports _strptime and compiles locale-dependent regexes, for a
    # format fromisoformat reads exactly and faster (to_db writes it fixed-width, microseconds included).
    if not text.endswith("Z"):
        raise ValueError(f"not a stored UTC time: {text!r}")
    return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)


def from_db_or_none(text: str | None) -> datetime | None:
    """Stored UTC text back to an aware time, for columns that may be empty."""
    return None if text is None else from_db(text)


def record_from_row(row: sqlite3.Row) -> IntentRecord:
    """An intent record from its row."""
    return IntentRecord(
        intent_id=row["intent_id"],
        batch_id=row["batch_id"],
        args=DispatchArgs(
            agent_id=row["agent_id"],
            to_number=row["to_number"],
            phone_number_id=row["phone_number_id"],
            contact_id=row["contact_id"],
        ),
        mode=row["mode"],
        state=row["state"],
        estimated_credits_per_minute=row["estimate_per_minute"],
        estimated_credits_per_call=row["estimate_per_call"],
        created_at=from_db(row["created_at"]),
        expires_at=from_db(row["expires_at"]),
        claimed_at=from_db_or_none(row["claimed_at"]),
        call_id=row["call_id"],
        failure_status=row["failure_status"],
        failure_message=row["failure_message"],
        unknown_reason=row["unknown_reason"],
        finished_at=from_db_or_none(row["finished_at"]),
        reconciled_at=from_db_or_none(row["reconciled_at"]),
    )


def find_intent(conn: sqlite3.Connection, key: str) -> IntentRecord | None:
    """The intent stored under a token hash, if any."""
    row = conn.execute("SELECT * FROM intents WHERE token_hash = ?", (key,)).fetchone()
    return None if row is None else record_from_row(row)


def find_intent_by_call(conn: sqlite3.Connection, call_id: str) -> IntentRecord | None:
    """The intent that recorded this vendor call id, if any."""
    row = conn.execute("SELECT * FROM intents WHERE call_id = ? LIMIT 1", (call_id,)).fetchone()
    return None if row is None else record_from_row(row)


def insert_charge(conn: sqlite3.Connection, call_id: str, credits: float, at: datetime) -> bool:
    """Audit a charge for the intent that dialed call_id, once; False if no intent did or it is already audited."""
    record = find_intent_by_call(conn, call_id)
    if record is None:
        return False
    seen = conn.execute("SELECT 1 FROM audit WHERE kind = 'charge' AND intent_id = ? LIMIT 1", (record.intent_id,))
    if seen.fetchone() is not None:
        return False
    insert_audit(
        conn, "charge", at, intent_id=record.intent_id, agent_id=record.args.agent_id, to_number=record.args.to_number,
        estimate=record.estimated_credits_per_minute, charge=credits, detail={"call_id": call_id},
    )  # fmt: skip
    return True


def insert_audit(
    conn: sqlite3.Connection,
    kind: AuditKind,
    at: datetime,
    *,
    intent_id: str | None = None,
    agent_id: str | None = None,
    to_number: str | None = None,
    estimate: float | None = None,
    charge: float | None = None,
    detail: Mapping[str, JsonValue] | None = None,
) -> int:
    """Append one audit row inside the caller's transaction; its id."""
    row_id = conn.execute(
        "INSERT INTO audit (at, kind, intent_id, agent_id, to_number, estimate, charge, detail) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (to_db(at), kind, intent_id, agent_id, to_number, estimate, charge, json.dumps(dict(detail or {}))),
    ).lastrowid
    assert row_id is not None
    return row_id


def audit_intent(
    conn: sqlite3.Connection, kind: AuditKind, at: datetime, record: IntentRecord, detail: Mapping[str, JsonValue]
) -> None:
    """Append an audit entry about an intent, inside the caller's transaction."""
    insert_audit(
        conn, kind, at, intent_id=record.intent_id, agent_id=record.args.agent_id, to_number=record.args.to_number,
        estimate=record.estimated_credits_per_minute, detail=detail,
    )  # fmt: skip


def audit_refused_claim(
    conn: sqlite3.Connection, at: datetime, intent_id: str | None, args: DispatchArgs, status: str
) -> None:
    """Record a confirmation that confirmed nothing, with the arguments it came with."""
    insert_audit(
        conn, "refusal", at, intent_id=intent_id, agent_id=args.agent_id, to_number=args.to_number,
        detail={"claim": status},
    )  # fmt: skip


def settle_unknown(
    conn: sqlite3.Connection, where: Literal["token_hash", "intent_id"], value: str, call_id: str | None, at: datetime
) -> IntentRecord:
    """Reconcile the unknown intent found by `where`: dialed if its call was found, audited either way."""
    if where not in ("token_hash", "intent_id"):
        raise ValueError(f"cannot look intents up by {where!r}")
    row = conn.execute(f"SELECT * FROM intents WHERE {where} = ?", (value,)).fetchone()
    if row is None:
        if where == "token_hash":
            raise UnknownTokenError("no intent was issued with this confirmation token")
        raise UnknownIntentError(f"no intent has the id {value!r}")
    record = record_from_row(row)
    if record.state != "unknown":
        raise LedgerStateError(record.intent_id, record.state, "reconcile")
    if call_id is not None:
        conn.execute(
            "UPDATE intents SET state = 'dialed', call_id = ?, reconciled_at = ? WHERE intent_id = ?",
            (call_id, to_db(at), record.intent_id),
        )
    audit_intent(conn, "reconcile", at, record, {"found": call_id is not None, "call_id": call_id})
    row = conn.execute("SELECT * FROM intents WHERE intent_id = ?", (record.intent_id,)).fetchone()
    return record_from_row(row)


def audit_from_row(row: sqlite3.Row) -> AuditEntry:
    """An audit entry from its row."""
    return AuditEntry(
        id=row["id"],
        at=from_db(row["at"]),
        kind=row["kind"],
        intent_id=row["intent_id"],
        agent_id=row["agent_id"],
        to_number=row["to_number"],
        estimated_credits_per_minute=row["estimate"],
        charge_credits=row["charge"],
        detail=json.loads(row["detail"]),
    )


def refuse_secrets(detail: Mapping[str, JsonValue]) -> None:
    """Keep secrets out of the audit trail: a key that names one is a programming error."""
    for name, value in detail.items():
        if any(word in name.lower() for word in _SECRET_WORDS):
            raise ValueError(f"audit detail {name!r} looks like a secret; the audit trail never stores secrets")
        if isinstance(value, Mapping):
            refuse_secrets(value)


def hold_policy(
    conn: sqlite3.Connection,
    *,
    holder_id: str,
    fingerprint: str,
    summary: Mapping[str, str],
    at: datetime,
    lease: timedelta,
    location: Path,
) -> None:
    """Renew a process's policy lease, refusing if a live process holds a different policy."""
    conn.execute("DELETE FROM policy_holders WHERE seen_at < ?", (to_db(at - lease),))
    other = conn.execute(
        "SELECT summary, seen_at FROM policy_holders WHERE fingerprint != ? AND holder_id != ? "
        "ORDER BY seen_at DESC LIMIT 1",
        (fingerprint, holder_id),
    ).fetchone()
    if other is not None:
        theirs: dict[str, str] = json.loads(other["summary"])
        changes = {
            name: (theirs.get(name, "(unset)"), summary.get(name, "(unset)"))
            for name in sorted(set(theirs) | set(summary))
            if theirs.get(name) != summary.get(name)
        }
        raise PolicyMismatchError(str(location), changes, from_db(other["seen_at"]))
    conn.execute(
        "INSERT INTO policy_holders (holder_id, fingerprint, summary, started_at, seen_at) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (holder_id) DO UPDATE SET seen_at = excluded.seen_at",
        (holder_id, fingerprint, json.dumps(dict(summary)), to_db(at), to_db(at)),
    )
