"""Call ends in PostgreSQL, told to every replica: stored with a NOTIFY, heard on one LISTEN connection per replica.

A replica that learns a call ended (from the webhook, or a tool seeing a terminal status) stores
it and sends NOTIFY in the same transaction, so a listener that hears the notice finds the row.
Each replica keeps one dedicated connection LISTENing on its schema's channel and wakes its own
waiters and subscribers when a notice arrives: no replica polls the table. The connection is
re-made after any failure, with a growing pause; once back, the calls still waited on are read
again, so an end announced while it was away is not missed.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

import anyio

from outboundcalls.calls import CallDetail
from outboundcalls_mcp.server.ledger import LedgerUnavailableError
from outboundcalls_mcp.server.ledger_postgres import APPLICATION_NAME, CONNECT_SECONDS, connection_options
from outboundcalls_mcp.server.ledger_schema_postgres import migrate

if TYPE_CHECKING:
    from psycopg import AsyncConnection
    from psycopg_pool import AsyncConnectionPool

__all__ = ["PostgresCallEnds", "channel_of"]

log = logging.getLogger("outboundcalls.call_events")

# Pauses between attempts to re-make the LISTEN connection: quick at first, never hammering.
RECONNECT_FIRST: Final = 0.2
RECONNECT_MAX: Final = 5.0


def channel_of(schema: str) -> str:
    """The NOTIFY channel of one schema's call ends; other accounts' replicas never hear it."""
    return f"outboundcalls_call_ends_{schema}"


class PostgresCallEnds:
    """The call-end store of replicas sharing a database, and the LISTEN loop that hears the others' ends."""

    def __init__(self, url: str, schema: str, location: str) -> None:
        self._url = url
        self.schema = schema
        self.location = location
        self.channel = channel_of(schema)
        self._pool: AsyncConnectionPool[Any] | None = None
        self.listening = anyio.Event()

    async def open(self, stack: AsyncExitStack) -> None:
        """Open a small pool (the schema migrated first, as the ledger does); closed with the stack."""
        import psycopg
        from psycopg_pool import AsyncConnectionPool, PoolTimeout

        options = connection_options(self.schema, f"{APPLICATION_NAME} call-ends")
        try:
            with anyio.CancelScope(shield=True):  # as the ledger's: never a half-made connection left open
                async with await psycopg.AsyncConnection.connect(self._url, **options) as conn:
                    await migrate(conn, self.schema, self.location)
        except psycopg.OperationalError:
            raise LedgerUnavailableError(self.location) from None  # start-up names the database, never its password
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            self._url, min_size=1, max_size=2, open=False, name=f"call ends {self.schema}", kwargs=options,
            check=AsyncConnectionPool.check_connection, timeout=CONNECT_SECONDS,
        )  # fmt: skip
        stack.push_async_callback(pool.close)
        try:
            await pool.open(wait=True, timeout=CONNECT_SECONDS)
        except PoolTimeout:
            raise LedgerUnavailableError(self.location) from None
        self._pool = pool

    async def record(self, call: CallDetail, *, event: str | None, received_at: datetime) -> None:
        """Store a call's end and tell every replica, in one transaction (ConnectionError if unreachable)."""
        from psycopg.types.json import Jsonb

        async with self._connection() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO call_ends (call_id, status, event, received_at, call_json) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (call_id) DO UPDATE SET status = excluded.status, event = excluded.event, "
                "received_at = excluded.received_at, call_json = excluded.call_json",
                (call.id, call.status, event, received_at, Jsonb(call.model_dump(mode="json", by_alias=True))),
            )
            await conn.execute("SELECT pg_notify(%s, %s)", (self.channel, call.id))

    async def get(self, call_id: str) -> CallDetail | None:
        """The stored end of a call, if one is known."""
        async with self._connection() as conn:
            cursor = await conn.execute("SELECT call_json FROM call_ends WHERE call_id = %s", (call_id,))
            row = await cursor.fetchone()
        return None if row is None else CallDetail.model_validate(row[0])

    async def listen(
        self, on_end: Callable[[str], Awaitable[None]], on_reconnect: Callable[[], Awaitable[None]]
    ) -> None:
        """Hear every replica's call ends until cancelled, re-making the connection after any failure."""
        import psycopg
        from psycopg import sql

        pause = RECONNECT_FIRST
        first = True
        options = connection_options(self.schema, f"{APPLICATION_NAME} listen")
        while True:
            conn: AsyncConnection[Any] | None = None
            try:
                # Shielded (bounded by the connect timeout): cancelled half-way, a connection would be left open.
                with anyio.CancelScope(shield=True):
                    opened = conn = await psycopg.AsyncConnection.connect(self._url, autocommit=True, **options)
                await opened.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                pause = RECONNECT_FIRST
                if not first:
                    log.info("listening for call ends again")
                    await on_reconnect()
                first = False
                self.listening.set()
                async for notice in opened.notifies():
                    try:
                        await on_end(notice.payload)
                    except Exception:  # one bad notice must not stop this replica hearing the rest
                        log.exception("could not pass on the end of call %s", notice.payload)
            except psycopg.Error as exc:
                log.warning("lost the call-end notices (%s); reconnecting", type(exc).__name__)
            finally:
                if conn is not None:
                    with anyio.CancelScope(shield=True):
                        await conn.close()
            self.listening = anyio.Event()
            await anyio.sleep(pause)
            pause = min(pause * 2, RECONNECT_MAX)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[AsyncConnection[Any]]:
        """A pooled connection; an unreachable database is a ConnectionError (an OSError), as a file's would be."""
        import psycopg
        from psycopg_pool import PoolTimeout

        if self._pool is None:
            raise RuntimeError("the call-end store is not open")
        try:
            async with self._pool.connection() as conn:
                yield conn
        except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout):
            raise ConnectionError(f"the call-end store ({self.location}) cannot be reached") from None
