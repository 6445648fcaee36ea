"""The PostgreSQL ledger's schema: versioned migrations applied at start-up, once, under an advisory lock.

Everything lives in one schema of the database (OUTBOUNDCALLS_DATABASE_SCHEMA), so one database can
hold several accounts' ledgers, or a test run's, side by side. Replicas starting together take the
same transaction-scoped advisory lock: one migrates, the others find the schema current. A schema
written by a newer release is refused, naming the release to run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from outboundcalls.version import __version__
from outboundcalls_mcp.server.ledger import NewerSchemaError

if TYPE_CHECKING:
    from psycopg import AsyncConnection

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "advisory_key", "migrate"]

_V1: Final = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE policy_holders (
        holder_id TEXT PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        summary JSONB NOT NULL,
        started_at TIMESTAMPTZ NOT NULL,
        seen_at TIMESTAMPTZ NOT NULL
    )""",
    # rowid: the name SQLite gives its own insertion order, so the shared SQL orders both alike.
    # token_hash, never the token: whoever reads the database cannot confirm anything with it.
    """CREATE TABLE consents (
        rowid BIGINT GENERATED ALWAYS AS IDENTITY,
        consent_id TEXT PRIMARY KEY,
        token_hash TEXT UNIQUE,
        kind TEXT NOT NULL CHECK (kind IN ('single', 'batch')),
        mode TEXT NOT NULL CHECK (mode IN ('token', 'elicit')),
        agent_id TEXT NOT NULL,
        phone_number_id TEXT,
        contact_id TEXT,
        binding TEXT NOT NULL,
        destinations JSONB NOT NULL,
        question TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('open', 'used')),
        answer TEXT,
        answered_at TIMESTAMPTZ,
        answer_key TEXT UNIQUE
    )""",
    "CREATE INDEX consents_by_binding ON consents (binding, state, created_at)",
    # One decision per consent and position: a second confirmation can never claim the same slot.
    """CREATE TABLE intents (
        rowid BIGINT GENERATED ALWAYS AS IDENTITY,
        intent_id TEXT PRIMARY KEY,
        consent_id TEXT REFERENCES consents (consent_id),
        position INTEGER NOT NULL DEFAULT 0,
        agent_id TEXT NOT NULL,
        to_number TEXT NOT NULL,
        phone_number_id TEXT,
        contact_id TEXT,
        mode TEXT NOT NULL,
        estimate_per_minute DOUBLE PRECISION,
        estimate_per_call DOUBLE PRECISION,
        state TEXT NOT NULL CHECK (state IN ('dialing', 'dialed', 'failed', 'unknown', 'refused')),
        refused_rules JSONB,
        decided_at TIMESTAMPTZ NOT NULL,
        call_id TEXT,
        failure_status INTEGER,
        failure_message TEXT,
        unknown_reason TEXT,
        finished_at TIMESTAMPTZ,
        reconciled_at TIMESTAMPTZ,
        claimed_by TEXT,
        UNIQUE (consent_id, position)
    )""",
    "CREATE INDEX intents_by_decision ON intents (decided_at)",
    "CREATE INDEX intents_by_number ON intents (to_number, decided_at)",
    "CREATE INDEX intents_by_call ON intents (call_id) WHERE call_id IS NOT NULL",
    "CREATE INDEX intents_dialing ON intents (decided_at) WHERE state = 'dialing'",
    """CREATE TABLE audit (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at TIMESTAMPTZ NOT NULL,
        kind TEXT NOT NULL,
        intent_id TEXT,
        agent_id TEXT,
        to_number TEXT,
        estimate DOUBLE PRECISION,
        charge DOUBLE PRECISION,
        detail JSONB NOT NULL DEFAULT '{}'
    )""",
    "CREATE INDEX audit_charges ON audit (intent_id) WHERE kind = 'charge'",
    # Append-only is enforced by the database, not by the goodwill of the code that writes it.
    """CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'the audit trail is append-only'; END $$""",
    """CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit
        FOR EACH ROW EXECUTE FUNCTION audit_append_only()""",
    """CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
        FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()""",
    # Call ends as the API confirmed them; replicas are told of each by NOTIFY, and read it here.
    """CREATE TABLE call_ends (
        call_id TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        event TEXT,
        received_at TIMESTAMPTZ NOT NULL,
        call_json JSONB NOT NULL
    )""",
)

# MIGRATIONS[n - 1] takes the schema to version n.
MIGRATIONS: Final[tuple[Sequence[str], ...]] = (_V1,)
SCHEMA_VERSION: Final = len(MIGRATIONS)


def advisory_key(purpose: str, schema: str) -> int:
    """A signed 64-bit advisory-lock key for one purpose on one schema; other schemas never contend."""
    digest = hashlib.sha256(f"outboundcalls-mcp {purpose} {schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def migrate(conn: AsyncConnection[Any], schema: str, location: str) -> None:
    """Bring the schema to SCHEMA_VERSION in one transaction under the migration lock, or refuse a newer one."""
    from psycopg import sql

    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (advisory_key("migrate", schema),))
        await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        await conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(schema)))
        cursor = await conn.execute("SELECT to_regclass('meta') IS NOT NULL")
        found = await cursor.fetchone()
        rows: dict[str, str] = {}
        if found is not None and found[0]:
            cursor = await conn.execute("SELECT key, value FROM meta")
            rows = {str(key): str(value) for key, value in await cursor.fetchall()}
        current = int(rows.get("schema_version", 0))
        if current > SCHEMA_VERSION:
            raise NewerSchemaError(
                location,
                current,
                rows.get("written_by"),
                SCHEMA_VERSION,
                kept_in="database",
                setting="OUTBOUNDCALLS_DATABASE_SCHEMA",
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[version - 1]:
                await conn.execute(statement)
        if current != SCHEMA_VERSION:
            upsert = (
                "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
            )
            await conn.execute(upsert, ("schema_version", str(SCHEMA_VERSION)))
            await conn.execute(upsert, ("written_by", __version__))
