"""Where a test's ledger lives: a state directory (SQLite), or a PostgreSQL schema of its own that is dropped after.

Tests that take the `place` fixture run once per backend. PostgreSQL is the database at
OUTBOUNDCALLS_TEST_DATABASE_URL: without that variable those runs skip, saying so; with it, a
database that cannot be reached fails them (CI sets it, so nothing is silently skipped there).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, Literal

from outboundcalls_mcp.server.ledger_sql import SqlLedger

TEST_DATABASE_VARIABLE: Final = "OUTBOUNDCALLS_TEST_DATABASE_URL"
BACKENDS: Final = ("sqlite", "postgres")
SKIP_REASON: Final = f"PostgreSQL tests need {TEST_DATABASE_VARIABLE} (e.g. postgresql://postgres@127.0.0.1:5432/test)"


def configured_database_url() -> str | None:
    """The PostgreSQL database the tests may use, if any."""
    return os.environ.get(TEST_DATABASE_VARIABLE) or None


@dataclass(frozen=True)
class LedgerPlace:
    """A ledger's place: SQLite in state_dir, or PostgreSQL in `schema` of the test database (state_dir holds files)."""

    backend: Literal["sqlite", "postgres"]
    state_dir: Path
    database_url: str | None = None
    schema: str | None = None

    def __truediv__(self, name: str) -> LedgerPlace:
        """Another place of the same kind, apart from this one (a round of a test, a second account)."""
        schema = None if self.schema is None else f"{self.schema}_{name.replace('-', '_')}"[:55]
        return replace(self, state_dir=self.state_dir / name, schema=schema)

    def settings(self) -> dict[str, Any]:
        """The Settings values that put a server's ledger here."""
        values: dict[str, Any] = {"state_dir": self.state_dir}
        if self.backend == "postgres":
            values |= {"database_url": self.database_url, "database_schema": self.schema}
        return values

    def env(self) -> dict[str, str]:
        """The same, as a server process's OUTBOUNDCALLS_* environment."""
        return {f"OUTBOUNDCALLS_{name.upper()}": str(value) for name, value in self.settings().items()}

    async def open(self, *, poll_interval: float = 0.05) -> SqlLedger:
        """A ledger here, as a server process would open it."""
        if self.backend == "sqlite":
            from outboundcalls_mcp.server.ledger_sqlite import SqliteLedger

            return SqliteLedger(self.state_dir, poll_interval=poll_interval)
        from outboundcalls_mcp.server.ledger_postgres import PostgresLedger

        assert self.database_url is not None and self.schema is not None
        return await PostgresLedger.open(self.database_url, self.schema, poll_interval=poll_interval)

    @asynccontextmanager
    async def opened(self, *, poll_interval: float = 0.05) -> AsyncIterator[SqlLedger]:
        """A ledger here, closed (its lease dropped) however the block ends."""
        ledger = await self.open(poll_interval=poll_interval)
        try:
            yield ledger
        finally:
            await ledger.aclose()


def new_schema_prefix() -> str:
    """A schema name no other test run uses."""
    return f"test_{secrets.token_hex(5)}"


def check_reachable(url: str) -> None:
    """Fail (never skip) when the configured test database cannot be reached."""
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=10) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        raise AssertionError(
            f"{TEST_DATABASE_VARIABLE} is set but its database cannot be reached: {type(exc).__name__}"
        ) from None


def drop_schemas(url: str, prefix: str) -> None:
    """Drop every schema a test made under this prefix (the audit's triggers do not stop a DROP)."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", (prefix + "%",)).fetchall()
        for (name,) in rows:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
