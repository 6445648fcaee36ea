"""The dispatch ledger in PostgreSQL, shared by replicas: the same operations, serialized by an advisory lock.

Every write transaction first takes `pg_advisory_xact_lock` on a key derived from the ledger's schema
(one ledger, one account): writes are serialized across every replica exactly as SQLite's file lock
serializes processes, and each decision reads every dial committed before it (READ COMMITTED, each
statement after the lock sees all earlier holders' commits). The lock ends with the transaction, so
a replica that dies mid-transaction holds nothing. Reads take no lock.

A transaction runs shielded from cancellation (it is short, and a half-finished one must not be
left to the pool), and any failure to reach the database becomes LedgerUnavailableError: nothing
in that transaction happened. The pool checks each connection before lending it and replaces
broken ones, so a restarted server is reconnected to by itself.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Collection, Coroutine, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import urlsplit

import anyio

from outboundcalls_mcp.server.ledger import LedgerUnavailableError
from outboundcalls_mcp.server.ledger_schema_postgres import advisory_key, migrate
from outboundcalls_mcp.server.ledger_sql import LedgerTx, Row, SqlLedger

if TYPE_CHECKING:
    from psycopg import AsyncConnection
    from psycopg_pool import AsyncConnectionPool

__all__ = ["APPLICATION_NAME", "PostgresBackend", "PostgresLedger", "connection_options", "describe_database"]

# Each connection names its process: pg_stat_activity then tells which replicas are alive.
APPLICATION_NAME: Final = "outboundcalls-mcp"
CONNECT_SECONDS: Final = 10.0
POOL_SIZE: Final = 8
_T = TypeVar("_T")


def describe_database(url: str, schema: str) -> str:
    """Where a database is, for messages and logs: host, port, database and schema; never the user or password."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"postgresql://{host}{port}{parts.path or '/'} (schema {schema})"


def connection_options(schema: str, application_name: str) -> dict[str, Any]:
    """libpq settings every connection of a ledger uses: its schema, UTC, its name, and a dead peer noticed soon."""
    return {
        "application_name": application_name,
        "options": f"-c search_path={schema} -c timezone=UTC",
        "connect_timeout": int(CONNECT_SECONDS),
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
    }


class PostgresLedger(SqlLedger):
    """LedgerStore on a PostgreSQL schema, safe to share between replicas."""

    backend: PostgresBackend

    @classmethod
    async def open(
        cls, url: str, schema: str, *, pool_size: int = POOL_SIZE, poll_interval: float = 0.05
    ) -> PostgresLedger:
        """Connect, migrate the schema (once, whichever replica comes first), and return the ledger."""
        holder_id = secrets.token_hex(8)
        backend = await PostgresBackend.open(url, schema, holder_id=holder_id, pool_size=pool_size)
        return cls(backend, poll_interval=poll_interval, holder_id=holder_id)


class PostgresBackend:
    """LedgerBackend on a connection pool; writes serialized by a transaction-scoped advisory lock."""

    shared_by = "OUTBOUNDCALLS_DATABASE_SCHEMA"

    def __init__(self, pool: AsyncConnectionPool[Any], schema: str, location: str) -> None:
        self.pool = pool
        self.schema = schema
        self.location = location
        self.lock_key = advisory_key("ledger", schema)

    @classmethod
    async def open(cls, url: str, schema: str, *, holder_id: str, pool_size: int = POOL_SIZE) -> PostgresBackend:
        """A pool on the database, the schema migrated first; LedgerUnavailableError if it cannot be reached."""
        import psycopg
        from psycopg.rows import dict_row
        from psycopg_pool import AsyncConnectionPool

        location = describe_database(url, schema)
        options = connection_options(schema, f"{APPLICATION_NAME} {holder_id}")
        try:
            # Shielded: short and bounded by the connect timeout, and a cancelled half-way connection would stay open.
            with anyio.CancelScope(shield=True):
                async with await psycopg.AsyncConnection.connect(url, **options) as conn:
                    await migrate(conn, schema, location)
        except psycopg.OperationalError:
            raise LedgerUnavailableError(location) from None
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            url, min_size=1, max_size=pool_size, open=False, name=f"ledger {schema}",
            kwargs={**options, "row_factory": dict_row}, check=AsyncConnectionPool.check_connection,
            timeout=CONNECT_SECONDS,
        )  # fmt: skip
        try:
            await pool.open(wait=True, timeout=CONNECT_SECONDS)
        except Exception:
            await pool.close()
            raise LedgerUnavailableError(location) from None
        return cls(pool, schema, location)

    async def read(self, work: Callable[[LedgerTx], Coroutine[Any, Any, _T]]) -> _T:
        """Run work in a transaction that takes no lock."""
        return await self._run(work, lock=False)

    async def write(self, work: Callable[[LedgerTx], Coroutine[Any, Any, _T]]) -> _T:
        """Run work in one transaction holding this ledger's advisory lock."""
        return await self._run(work, lock=True)

    async def dead_holders(self, tx: LedgerTx, holder_ids: Collection[str]) -> set[str]:
        """Holders with no connection left to the database: their process is gone (or cut off from it)."""
        if not holder_ids:
            return set()
        names = {f"{APPLICATION_NAME} {holder}": holder for holder in holder_ids}
        marks = ", ".join("?" for _ in names)
        rows = await tx.fetchall(
            f"SELECT DISTINCT application_name FROM pg_stat_activity WHERE application_name IN ({marks})", list(names)
        )
        alive = {names[row["application_name"]] for row in rows}
        return set(holder_ids) - alive

    async def aclose(self) -> None:
        """Close the pool."""
        await self.pool.close()

    async def _run(self, work: Callable[[LedgerTx], Coroutine[Any, Any, _T]], *, lock: bool) -> _T:
        import psycopg
        from psycopg_pool import PoolTimeout

        # Shielded: a cancelled caller must not leave a half-run transaction on a pooled connection.
        with anyio.CancelScope(shield=True):
            try:
                async with self.pool.connection() as conn, conn.transaction():
                    if lock:
                        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (self.lock_key,))
                    result = await work(_PostgresTx(conn))
            except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout):
                raise LedgerUnavailableError(self.location) from None
        return result


class _PostgresTx:
    """LedgerTx on a psycopg connection: `?` becomes `%s`, JSON values go as jsonb, times come back in UTC."""

    def __init__(self, conn: AsyncConnection[Any]) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        cursor = await self._conn.execute(_placeholders(sql), _to_postgres(params))
        return cursor.rowcount

    async def fetchone(self, sql: str, params: Sequence[object] = ()) -> Row | None:
        cursor = await self._conn.execute(_placeholders(sql), _to_postgres(params))
        row = await cursor.fetchone()
        return None if row is None else _from_postgres(row)

    async def fetchall(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        cursor = await self._conn.execute(_placeholders(sql), _to_postgres(params))
        return [_from_postgres(row) for row in await cursor.fetchall()]


@lru_cache(maxsize=256)
def _placeholders(sql: str) -> str:
    # The shared SQL has no literal '%' and no '?' outside placeholders.
    return sql.replace("%", "%%").replace("?", "%s")


def _to_postgres(params: Sequence[object]) -> list[object]:
    from psycopg.types.json import Jsonb

    return [Jsonb(value) if isinstance(value, dict | list) else value for value in params]


def _from_postgres(row: dict[str, Any]) -> dict[str, Any]:
    return {name: value.astimezone(UTC) if isinstance(value, datetime) else value for name, value in row.items()}
