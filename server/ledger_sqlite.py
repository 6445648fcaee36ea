"""The dispatch ledger in SQLite (WAL): one file in the state directory, shared safely by processes.

Every write runs in one IMMEDIATE transaction: SQLite's write lock on the file serializes them
across connections and processes, so a decision (the consent's state, the ledger's rules at one
`now`, the claim) sees every dial committed before it and none can slip in between. No file lock
is involved. The work runs in a worker thread: with busy_timeout a statement may wait seconds for
another process's write lock, and blocking the event loop that long would stall every session.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final, TypeVar

import anyio
import anyio.to_thread
from pydantic import JsonValue

from outboundcalls_mcp.server.ledger import (
    USAGE_WINDOW,
    Answer,
    AuditEntry,
    AuditKind,
    BoundArgs,
    ConsentAnswer,
    ConsentDestination,
    ConsentRecord,
    Decision,
    DialedOutcome,
    DialRequest,
    FailedOutcome,
    IntentRecord,
    LedgerStateError,
    NewConsent,
    Outcome,
    PolicyMismatchError,
    Rules,
    UnknownIntentError,
    UsageFacts,
    token_hash,
    utc,
)
from outboundcalls_mcp.server.ledger_schema import open_connection
from outboundcalls_mcp.server.preflight import PreflightResult, estimate_per_call

__all__ = ["LEDGER_FILENAME", "POLICY_LEASE", "SqliteLedger", "from_db", "read_audit", "to_db"]

LEDGER_FILENAME: Final = "ledger.sqlite3"
# A process that has not beaten its heart for this long is presumed gone; its policy stops counting.
POLICY_LEASE: Final = timedelta(minutes=5)
# Dials that may have reached the vendor; they count for the caps and the cooldown, refusals do not.
_REACHED_VENDOR: Final = "('dialing', 'dialed', 'unknown')"
_SECRET_WORDS: Final = ("token", "secret", "password", "authorization", "api_key", "apikey")
# Fixed-width UTC text: readable in the sqlite3 shell, and it sorts the way time does.
_TIME_FORMAT: Final = "%Y-%m-%dT%H:%M:%S.%fZ"
_YES: Final = ("accept", "token")
_T = TypeVar("_T")


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
        await self._write(lambda conn: self._hold_policy(conn, at, fingerprint, held))
        self._fingerprint, self._summary = fingerprint, held

    async def heartbeat(self, *, now: datetime) -> None:
        """Tell other processes this one is still running with its policy."""
        at = utc(now)
        await self._write(lambda conn: self._hold_policy(conn, at))

    async def open_consent(self, consent: NewConsent, *, now: datetime, expires_at: datetime, token: str | None) -> ConsentRecord:
        """Record a consent as shown (audited as a preview or a question); a token is stored only as its hash."""
        at, until = utc(now), utc(expires_at)
        if until <= at:
            raise ValueError(f"expires_at {until.isoformat()} is not after now {at.isoformat()}")
        if (token is None) != (consent.mode == "elicit"):
            raise ValueError("a token consent needs a token, and a question has none")
        if token is not None and len(token) < 32:
            raise ValueError("a token must carry at least 32 characters of entropy")
        refuse_secrets(consent.audit)
        consent_id = consent.consent_id
        destinations = json.dumps([d.model_dump() for d in consent.destinations])

        def work(conn: sqlite3.Connection) -> ConsentRecord:
            self._hold_policy(conn, at)
            if token is None:
                asked = _open_question(conn, consent.binding, at)
                if asked is not None:
                    return asked
            conn.execute(
                "INSERT INTO consents (consent_id, token_hash, kind, mode, agent_id, phone_number_id, contact_id, "
                "binding, destinations, question, created_at, expires_at, state) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'open')",
                (consent_id, None if token is None else token_hash(token), consent.kind, consent.mode, consent.agent_id,
                 consent.phone_number_id, consent.contact_id, consent.binding, destinations, consent.question,
                 to_db(at), to_db(until)),
            )  # fmt: skip
            record = _consent(conn, consent_id)
            assert record is not None
            agreed = record.agreed
            only = agreed[0] if record.kind == "single" else None
            _insert_audit(
                conn, "preview" if consent.mode == "token" else "question", at,
                agent_id=record.agent_id, to_number=only.to_number if only else None,
                estimate=only.estimate_per_minute if only else None,
                detail={"consent": consent_id, "mode": consent.mode, "expires_at": to_db(until),
                        "destinations": [d.to_number for d in agreed],
                        **({"question": record.question} if consent.mode == "elicit" else {}), **consent.audit},
            )  # fmt: skip
            return record

        return await self._write(work)

    async def consent(self, consent_id: str) -> ConsentRecord | None:
        """A consent by its id, if any."""
        return await self._read(lambda conn: _consent(conn, consent_id))

    async def consent_by_token(self, token: str) -> ConsentRecord | None:
        """The consent a token was issued for, if any."""
        key = token_hash(token)

        def work(conn: sqlite3.Connection) -> ConsentRecord | None:
            row = conn.execute("SELECT * FROM consents WHERE token_hash = ?", (key,)).fetchone()
            return None if row is None else _consent_from_row(row)

        return await self._read(work)

    async def consent_for_answer(self, binding: str, *, answer_key: str, now: datetime) -> ConsentRecord | None:
        """The consent an answering round answers: the one it already used, else the newest open question so bound."""
        at = utc(now)

        def work(conn: sqlite3.Connection) -> ConsentRecord | None:
            row = conn.execute(
                "SELECT * FROM consents WHERE answer_key = ? AND binding = ?", (answer_key, binding)
            ).fetchone()
            return _consent_from_row(row) if row is not None else _open_question(conn, binding, at)

        return await self._read(work)

    async def answer_consent(self, answer: ConsentAnswer, response: Answer, *, now: datetime) -> Decision:
        """Use a consent with an answer that dials nothing by itself (a no, or a batch's yes); once."""
        at = utc(now)

        def work(conn: sqlite3.Connection) -> Decision:
            self._hold_policy(conn, at)
            consent = _consent(conn, answer.consent_id)
            refused = _refuse_use(conn, consent, answer, at)
            if refused is not None:
                return refused
            assert consent is not None
            return Decision(status="claimed", consent=_use(conn, consent, answer, response, at))

        return await self._write(work)

    async def decide(self, request: DialRequest, rules: Rules, *, clock: Callable[[], datetime]) -> Decision:
        """In one transaction serialized per account: the consent, the ledger's rules at one `now`, and the claim."""

        def work(conn: sqlite3.Connection) -> Decision:
            # Read inside the transaction: every rule, the hours included, sees the same instant.
            at = utc(clock())
            self._hold_policy(conn, at)
            consent = None if request.consent_id is None else _consent(conn, request.consent_id)
            use = request.use
            if use is not None:
                refused = _refuse_use(conn, consent, use, at)
                if refused is not None:
                    if refused.status == "consent_used" and request.consent_id is not None:
                        first = _intent_at(conn, request.consent_id, request.position)
                        return refused.model_copy(update={"intent": first})
                    return refused
            elif request.consent_id is not None:
                if consent is None or consent.state != "used" or consent.answer not in _YES:
                    raise LedgerStateError(request.consent_id, consent.state if consent else "unknown", "dial under it")
                done = _intent_at(conn, request.consent_id, request.position)
                if done is not None:
                    return Decision(status="consent_used", intent=done, consent=consent)
            if consent is not None and not _agreed(consent, request):
                # A yes dials only what its consent showed as "will be called", at that position.
                _audit_dial(conn, "refusal", at, request, {"claim": "not_agreed"})
                return Decision(status="consent_mismatched", consent=consent)
            preflight = rules(_usage(conn, request.target.to_number, at), at)
            if not preflight.allowed:
                if use is not None and use.keep_open_if_refused:
                    _audit_dial(conn, "refusal", at, request, {"rules": list(preflight.rules), "stage": "confirmation"})
                    return Decision(status="refused", preflight=preflight, consent=consent)
                if use is not None and consent is not None:
                    consent = _use(conn, consent, use, "accept" if use.via == "form" else "token", at)
                intent = _insert_intent(conn, request, "refused", at, preflight) if request.consent_id else None
                _audit_dial(conn, "refusal", at, request, {"rules": list(preflight.rules), "stage": "decision"}, intent)
                return Decision(status="refused", intent=intent, preflight=preflight, consent=consent)
            if use is not None and consent is not None:
                consent = _use(conn, consent, use, "accept" if use.via == "form" else "token", at)
            intent = _insert_intent(conn, request, "dialing", at, preflight)
            _audit_dial(conn, "dial", at, request, {"mode": request.mode}, intent)
            return Decision(status="claimed", intent=intent, preflight=preflight, consent=consent)

        return await self._write(work)

    async def intents_of(self, consent_id: str) -> list[IntentRecord]:
        """The dials decided under a consent, by position."""
        return await self._read(lambda conn: _intents_of(conn, consent_id))

    async def wait_for_consent(self, consent_id: str, *, positions: int, timeout: float) -> list[IntentRecord]:
        """Wait (bounded) until every agreed position of a used consent is decided and none is still dialing."""
        try:
            with anyio.move_on_after(timeout):
                while True:
                    decided = await self.intents_of(consent_id)
                    if len(decided) >= positions and all(i.state != "dialing" for i in decided):
                        return decided
                    # Woken at once by a decider in this process; polling covers one in another process.
                    event = self._events.get(consent_id) or self._events.setdefault(consent_id, anyio.Event())
                    with anyio.move_on_after(self._poll_interval):
                        await event.wait()
        finally:
            self._events.pop(consent_id, None)
        return await self.intents_of(consent_id)

    async def record_outcome(self, intent_id: str, outcome: Outcome, *, now: datetime) -> IntentRecord:
        """Record what the POST of a claimed intent did."""
        at = utc(now)

        def work(conn: sqlite3.Connection) -> IntentRecord:
            record = _intent(conn, intent_id)
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
            conn.execute(f"UPDATE intents SET {assignments} WHERE intent_id = ?", (*fields.values(), intent_id))
            _audit_intent(conn, "outcome", at, record, outcome.model_dump())
            return _intent(conn, intent_id)

        record = await self._write(work)
        if record.consent_id is not None:
            self._wake(record.consent_id)
        return record

    async def reconcile_intent(self, intent_id: str, call_id: str | None, *, now: datetime) -> IntentRecord:
        """Settle an unknown outcome: dialed when the call was found, still unknown when not."""
        at = utc(now)

        def work(conn: sqlite3.Connection) -> IntentRecord:
            record = _intent(conn, intent_id)
            if record.state != "unknown":
                raise LedgerStateError(record.intent_id, record.state, "reconcile")
            if call_id is not None:
                conn.execute(
                    "UPDATE intents SET state = 'dialed', call_id = ?, reconciled_at = ? WHERE intent_id = ?",
                    (call_id, to_db(at), intent_id),
                )
            _audit_intent(conn, "reconcile", at, record, {"found": call_id is not None, "call_id": call_id})
            return _intent(conn, intent_id)

        return await self._write(work)

    async def intent_for_call(self, call_id: str) -> IntentRecord | None:
        """The intent that recorded this vendor call id, so one call is never claimed by two intents."""
        return await self._read(lambda conn: _intent_by_call(conn, call_id))

    async def record_charge(self, call_id: str, credits: float, *, now: datetime) -> bool:
        """Audit what a call this ledger dialed was charged, once; False if not ours or already audited."""
        at = utc(now)

        def work(conn: sqlite3.Connection) -> bool:
            record = _intent_by_call(conn, call_id)
            if record is None:
                return False
            seen = conn.execute("SELECT 1 FROM audit WHERE kind = 'charge' AND intent_id = ? LIMIT 1", (record.intent_id,))
            if seen.fetchone() is not None:
                return False
            _insert_audit(
                conn, "charge", at, intent_id=record.intent_id, agent_id=record.args.agent_id,
                to_number=record.args.to_number, estimate=record.estimated_credits_per_minute, charge=credits,
                detail={"call_id": call_id},
            )  # fmt: skip
            return True

        return await self._write(work)

    async def abandon_stale_claims(self, *, now: datetime, older_than: timedelta) -> list[IntentRecord]:
        """Mark claims whose process never recorded an outcome as unknown, so they get reconciled."""
        at = utc(now)
        reason = "the dialing process stopped before recording an outcome"

        def work(conn: sqlite3.Connection) -> list[IntentRecord]:
            rows = conn.execute(
                "SELECT intent_id FROM intents WHERE state = 'dialing' AND decided_at < ?", (to_db(at - older_than),)
            ).fetchall()
            records = []
            for (intent_id,) in rows:
                conn.execute(
                    "UPDATE intents SET state = 'unknown', unknown_reason = ?, finished_at = ? WHERE intent_id = ?",
                    (reason, to_db(at), intent_id),
                )
                record = _intent(conn, intent_id)
                _audit_intent(conn, "outcome", at, record, {"kind": "unknown", "reason": reason})
                records.append(record)
            return records

        return await self._write(work)

    async def usage(self, to_number: str | None, *, now: datetime) -> UsageFacts:
        """Dials and estimated credits in the last 24 hours, and this number's last dial, dial in flight and hold."""
        at = utc(now)
        return await self._read(lambda conn: _usage(conn, to_number, at))

    async def unreconciled(self) -> list[IntentRecord]:
        """Intents whose outcome is still unknown, oldest first."""

        def work(conn: sqlite3.Connection) -> list[IntentRecord]:
            rows = conn.execute("SELECT * FROM intents WHERE state = 'unknown' ORDER BY decided_at").fetchall()
            return [_intent_from_row(row) for row in rows]

        return await self._read(work)

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
            row_id = _insert_audit(
                conn, kind, moment, intent_id=intent_id, agent_id=agent_id, to_number=to_number,
                estimate=estimate, charge=charge, detail=entry,
            )  # fmt: skip
            return _audit_from_row(conn.execute("SELECT * FROM audit WHERE id = ?", (row_id,)).fetchone())

        return await self._write(work)

    async def recent_audit(self, limit: int = 50) -> list[AuditEntry]:
        """The most recent audit entries, newest first."""
        if not 1 <= limit <= 1000:
            raise ValueError(f"limit must be 1..1000, got {limit}")

        def work(conn: sqlite3.Connection) -> list[AuditEntry]:
            rows = conn.execute("SELECT * FROM audit ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
            return [_audit_from_row(row) for row in rows]

        return await self._read(work)

    async def aclose(self) -> None:
        """Leave the ledger: drop this process's policy lease and close the connection."""

        def work() -> None:
            with self._lock:
                self._conn.execute("DELETE FROM policy_holders WHERE holder_id = ?", (self._holder_id,))
                self._conn.close()

        await anyio.to_thread.run_sync(work)

    def _hold_policy(
        self, conn: sqlite3.Connection, at: datetime, fingerprint: str | None = None, summary: dict[str, str] | None = None
    ) -> None:
        """Renew this process's policy lease (once it joined with one), refusing on a different live policy."""
        fingerprint = fingerprint or self._fingerprint
        if fingerprint is None:
            return
        summary = self._summary if summary is None else summary
        conn.execute("DELETE FROM policy_holders WHERE seen_at < ?", (to_db(at - POLICY_LEASE),))
        other = conn.execute(
            "SELECT summary, seen_at FROM policy_holders WHERE fingerprint != ? AND holder_id != ? "
            "ORDER BY seen_at DESC LIMIT 1",
            (fingerprint, self._holder_id),
        ).fetchone()
        if other is not None:
            theirs: dict[str, str] = json.loads(other["summary"])
            changes = {
                name: (theirs.get(name, "(unset)"), summary.get(name, "(unset)"))
                for name in sorted(set(theirs) | set(summary))
                if theirs.get(name) != summary.get(name)
            }
            raise PolicyMismatchError(str(self.path.parent), changes, from_db(other["seen_at"]))
        conn.execute(
            "INSERT INTO policy_holders (holder_id, fingerprint, summary, started_at, seen_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (holder_id) DO UPDATE SET seen_at = excluded.seen_at",
            (self._holder_id, fingerprint, json.dumps(summary), to_db(at), to_db(at)),
        )

    def _wake(self, consent_id: str) -> None:
        """Wake this process's waiters on a consent whose dial just got its outcome."""
        event = self._events.pop(consent_id, None)
        if event is not None:
            event.set()

    async def _read(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run reads on the shared connection in a worker thread, one thread at a time."""

        def locked() -> _T:
            with self._lock:
                return work(self._conn)

        return await anyio.to_thread.run_sync(locked)

    async def _write(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run work in one IMMEDIATE transaction (the write lock taken up front: no upgrade deadlock)."""

        def locked() -> _T:
            with self._lock, self._transaction() as conn:
                return work(conn)

        return await anyio.to_thread.run_sync(locked)

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


async def read_audit(state_dir: Path, limit: int = 50) -> list[AuditEntry]:
    """The most recent audit entries in a state directory, newest first; none (and no file made) if it has no ledger."""
    if not (state_dir / LEDGER_FILENAME).exists():
        return []
    ledger = SqliteLedger(state_dir)
    try:
        return await ledger.recent_audit(limit)
    finally:
        await ledger.aclose()


def _refuse_use(conn: sqlite3.Connection, consent: ConsentRecord | None, use: ConsentAnswer, at: datetime) -> Decision | None:
    """Why this yes cannot use the consent (audited), or None when it can."""
    if consent is None:
        _insert_audit(conn, "refusal", at, detail={"claim": "unknown_consent", "via": use.via})
        return Decision(status="consent_unknown")
    if consent.state == "used":
        # The first answer stands: a replay, or a second confirmation, dials nothing and gets its outcome.
        _audit_consent(conn, "replay", at, consent, {"via": use.via, "first_answer": consent.answer})
        return Decision(status="consent_used", consent=consent)
    if consent.binding != use.binding or consent.mode != ("token" if use.via == "token" else "elicit"):
        _audit_consent(conn, "refusal", at, consent, {"claim": "mismatched", "via": use.via})
        return Decision(status="consent_mismatched", consent=consent)
    if consent.expires_at <= at:
        _audit_consent(conn, "refusal", at, consent, {"claim": "expired", "via": use.via})
        return Decision(status="consent_expired", consent=consent)
    return None


def _use(conn: sqlite3.Connection, consent: ConsentRecord, use: ConsentAnswer, response: Answer, at: datetime) -> ConsentRecord:
    """Mark an open consent used by this answer, once, and audit the answer."""
    changed = conn.execute(
        "UPDATE consents SET state = 'used', answer = ?, answered_at = ?, answer_key = ? "
        "WHERE consent_id = ? AND state = 'open'",
        (response, to_db(at), use.answer_key, consent.consent_id),
    ).rowcount
    if changed != 1:  # pragma: no cover - the caller checked it open in this same transaction
        raise LedgerStateError(consent.consent_id, consent.state, "use it")
    if use.via == "form":
        _audit_consent(conn, "answer", at, consent, {"answer": response})
    used = _consent(conn, consent.consent_id)
    assert used is not None
    return used


def _agreed(consent: ConsentRecord, request: DialRequest) -> bool:
    """Whether the consent showed this exact dial, at this position, as one that will be called."""
    shown = next((d for d in consent.agreed if d.position == request.position), None)
    target = request.target
    if shown is None or shown.to_number != target.to_number or consent.agent_id != target.agent_id:
        return False
    return consent.phone_number_id == target.phone_number_id and consent.contact_id == target.contact_id


def _open_question(conn: sqlite3.Connection, binding: str, at: datetime) -> ConsentRecord | None:
    """The newest question with this binding that is still open and unexpired, if any."""
    row = conn.execute(
        "SELECT * FROM consents WHERE binding = ? AND mode = 'elicit' AND state = 'open' AND expires_at > ? "
        "ORDER BY created_at DESC, rowid DESC LIMIT 1",
        (binding, to_db(at)),
    ).fetchone()
    return None if row is None else _consent_from_row(row)


def _consent(conn: sqlite3.Connection, consent_id: str) -> ConsentRecord | None:
    row = conn.execute("SELECT * FROM consents WHERE consent_id = ?", (consent_id,)).fetchone()
    return None if row is None else _consent_from_row(row)


def _consent_from_row(row: sqlite3.Row) -> ConsentRecord:
    return ConsentRecord(
        consent_id=row["consent_id"],
        kind=row["kind"],
        mode=row["mode"],
        agent_id=row["agent_id"],
        phone_number_id=row["phone_number_id"],
        contact_id=row["contact_id"],
        binding=row["binding"],
        destinations=tuple(ConsentDestination.model_validate(d) for d in json.loads(row["destinations"])),
        question=row["question"],
        created_at=from_db(row["created_at"]),
        expires_at=from_db(row["expires_at"]),
        state=row["state"],
        answer=row["answer"],
        answered_at=from_db_or_none(row["answered_at"]),
    )


def _insert_intent(
    conn: sqlite3.Connection, request: DialRequest, state: str, at: datetime, preflight: PreflightResult
) -> IntentRecord:
    intent_id = "in_" + secrets.token_hex(10)
    target = request.target
    refused = json.dumps(list(preflight.rules)) if state == "refused" else None
    conn.execute(
        "INSERT INTO intents (intent_id, consent_id, position, agent_id, to_number, phone_number_id, contact_id, mode, "
        "estimate_per_minute, estimate_per_call, state, refused_rules, decided_at, finished_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (intent_id, request.consent_id, request.position, target.agent_id, target.to_number, target.phone_number_id,
         target.contact_id, request.mode, request.estimate_per_minute, estimate_per_call(request.estimate_per_minute),
         state, refused, to_db(at), to_db(at) if state == "refused" else None),
    )  # fmt: skip
    return _intent(conn, intent_id)


def _intent(conn: sqlite3.Connection, intent_id: str) -> IntentRecord:
    row = conn.execute("SELECT * FROM intents WHERE intent_id = ?", (intent_id,)).fetchone()
    if row is None:
        raise UnknownIntentError(f"no intent has the id {intent_id!r}")
    return _intent_from_row(row)


def _intent_at(conn: sqlite3.Connection, consent_id: str, position: int) -> IntentRecord | None:
    row = conn.execute("SELECT * FROM intents WHERE consent_id = ? AND position = ?", (consent_id, position)).fetchone()
    return None if row is None else _intent_from_row(row)


def _intents_of(conn: sqlite3.Connection, consent_id: str) -> list[IntentRecord]:
    rows = conn.execute("SELECT * FROM intents WHERE consent_id = ? ORDER BY position", (consent_id,)).fetchall()
    return [_intent_from_row(row) for row in rows]


def _intent_by_call(conn: sqlite3.Connection, call_id: str) -> IntentRecord | None:
    row = conn.execute("SELECT * FROM intents WHERE call_id = ? LIMIT 1", (call_id,)).fetchone()
    return None if row is None else _intent_from_row(row)


def _intent_from_row(row: sqlite3.Row) -> IntentRecord:
    return IntentRecord(
        intent_id=row["intent_id"],
        consent_id=row["consent_id"],
        position=row["position"],
        args=BoundArgs(
            agent_id=row["agent_id"],
            to_number=row["to_number"],
            phone_number_id=row["phone_number_id"],
            contact_id=row["contact_id"],
        ),
        mode=row["mode"],
        state=row["state"],
        estimated_credits_per_minute=row["estimate_per_minute"],
        estimated_credits_per_call=row["estimate_per_call"],
        decided_at=from_db(row["decided_at"]),
        refused_rules=tuple(json.loads(row["refused_rules"] or "[]")),
        call_id=row["call_id"],
        failure_status=row["failure_status"],
        failure_message=row["failure_message"],
        unknown_reason=row["unknown_reason"],
        finished_at=from_db_or_none(row["finished_at"]),
        reconciled_at=from_db_or_none(row["reconciled_at"]),
    )


def _usage(conn: sqlite3.Connection, to_number: str | None, at: datetime) -> UsageFacts:
    """Dials and estimated credits in the window before at, and to_number's last dial, dial in flight and hold."""
    calls, credits = conn.execute(
        f"SELECT COUNT(*), COALESCE(SUM(estimate_per_call), 0) FROM intents "
        f"WHERE state IN {_REACHED_VENDOR} AND decided_at > ?",
        (to_db(at - USAGE_WINDOW),),
    ).fetchone()
    last_dial = unknown_at = None
    in_flight = 0
    if to_number is not None:
        last_dial, unknown_at, in_flight = conn.execute(
            f"SELECT MAX(CASE WHEN state IN {_REACHED_VENDOR} THEN decided_at END), "
            "MAX(CASE WHEN state = 'unknown' THEN decided_at END), "
            "COUNT(CASE WHEN state = 'dialing' THEN 1 END) "
            "FROM intents WHERE to_number = ?",
            (to_number,),
        ).fetchone()
    return UsageFacts(
        to_number=to_number,
        calls_last_24h=calls,
        credits_last_24h=round(credits, 2),
        last_dial_at=from_db_or_none(last_dial),
        in_flight=in_flight > 0,
        unknown_outcome_at=from_db_or_none(unknown_at),
    )


def _insert_audit(
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


def _audit_intent(
    conn: sqlite3.Connection, kind: AuditKind, at: datetime, record: IntentRecord, detail: Mapping[str, JsonValue]
) -> None:
    """Append an audit entry about a decided dial, inside the caller's transaction."""
    _insert_audit(
        conn, kind, at, intent_id=record.intent_id, agent_id=record.args.agent_id, to_number=record.args.to_number,
        estimate=record.estimated_credits_per_minute, detail=detail,
    )  # fmt: skip


def _audit_dial(
    conn: sqlite3.Connection,
    kind: AuditKind,
    at: datetime,
    request: DialRequest,
    detail: Mapping[str, JsonValue],
    intent: IntentRecord | None = None,
) -> None:
    """Append an audit entry about a decision, with its consent when it has one."""
    extra: dict[str, JsonValue] = {"consent": request.consent_id} if request.consent_id else {}
    _insert_audit(
        conn, kind, at, intent_id=intent.intent_id if intent else None, agent_id=request.target.agent_id,
        to_number=request.target.to_number, estimate=request.estimate_per_minute, detail={**detail, **extra},
    )  # fmt: skip


def _audit_consent(
    conn: sqlite3.Connection, kind: AuditKind, at: datetime, consent: ConsentRecord, detail: Mapping[str, JsonValue]
) -> None:
    """Append an audit entry about a consent as a whole (its answer, a replay, a refused use)."""
    agreed = consent.agreed
    only = agreed[0] if consent.kind == "single" and agreed else None
    _insert_audit(
        conn, kind, at, agent_id=consent.agent_id, to_number=only.to_number if only else None,
        estimate=only.estimate_per_minute if only else None, detail={**detail, "consent": consent.consent_id},
    )  # fmt: skip


def _audit_from_row(row: sqlite3.Row) -> AuditEntry:
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


def to_db(moment: datetime) -> str:
    """An aware time as fixed-width UTC text."""
    return moment.astimezone(UTC).strftime(_TIME_FORMAT)


def from_db(text: str) -> datetime:
    """Stored UTC text back to an aware time."""
    # fromisoformat, not strptime: it reads the fixed-width format exactly, without the locale machinery.
    if not text.endswith("Z"):
        raise ValueError(f"not a stored UTC time: {text!r}")
    return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)


def from_db_or_none(text: str | None) -> datetime | None:
    """Stored UTC text back to an aware time, for columns that may be empty."""
    return None if text is None else from_db(text)
