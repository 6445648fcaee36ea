"""The dispatch ledger in SQLite (WAL): one file in the state directory, shared safely by processes.

Every write runs in one IMMEDIATE transaction: SQLite's write lock on the file serializes them
across connections and processes, so a decision (the consent's state, the ledger's rules at one
`now`, the claim) sees every dial committed before it and none can slip in between. No file lock
is involved. The work runs in a worker thread: with busy_timeout a statement may wait seconds for
another process's write lock, and blocking the event loop that long would stall every session.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Collection, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TypeVar

import anyio
import anyio.to_thread

from outboundcalls_mcp.server.ledger import AuditEntry
from outboundcalls_mcp.server.ledger_schema import open_connection
from outboundcalls_mcp.server.ledger_sql import POLICY_LEASE, TIME_FORMAT, LedgerTx, Row, SqlLedger, refuse_secrets

__all__ = [
    "LEDGER_FILENAME",
    "POLICY_LEASE",
    "SqliteBackend",
    "SqliteLedger",
    "from_db",
    "read_audit",
    "refuse_secrets",
    "to_db",
]

LEDGER_FILENAME: Final = "ledger.sqlite3"
# Columns stored as fixed-width UTC text, and as JSON text: read back as datetimes and JSON values.
_TIME_COLUMNS: Final = frozenset(
    {"created_at", "expires_at", "answered_at", "decided_at", "finished_at", "reconciled_at", "at", "seen_at",
     "started_at", "last_dial_at", "unknown_at"}
)  # fmt: skip
_JSON_COLUMNS: Final = frozenset({"destinations", "refused_rules", "summary", "detail"})
_T = TypeVar("_T")


class SqliteLedger(SqlLedger):
    """LedgerStore on one SQLite file in the state directory, safe to share between processes."""

    def __init__(self, state_dir: Path, *, poll_interval: float = 0.05) -> None:
        self.backend: SqliteBackend = SqliteBackend(state_dir)
        super().__init__(self.backend, poll_interval=poll_interval)
        self.path = self.backend.path


class SqliteBackend:
    """LedgerBackend on a SQLite file: one shared connection, each transaction in a worker thread."""

    shared_by = "OUTBOUNDCALLS_STATE_DIR"

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = state_dir / LEDGER_FILENAME
        self.location = str(state_dir)
        self._lock = threading.Lock()
        self._conn = open_connection(self.path)

    async def read(self, work: Callable[[LedgerTx], Coroutine[Any, Any, _T]]) -> _T:
        """Run reads on the shared connection in a worker thread, one thread at a time."""

        def locked() -> _T:
            with self._lock:
                return _run_to_completion(work(_SqliteTx(self._conn)))

        return await anyio.to_thread.run_sync(locked)

    async def write(self, work: Callable[[LedgerTx], Coroutine[Any, Any, _T]]) -> _T:
        """Run work in one IMMEDIATE transaction (the write lock taken up front: no upgrade deadlock)."""

        def locked() -> _T:
            with self._lock, self._transaction() as conn:
                return _run_to_completion(work(_SqliteTx(conn)))

        return await anyio.to_thread.run_sync(locked)

    async def dead_holders(self, tx: LedgerTx, holder_ids: Collection[str]) -> set[str]:
        """None known beyond an expired lease: SQLite cannot tell a live process from a stopped one sooner."""
        return set()

    async def aclose(self) -> None:
        """Close the connection."""

        def close() -> None:
            with self._lock:
                self._conn.close()

        await anyio.to_thread.run_sync(close)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any error."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")


class _SqliteTx:
    """LedgerTx on a sqlite3 connection; its coroutines never suspend, so a transaction runs in one thread hop."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        return self._conn.execute(sql, _to_sqlite(params)).rowcount

    async def fetchone(self, sql: str, params: Sequence[object] = ()) -> Row | None:
        row = self._conn.execute(sql, _to_sqlite(params)).fetchone()
        return None if row is None else _from_sqlite(row)

    async def fetchall(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        return [_from_sqlite(row) for row in self._conn.execute(sql, _to_sqlite(params)).fetchall()]


def _run_to_completion(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """Run a transaction's coroutine to its end in this thread; it awaits only its statements, which never suspend."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        result: _T = done.value
        return result
    coroutine.close()
    raise RuntimeError("a SQLite ledger transaction awaited something other than its own statements")


def _to_sqlite(params: Sequence[object]) -> list[object]:
    converted: list[object] = []
    for value in params:
        if isinstance(value, datetime):
            converted.append(to_db(value))
        elif isinstance(value, dict | list | tuple):
            converted.append(json.dumps(value))
        else:
            converted.append(value)
    return converted


def _from_sqlite(row: sqlite3.Row) -> dict[str, Any]:
    values: dict[str, Any] = dict(zip(row.keys(), tuple(row), strict=True))
    for name, value in values.items():
        if value is None:
            continue
        if name in _TIME_COLUMNS:
            values[name] = from_db(value)
        elif name in _JSON_COLUMNS:
            values[name] = json.loads(value)
    return values


async def read_audit(state_dir: Path, limit: int = 50) -> list[AuditEntry]:
    """The most recent audit entries in a state directory, newest first; none (and no file made) if it has no ledger."""
    if not (state_dir / LEDGER_FILENAME).exists():
        return []
    ledger = SqliteLedger(state_dir)
    try:
        return await ledger.recent_audit(limit)
    finally:
        await ledger.aclose()


def to_db(moment: datetime) -> str:
    """An aware time as fixed-width UTC text."""
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


def from_db(text: str) -> datetime:
    """Stored UTC text back to an aware time."""
    # fromisoformat, not strptime: it reads the fixed-width format exactly, without the locale machinery.
    if not text.endswith("Z"):
        raise ValueError(f"not a stored UTC time: {text!r}")
    return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)
