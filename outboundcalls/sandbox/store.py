"""A sandbox account kept in one SQLite file (WAL), shared safely by every process that opens it.

Per-entity rows, not one blob: every record (agent, number, list, contact, campaign, call) is a row
of `records` holding its JSON, and the single `account` row holds the balance, the counters, the
clock and `version`, which counts committed changes. Each record row carries the version that last
wrote it, so a process brings its in-memory copy up to date by reading only what changed since it
last looked, and a dial writes one row, not the whole account.

Every change is one BEGIN IMMEDIATE transaction around load-modify-store: catch up from the file,
apply the request in memory, write back what changed, COMMIT. SQLite's write lock serializes
processes, so two dialing at once each see the other's call, and a new id is drawn after catching
up, checked against every id in memory and inserted under the table's primary key. A process that
dies mid-request leaves an uncommitted transaction, which SQLite discards; a failed commit is
rolled back and this process reloads the account from the file. A read needs no lock unless a live
call has moved on, which charges the account.

What a request can change, and so what is written back: the account row, new records of any kind,
and calls that were live. Seeded records, contacts and ended calls never change in place.

Time: `clock_offset` seconds are added to each process's base clock (`advance_clock` moves every
process's time at once), and `clock_floor`, the latest time a write used, keeps time from going back.
A reset starts a new account in the same file under a new `account_id`; a process holding the old
one notices on its next catch-up and reloads.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, TypeVar

import anyio
import anyio.to_thread
from pydantic import TypeAdapter

from .clock import AccountClock, Clock
from .lifecycle import TERMINAL_STATUSES
from .records import (
    AccountRecord,
    AgentRecord,
    CallRecord,
    CampaignRecord,
    ContactListRecord,
    ContactRecord,
    PhoneNumberRecord,
)
from .seed import SeedIds, build_state
from .state import SandboxState

__all__ = ["SCHEMA_VERSION", "AccountStore", "AccountStoreError"]

SCHEMA_VERSION: Final = 1
BUSY_TIMEOUT_SECONDS: Final = 10.0
_T = TypeVar("_T")

# Each kind of record, and the SandboxState table and type that hold it.
_KINDS: Final[dict[str, tuple[str, type]]] = {
    "agent": ("agents", AgentRecord),
    "phone_number": ("phone_numbers", PhoneNumberRecord),
    "contact_list": ("contact_lists", ContactListRecord),
    "contact": ("contacts", ContactRecord),
    "campaign": ("campaigns", CampaignRecord),
    "call": ("calls", CallRecord),
}

_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS account (
        singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
        account_id TEXT NOT NULL,
        seed INTEGER NOT NULL,
        starting_credits REAL NOT NULL,
        seed_ids TEXT NOT NULL,
        record TEXT NOT NULL,
        dispatched INTEGER NOT NULL,
        sequence INTEGER NOT NULL,
        version INTEGER NOT NULL,
        clock_offset REAL NOT NULL,
        clock_floor TEXT NOT NULL
    )""",
    # One id space for every kind: an id names one record of this account, whatever it is.
    """CREATE TABLE IF NOT EXISTS records (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        version INTEGER NOT NULL,
        record TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS records_by_version ON records (version)",
)


class AccountStoreError(Exception):
    """The account file cannot be used (written by a newer version, or damaged)."""


@dataclass(frozen=True, slots=True)
class _Before:
    """What the account held when a write transaction began, to tell what the request changed."""

    ids: dict[str, frozenset[str]]
    live_calls: dict[str, bytes]
    account: bytes
    counters: tuple[int, int]


class AccountStore:
    """One sandbox account in a SQLite file: loaded whole, kept up to date, written back a request at a time."""

    def __init__(self, path: Path, *, clock: Clock, seed: int, credits: float) -> None:
        self.path = path
        self.clock = AccountClock(clock)
        self._adapters: dict[str, TypeAdapter[Any]] = {kind: TypeAdapter(cls) for kind, (_, cls) in _KINDS.items()}
        self._account_adapter = TypeAdapter(AccountRecord)
        self._lock = anyio.Lock()
        self._account_id = ""
        self._version = 0
        self._conn = _connect(path)
        try:
            self._conn.execute("BEGIN IMMEDIATE")  # two processes starting at once make one account
            if self._conn.execute("SELECT 1 FROM account").fetchone() is None:
                self._create(seed=seed, credits=credits)
            row = self._account_row()
            self.state = SandboxState(
                seed=row["seed"], account=self._decode_account(row["record"]), id_source=random.SystemRandom()
            )
            self.seed_ids = _decode_seed_ids(row["seed_ids"])
            self._catch_up()
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.close()  # closing rolls back what was not committed
            raise

    def close(self) -> None:
        """Close the file; the account stays in it."""
        self._conn.close()

    @asynccontextmanager
    async def transaction(self, *, read_only: bool = False) -> AsyncIterator[bool]:
        """Hold the account for one request, caught up first; yields whether changes made inside are kept."""
        async with self._lock:
            # A read takes no write lock, unless a live call has moved on by now: ending it charges the account.
            if read_only:
                await self._run(self._read_catch_up)
                if not self.state.due(self.clock.now()):
                    yield False
                    return
            await self._run(self._begin_write)
            before = self._before()
            try:
                yield True
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await self._run(self._abandon)
                raise
            with anyio.CancelScope(shield=True):
                await self._run(lambda: self._commit(before))

    async def advance_clock(self, seconds: float) -> None:
        """Move the account's time forward by `seconds`, for every process that shares it."""
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")

        def move() -> None:
            self._conn.execute("UPDATE account SET clock_offset = clock_offset + ?", (float(seconds),))
            self.clock.offset += seconds

        async with self._lock:
            await self._run(lambda: self._write(move))

    async def reset(self) -> None:
        """Start a new account in this file: the seed data, the starting balance, no call dialed, time from now."""

        def start_afresh() -> None:
            row = self._account_row()
            self._conn.execute("DELETE FROM records")
            self._create(seed=row["seed"], credits=row["starting_credits"])
            self._catch_up()

        async with self._lock:
            await self._run(lambda: self._write(start_afresh))

    # --- inside a transaction ---------------------------------------------------------------

    def _create(self, *, seed: int, credits: float) -> None:
        """Write a freshly seeded account (replacing the account row, if any)."""
        self.clock.offset, self.clock.floor = 0.0, None
        now = self.clock.now()
        state, seed_ids = build_state(seed=seed, now=now, credits=credits)
        version = self._conn.execute("SELECT COALESCE(MAX(version), 0) + 1 FROM account").fetchone()[0]
        self._conn.execute(
            "INSERT OR REPLACE INTO account (singleton, account_id, seed, starting_credits, seed_ids, record, "
            "dispatched, sequence, version, clock_offset, clock_floor) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)",
            (secrets.token_hex(8), seed, credits, _encode_seed_ids(seed_ids), self._encode_account(state.account),
             state.dispatched, state.sequence, version, now.isoformat()),
        )  # fmt: skip
        self._conn.executemany(
            "INSERT INTO records (id, kind, version, record) VALUES (?, ?, ?, ?)",
            [(record_id, kind, version, self._encode(kind, record))
             for kind, (table, _) in _KINDS.items() for record_id, record in getattr(state, table).items()],
        )  # fmt: skip

    def _catch_up(self) -> None:
        """Bring the in-memory account up to the file: all of it after a reset or a failure, else what changed."""
        row = self._account_row()
        self.clock.offset = row["clock_offset"]
        stored_floor = datetime.fromisoformat(row["clock_floor"])
        state = self.state
        if row["account_id"] != self._account_id:
            for table, _ in _KINDS.values():
                getattr(state, table).clear()
            since = 0
            state.seed = row["seed"]
            self.seed_ids = _decode_seed_ids(row["seed_ids"])
            self.clock.floor = stored_floor
        elif row["version"] == self._version:
            self.clock.floor = max(self.clock.floor or stored_floor, stored_floor)
            return
        else:
            since = self._version
            self.clock.floor = max(self.clock.floor or stored_floor, stored_floor)
        # In the order they were first written: dicts keep it, and the first active number is the default.
        rows = self._conn.execute(
            "SELECT id, kind, record FROM records WHERE version > ? ORDER BY rowid", (since,)
        ).fetchall()
        for record_id, kind, record in rows:
            getattr(state, _KINDS[kind][0])[record_id] = self._adapters[kind].validate_json(record)
        state.account = self._decode_account(row["record"])
        state.dispatched, state.sequence = row["dispatched"], row["sequence"]
        self._account_id, self._version = row["account_id"], row["version"]

    def _before(self) -> _Before:
        """The account as the transaction found it."""
        state = self.state
        return _Before(
            ids={kind: frozenset(getattr(state, table)) for kind, (table, _) in _KINDS.items()},
            live_calls={
                call.id: self._encode("call", call)
                for call in state.calls.values()
                if call.status not in TERMINAL_STATUSES
            },
            account=self._encode_account(state.account),
            counters=(state.dispatched, state.sequence),
        )

    def _commit(self, before: _Before) -> None:
        """Write back what the request changed, under a new version, and commit; on failure, reload."""
        try:
            state = self.state
            version = self._version + 1
            inserted = [
                (record_id, kind, version, self._encode(kind, record))
                for kind, (table, _) in _KINDS.items()
                for record_id, record in getattr(state, table).items()
                if record_id not in before.ids[kind]
            ]
            updated = [
                (version, encoded, call_id)
                for call_id, old in before.live_calls.items()
                if (encoded := self._encode("call", state.calls[call_id])) != old
            ]
            account = self._encode_account(state.account)
            counters = (state.dispatched, state.sequence)
            if inserted or updated or account != before.account or counters != before.counters:
                self._conn.executemany("INSERT INTO records (id, kind, version, record) VALUES (?, ?, ?, ?)", inserted)
                self._conn.executemany("UPDATE records SET version = ?, record = ? WHERE id = ?", updated)
                floor = self.clock.now().isoformat()
                self._conn.execute(
                    "UPDATE account SET record = ?, dispatched = ?, sequence = ?, version = ?, clock_floor = ?",
                    (account, *counters, version, floor),
                )
                self._version = version
            self._conn.execute("COMMIT")
        except BaseException:
            self._abandon()
            raise

    def _abandon(self) -> None:
        """Roll back, and reload the account so memory holds nothing the file does not."""
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")
        self._account_id = ""  # so the next catch-up reloads everything, if this one cannot
        with suppress(sqlite3.Error):  # the error that brought us here is the one to report
            self._read_catch_up()

    # --- plumbing --------------------------------------------------------------------------

    def _begin_write(self) -> None:
        """BEGIN IMMEDIATE (the write lock, waiting for another process's), then catch up."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._catch_up()
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    def _read_catch_up(self) -> None:
        """Catch up inside a read transaction, so what is read is one committed state."""
        self._conn.execute("BEGIN")
        try:
            self._catch_up()
        finally:
            self._conn.execute("COMMIT")

    def _write(self, work: Callable[[], None]) -> None:
        """Catch up, then work, in one write transaction; on failure, rolled back and reloaded."""
        self._begin_write()
        try:
            work()
        except BaseException:
            self._abandon()
            raise
        self._conn.execute("COMMIT")

    def _account_row(self) -> sqlite3.Row:
        row: sqlite3.Row | None = self._conn.execute("SELECT * FROM account WHERE singleton = 1").fetchone()
        if row is None:
            raise AccountStoreError(f"{self.path} has no account row: reset it with `outboundcalls-mcp sandbox reset`")
        return row

    def _encode(self, kind: str, record: object) -> bytes:
        return self._adapters[kind].dump_json(record)

    def _encode_account(self, account: AccountRecord) -> bytes:
        return self._account_adapter.dump_json(account)

    def _decode_account(self, text: str | bytes) -> AccountRecord:
        return self._account_adapter.validate_json(text)

    async def _run(self, work: Callable[[], _T]) -> _T:
        """Run blocking SQLite work in a worker thread: a wait for another process's lock must not stall the loop."""
        return await anyio.to_thread.run_sync(work)


def _connect(path: Path) -> sqlite3.Connection:
    """Open the account file in WAL mode with its tables, creating it readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Created 0600 before SQLite writes a byte: it holds names and numbers that look like people's.
    # SQLite gives its -wal and -shm files the same permissions.
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_SECONDS)
    try:
        conn.row_factory = sqlite3.Row
        if conn.execute("PRAGMA journal_mode = WAL").fetchone()[0].lower() != "wal":
            raise AccountStoreError(f"{path}: SQLite could not use WAL mode here (a network filesystem?)")
        # FULL, like the ledger: a dial the ledger recorded must not vanish from the account on a power cut.
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA:
                conn.execute(statement)
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) > SCHEMA_VERSION:
                raise AccountStoreError(f"{path} was written by a newer version (schema {row[0]}); upgrade this one")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    except BaseException:
        conn.close()
        raise
    return conn


def _encode_seed_ids(ids: SeedIds) -> str:
    """SeedIds as JSON (its tuples become lists, its mapping an object)."""
    values: dict[str, Any] = {}
    for field in fields(ids):
        value = getattr(ids, field.name)
        values[field.name] = dict(value) if isinstance(value, MappingProxyType) else value
    return json.dumps(values)


def _decode_seed_ids(text: str) -> SeedIds:
    """SeedIds back from JSON."""
    values = json.loads(text)
    values["deployed_agent_ids"] = tuple(values["deployed_agent_ids"])
    values["contact_ids"] = tuple(values["contact_ids"])
    values["call_ids_by_status"] = MappingProxyType(dict(values["call_ids_by_status"]))
    return SeedIds(**values)
