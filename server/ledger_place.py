"""Where the ledger lives: PostgreSQL at OUTBOUNDCALLS_DATABASE_URL, shared by replicas; else SQLite in state_dir."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from outboundcalls_mcp.server.ledger import AuditEntry
    from outboundcalls_mcp.server.ledger_sql import SqlLedger
    from outboundcalls_mcp.server.settings import Settings

__all__ = ["describe_ledger", "ledger_schema", "open_ledger", "read_audit_trail"]


async def open_ledger(settings: Settings) -> SqlLedger:
    """The ledger these settings name, opened (and, in PostgreSQL, migrated); LedgerError if it cannot be."""
    if settings.database_url is not None:
        try:
            import psycopg  # noqa: F401  # imported to learn whether the postgres extra is installed
            import psycopg_pool  # noqa: F401  # likewise
        except ImportError:
            from outboundcalls_mcp.server.ledger import LedgerError

            raise LedgerError(
                "OUTBOUNDCALLS_DATABASE_URL needs the PostgreSQL driver: pip install 'outboundcalls-mcp[postgres]'"
            ) from None
        from outboundcalls_mcp.server.ledger_postgres import PostgresLedger

        return await PostgresLedger.open(settings.database_url.get_secret_value(), ledger_schema(settings))
    from outboundcalls_mcp.server.ledger_sqlite import SqliteLedger
    from outboundcalls_mcp.server.state_dir import resolve_state_dir

    return SqliteLedger(resolve_state_dir(settings))


def describe_ledger(settings: Settings) -> str:
    """Where the ledger is, for a person: never the database's user or password."""
    if settings.database_url is not None:
        from outboundcalls_mcp.server.ledger_postgres import describe_database

        return describe_database(settings.database_url.get_secret_value(), ledger_schema(settings))
    from outboundcalls_mcp.server.state_dir import resolve_state_dir

    return str(resolve_state_dir(settings))


def ledger_schema(settings: Settings) -> str:
    """The PostgreSQL schema of the ledger: sandbox dials are kept apart, as in SQLite's sandbox/ directory."""
    return settings.database_schema + ("_sandbox" if settings.sandbox else "")


async def read_audit_trail(settings: Settings, limit: int) -> list[AuditEntry]:
    """The most recent audit entries, newest first; none (and no SQLite file made) where no ledger exists yet."""
    if settings.database_url is None:
        from outboundcalls_mcp.server.ledger_sqlite import read_audit
        from outboundcalls_mcp.server.state_dir import resolve_state_dir

        return await read_audit(resolve_state_dir(settings), limit)
    ledger = await open_ledger(settings)
    try:
        return await ledger.recent_audit(limit)
    finally:
        await ledger.aclose()
