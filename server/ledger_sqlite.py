"""The dispatch ledger in SQLite (WAL): one file in the state directory, shared safely by processes.

Exactly-once comes from SQLite itself: the claim is one conditional UPDATE (state='pending' ->
'dialing') under the database's write lock, so of any number of connections, in any number of
processes, exactly one sees a changed row. No file lock is involved.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final, TypeVar, get_args

import anyio
import anyio.to_thread
from pydantic import JsonValue

from server.ledger import (
    AuditEntry,
    AuditKind,
    ClaimResult,
    ConfirmMode,
    DialedOutcome,
    DispatchArgs,
    FailedOutcome,
    Intent,
    IntentRecord,
    LedgerStateError,
    Outcome,
    RefusedOutcome,
    UnknownTokenError,
    UsageFacts,
    token_hash,
    utc,
)
from server.ledger_sql import (
    audit_from_row,
    audit_intent,
    audit_refused_claim,
    find_intent,
    find_intent_by_call,
    hold_policy,
    insert_audit,
    insert_charge,
    open_connection,
    query_usage,
    record_from_row,
    refuse_secrets,
    settle_unknown,
    to_db,
)
from server.preflight import estimate_per_call

__all__ = ["LEDGER_FILENAME", "SqliteLedger", "read_audit"]

LEDGER_FILENAME: Final = "ledger.sqlite3"
TOKEN_BYTES: Final = 24
# A process that has not beaten its heart for this long is presumed gone; its policy stops counting.
POLICY_LEASE: Final = timedelta(minutes=5)
_T = TypeVar("_T")


# The async methods run their short SQL in a worker thread: with busy_timeout a statement may wait
# seconds for another process's write lock, and blocking the event loop that long would stall
# every MCP session of this server. One connection per ledger, used by one thread at a time.
class SqliteLedger:
    """LedgerStore on one SQLite file in the state directory, safe to share between processes."""

    def __init__(self, state_dir: Path, *, poll_interval: float = 0.05) -> None:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = state_dir / LEDGER_FILENAME
        self._poll_interval = poll_interval
        self._holder_id = secrets.token_hex(8)
        self._fingerprint: str | None = None
        self._summary: dict[str, str] = {}
        self._lock = threading.Lock()
        self._events: dict[str, anyio.Event] = {}
        self._conn = open_connection(self.path)

    async def ensure_policy_fingerprint(self, fingerprint: str, summary: Mapping[str, str], *, now: datetime) -> None:
        """Join the ledger with this policy, or raise PolicyMismatchError if a live process has another."""
        at, held = utc(now), dict(summary)
        await self._run(lambda: self._in_transaction(lambda conn: self._hold_policy(conn, at, fingerprint, held)))
        self._fingerprint, self._summary = fingerprint, held

    async def heartbeat(self, *, now: datetime) -> None:
        """Tell other processes this one is still running with its policy."""
        await self._run(lambda: self._in_transaction(lambda conn: self._hold_policy(conn, utc(now))))

    async def create_intent(
        self,
        args: DispatchArgs,
        *,
        estimate_per_minute: float | None,
        now: datetime,
        expires_at: datetime,
        mode: ConfirmMode,
        batch_id: str | None = None,
        token: str | None = None,
    ) -> Intent:
        """Record a pending intent and return it with a fresh confirmation token."""
        at, until = utc(now), utc(expires_at)
        if until <= at:
            raise ValueError(f"expires_at {until.isoformat()} is not after now {at.isoformat()}")
        if mode not in get_args(ConfirmMode):
            raise ValueError(f"mode {mode!r} is not one of {', '.join(get_args(ConfirmMode))}")
        if token is not None and len(token) < 32:
            raise ValueError("a supplied token must carry as much entropy as a fresh one (32+ characters)")
        token = token or secrets.token_urlsafe(TOKEN_BYTES)
        key = token_hash(token)
        per_call = estimate_per_call(estimate_per_minute)

        def work(conn: sqlite3.Connection) -> IntentRecord:
            self._hold_policy(conn, at)
            conn.execute(
                "INSERT INTO intents (token_hash, intent_id, batch_id, agent_id, to_number, phone_number_id, "
                "contact_id, args_hash, mode, estimate_per_minute, estimate_per_call, created_at, expires_at, state) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending')",
                (key, key[:16], batch_id, args.agent_id, args.to_number, args.phone_number_id, args.contact_id,
                 args.args_hash(), mode, estimate_per_minute, per_call, to_db(at), to_db(until)),
            )  # fmt: skip
            record = self._get(conn, key)
            if mode == "token":
                # A token is issued with a preview; the other modes are audited by their question or dial.
                audit_intent(conn, "preview", at, record, {"mode": mode, "expires_at": to_db(until)})
            return record

        record = await self._run(lambda: self._in_transaction(work))
        return Intent(**record.model_dump(), token=token)

    async def get_intent(self, token: str) -> IntentRecord | None:
        """The intent a token was issued for, if any."""
        return await self._run(lambda: self._locked(lambda conn: find_intent(conn, token_hash(token))))

    async def claim(self, token: str, args: DispatchArgs, *, now: datetime) -> ClaimResult:
        """Move a pending, unexpired intent with these exact arguments to dialing, exactly once."""
        key, at = token_hash(token), utc(now)

        def work(conn: sqlite3.Connection) -> ClaimResult:
            self._hold_policy(conn, at)
            changed = conn.execute(
                "UPDATE intents SET state = 'dialing', claimed_at = ? "
                "WHERE token_hash = ? AND args_hash = ? AND state = 'pending' AND expires_at > ?",
                (to_db(at), key, args.args_hash(), to_db(at)),
            ).rowcount
            record = find_intent(conn, key)
            if changed == 1 and record is not None:
                audit_intent(conn, "dial", at, record, {"mode": record.mode})
                return ClaimResult(status="claimed", intent=record)
            if record is None:
                audit_refused_claim(conn, at, None, args, "unknown_token")
                return ClaimResult(status="unknown_token")
            if record.args.args_hash() != args.args_hash():
                audit_refused_claim(conn, at, record.intent_id, args, "mismatched")
                return ClaimResult(status="mismatched", intent=record)
            if record.state == "dialing":
                return ClaimResult(status="in_progress", intent=record)
            if record.state != "pending":
                return ClaimResult(status="already_done", intent=record)
            audit_refused_claim(conn, at, record.intent_id, args, "expired")
            return ClaimResult(status="expired", intent=record)

        return await self._run(lambda: self._in_transaction(work))

    async def wait_for_outcome(self, token: str, *, timeout: float) -> IntentRecord | None:
        """Wait (bounded) until another claimer records the outcome; the record as it then stands."""
        key = token_hash(token)
        try:
            with anyio.move_on_after(timeout):
                while True:
                    record = await self._run(lambda: self._locked(lambda conn: find_intent(conn, key)))
                    if record is None or record.state != "dialing":
                        return record
                    # Woken at once by a claimer in this process; polling covers one in another process.
                    event = self._events.get(key) or self._events.setdefault(key, anyio.Event())
                    with anyio.move_on_after(self._poll_interval):
                        await event.wait()
        finally:
            self._events.pop(key, None)
        return await self._run(lambda: self._locked(lambda conn: find_intent(conn, key)))

    async def record_outcome(self, token: str, outcome: Outcome, *, now: datetime) -> IntentRecord:
        """Record what the POST did (from dialing), or audit a refusal (the intent stays as it is)."""
        key, at = token_hash(token), utc(now)

        def work(conn: sqlite3.Connection) -> IntentRecord:
            record = self._get(conn, key)
            if isinstance(outcome, RefusedOutcome):
                # Never a state change: pre-flight runs before the claim, and a refusal seen while
                # another confirmation holds the claim must not release it (that could dial twice).
                audit_intent(conn, "refusal", at, record, {"rules": list(outcome.rules), "stage": "confirmation"})
                return record
            if record.state != "dialing":
                raise LedgerStateError(record.intent_id, record.state, f"record the outcome {outcome.kind}")
            fields: dict[str, object] = {"state": outcome.kind, "finished_at": to_db(at)}
            if isinstance(outcome, DialedOutcome):
                fields["call_id"] = outcome.call_id
            elif isinstance(outcome, FailedOutcome):
                fields.update(failure_status=outcome.status, failure_message=outcome.message)
            else:
                fields["unknown_reason"] = outcome.reason
            assignments = ", ".join(f"{name} = ?" for name in fields)
            conn.execute(f"UPDATE intents SET {assignments} WHERE token_hash = ?", (*fields.values(), key))
            audit_intent(conn, "outcome", at, record, outcome.model_dump())
            return self._get(conn, key)

        record = await self._run(lambda: self._in_transaction(work))
        self._wake(key)
        return record

    async def reconcile(self, token: str, call_id: str | None, *, now: datetime) -> IntentRecord:
        """Settle an unknown outcome: dialed when the call was found, still unknown when not."""
        key, at = token_hash(token), utc(now)
        return await self._run(lambda: self._in_transaction(lambda conn: settle_unknown(conn, "token_hash", key, call_id, at)))

    async def reconcile_intent(self, intent_id: str, call_id: str | None, *, now: datetime) -> IntentRecord:
        """reconcile() by intent id: start-up has only ids, because tokens are stored hashed."""
        at = utc(now)
        return await self._run(
            lambda: self._in_transaction(lambda conn: settle_unknown(conn, "intent_id", intent_id, call_id, at))
        )

    async def intent_for_call(self, call_id: str) -> IntentRecord | None:
        """The intent that recorded this vendor call id, so one call is never claimed by two intents."""
        return await self._run(lambda: self._locked(lambda conn: find_intent_by_call(conn, call_id)))

    async def record_charge(self, call_id: str, credits: float, *, now: datetime) -> bool:
        """Audit what a call this ledger dialed was charged, once; False if not ours or already audited."""
        at = utc(now)
        return await self._run(lambda: self._in_transaction(lambda conn: insert_charge(conn, call_id, credits, at)))

    async def abandon_stale_claims(self, *, now: datetime, older_than: timedelta) -> list[IntentRecord]:
        """Mark claims whose process never recorded an outcome as unknown, so they get reconciled."""
        at = utc(now)
        reason = "the dialing process stopped before recording an outcome"

        def work(conn: sqlite3.Connection) -> list[IntentRecord]:
            rows = conn.execute(
                "SELECT token_hash FROM intents WHERE state = 'dialing' AND claimed_at < ?", (to_db(at - older_than),)
            ).fetchall()
            records = []
            for (key,) in rows:
                conn.execute(
                    "UPDATE intents SET state = 'unknown', unknown_reason = ?, finished_at = ? WHERE token_hash = ?",
                    (reason, to_db(at), key),
                )
                record = self._get(conn, key)
                audit_intent(conn, "outcome", at, record, {"kind": "unknown", "reason": reason})
                records.append(record)
            return records

        return await self._run(lambda: self._in_transaction(work))

    async def usage(self, to_number: str | None, *, now: datetime) -> UsageFacts:
        """Dials and estimated credits in the last 24 hours, and this number's last dial and unknown outcome."""
        at = utc(now)
        return await self._run(lambda: self._locked(lambda conn: query_usage(conn, to_number, at)))

    async def unreconciled(self) -> list[IntentRecord]:
        """Intents whose outcome is still unknown, oldest first."""

        def work(conn: sqlite3.Connection) -> list[IntentRecord]:
            rows = conn.execute("SELECT * FROM intents WHERE state = 'unknown' ORDER BY claimed_at").fetchall()
            return [record_from_row(row) for row in rows]

        return await self._run(lambda: self._locked(work))

    async def append_audit(
        self,
        kind: AuditKind,
        *,
        at: datetime,
        intent_id: str | None = None,
        agent_id: str | None = None,
        to_number: str | None = None,
        estimate: float | None = None,
        charge: float | None = None,
        detail: Mapping[str, JsonValue] | None = None,
    ) -> AuditEntry:
        """Append one entry to the audit trail."""
        entry = dict(detail or {})
        refuse_secrets(entry)
        moment = utc(at)

        def work(conn: sqlite3.Connection) -> AuditEntry:
            row_id = insert_audit(
                conn, kind, moment, intent_id=intent_id, agent_id=agent_id, to_number=to_number,
                estimate=estimate, charge=charge, detail=entry,
            )  # fmt: skip
            return audit_from_row(conn.execute("SELECT * FROM audit WHERE id = ?", (row_id,)).fetchone())

        return await self._run(lambda: self._in_transaction(work))

    async def recent_audit(self, limit: int = 50) -> list[AuditEntry]:
        """The most recent audit entries, newest first."""
        if not 1 <= limit <= 1000:
            raise ValueError(f"limit must be 1..1000, got {limit}")

        def work(conn: sqlite3.Connection) -> list[AuditEntry]:
            rows = conn.execute("SELECT * FROM audit ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
            return [audit_from_row(row) for row in rows]

        return await self._run(lambda: self._locked(work))

    async def aclose(self) -> None:
        """Leave the ledger: drop this process's policy lease and close the connection."""

        def work() -> None:
            with self._lock:
                self._conn.execute("DELETE FROM policy_holders WHERE holder_id = ?", (self._holder_id,))
                self._conn.close()

        await self._run(work)

    def _hold_policy(
        self, conn: sqlite3.Connection, at: datetime, fingerprint: str | None = None, summary: dict[str, str] | None = None
    ) -> None:
        """Renew this process's policy lease (once it joined with one), refusing on a different live policy."""
        fingerprint = fingerprint or self._fingerprint
        if fingerprint is not None:
            hold_policy(
                conn,
                holder_id=self._holder_id,
                fingerprint=fingerprint,
                summary=self._summary if summary is None else summary,
                at=at,
                lease=POLICY_LEASE,
                location=self.path.parent,
            )

    def _get(self, conn: sqlite3.Connection, key: str) -> IntentRecord:
        """The intent stored under a token hash, or UnknownTokenError."""
        record = find_intent(conn, key)
        if record is None:
            raise UnknownTokenError("no intent was issued with this confirmation token")
        return record

    def _wake(self, key: str) -> None:
        """Wake this process's waiters for an intent whose outcome was just recorded."""
        event = self._events.pop(key, None)
        if event is not None:
            event.set()

    def _locked(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run reads on the shared connection, one thread at a time."""
        with self._lock:
            return work(self._conn)

    def _in_transaction(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run work in one IMMEDIATE transaction: the write lock is taken up front, so no upgrade deadlock."""
        with self._lock, self._transaction() as conn:
            return work(conn)

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

    async def _run(self, work: Callable[[], _T]) -> _T:
        """Run blocking SQLite work in a worker thread."""
        return await anyio.to_thread.run_sync(work)


async def read_audit(state_dir: Path, limit: int = 50) -> list[AuditEntry]:
    """The most recent audit entries in a state directory, newest first; none (and no file made) if it has no ledger."""
    if not (state_dir / LEDGER_FILENAME).exists():
        return []
    ledger = SqliteLedger(state_dir)
    try:
        return await ledger.recent_audit(limit)
    finally:
        await ledger.aclose()
