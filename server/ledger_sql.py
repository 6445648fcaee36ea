"""The dispatch ledger's operations in plain SQL, written once for every database that stores it.

`SqlLedger` implements LedgerStore against a `LedgerBackend`: a way to run one unit of work in a
read transaction, or in a write transaction serialized per account (SQLite: the file's write lock;
PostgreSQL: a transaction-scoped advisory lock). The work speaks portable SQL with `?` placeholders,
passes and receives aware datetimes and JSON values as Python objects, and awaits nothing but its
statements; each backend translates placeholders, times and JSON for its database.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Collection, Coroutine, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, Protocol, TypeVar

import anyio
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
    LedgerUnavailableError,
    NewConsent,
    Outcome,
    PolicyMismatchError,
    Rules,
    UnknownIntentError,
    UsageFacts,
    token_hash,
    utc,
)
from outboundcalls_mcp.server.preflight import PreflightResult, estimate_per_call

__all__ = ["POLICY_LEASE", "TIME_FORMAT", "LedgerBackend", "LedgerTx", "Row", "SqlLedger", "refuse_secrets"]

# A process that has not beaten its heart for this long is presumed gone; its policy stops counting.
POLICY_LEASE: Final = timedelta(minutes=5)
# Dials that may have reached the vendor; they count for the caps and the cooldown, refusals do not.
_REACHED_VENDOR: Final = "('dialing', 'dialed', 'unknown')"
_SECRET_WORDS: Final = ("token", "secret", "password", "authorization", "api_key", "apikey")
_YES: Final = ("accept", "token")
_ABANDONED: Final = "the dialing process stopped before recording an outcome"
# Fixed-width UTC text: readable in a database shell, and it sorts the way time does.
TIME_FORMAT: Final = "%Y-%m-%dT%H:%M:%S.%fZ"
_T = TypeVar("_T")
Row = Mapping[str, Any]


class LedgerTx(Protocol):
    """The statements of one transaction: `?` placeholders; datetimes and JSON values as Python objects."""

    async def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        """Run one statement; the number of rows it changed."""
        ...

    async def fetchone(self, sql: str, params: Sequence[object] = ()) -> Row | None:
        """The first row of a query, by column name, if any."""
        ...

    async def fetchall(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        """Every row of a query, by column name."""
        ...


class LedgerBackend(Protocol):
    """Where a ledger lives: transactions, the liveness of other holders, and its words for messages."""

    location: str
    shared_by: str

    async def read(self, work: Callable[[LedgerTx], Coroutine[Any, Any, _T]]) -> _T:
        """Run work in a transaction that writes nothing."""
        ...

    async def write(self, work: Callable[[LedgerTx], Coroutine[Any, Any, _T]]) -> _T:
        """Run work in one transaction serialized with every other write to this ledger."""
        ...

    async def dead_holders(self, tx: LedgerTx, holder_ids: Collection[str]) -> set[str]:
        """Those of these processes known to be gone, though their lease may not have run out."""
        ...

    async def aclose(self) -> None:
        """Release the connection(s)."""
        ...


class SqlLedger:
    """LedgerStore over any LedgerBackend: every rule and every claim, in one place."""

    def __init__(self, backend: LedgerBackend, *, poll_interval: float = 0.05, holder_id: str | None = None) -> None:
        self.backend = backend
        self._poll_interval = poll_interval
        self.holder_id = holder_id or secrets.token_hex(8)
        self._fingerprint: str | None = None
        self._summary: dict[str, str] = {}
        self._events: dict[str, anyio.Event] = {}

    async def ensure_policy_fingerprint(self, fingerprint: str, summary: Mapping[str, str], *, now: datetime) -> None:
        """Join the ledger with this policy, or raise PolicyMismatchError if a live process has another."""
        at, held = utc(now), dict(summary)
        await self.backend.write(lambda tx: self._hold_policy(tx, at, fingerprint, held))
        self._fingerprint, self._summary = fingerprint, held

    async def heartbeat(self, *, now: datetime) -> None:
        """Tell other processes this one is still running with its policy."""
        at = utc(now)
        await self.backend.write(lambda tx: self._hold_policy(tx, at))

    async def open_consent(
        self, consent: NewConsent, *, now: datetime, expires_at: datetime, token: str | None
    ) -> ConsentRecord:
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
        destinations = [d.model_dump() for d in consent.destinations]

        async def work(tx: LedgerTx) -> ConsentRecord:
            await self._hold_policy(tx, at)
            if token is None:
                asked = await _open_question(tx, consent.binding, at)
                if asked is not None:
                    return asked
            await tx.execute(
                "INSERT INTO consents (consent_id, token_hash, kind, mode, agent_id, phone_number_id, contact_id, "
                "binding, destinations, question, created_at, expires_at, state) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'open')",
                (consent_id, None if token is None else token_hash(token), consent.kind, consent.mode, consent.agent_id,
                 consent.phone_number_id, consent.contact_id, consent.binding, destinations, consent.question,
                 at, until),
            )  # fmt: skip
            record = await _consent(tx, consent_id)
            assert record is not None
            agreed = record.agreed
            only = agreed[0] if record.kind == "single" else None
            await _insert_audit(
                tx, "preview" if consent.mode == "token" else "question", at,
                agent_id=record.agent_id, to_number=only.to_number if only else None,
                estimate=only.estimate_per_minute if only else None,
                detail={"consent": consent_id, "mode": consent.mode, "expires_at": _stamp(until),
                        "destinations": [d.to_number for d in agreed],
                        **({"question": record.question} if consent.mode == "elicit" else {}), **consent.audit},
            )  # fmt: skip
            return record

        return await self.backend.write(work)

    async def consent(self, consent_id: str) -> ConsentRecord | None:
        """A consent by its id, if any."""
        return await self.backend.read(lambda tx: _consent(tx, consent_id))

    async def consent_by_token(self, token: str) -> ConsentRecord | None:
        """The consent a token was issued for, if any."""
        key = token_hash(token)

        async def work(tx: LedgerTx) -> ConsentRecord | None:
            row = await tx.fetchone("SELECT * FROM consents WHERE token_hash = ?", (key,))
            return None if row is None else _consent_from_row(row)

        return await self.backend.read(work)

    async def consent_for_answer(self, binding: str, *, answer_key: str, now: datetime) -> ConsentRecord | None:
        """The consent an answering round answers: the one it already used, else the newest open question so bound."""
        at = utc(now)

        async def work(tx: LedgerTx) -> ConsentRecord | None:
            row = await tx.fetchone(
                "SELECT * FROM consents WHERE answer_key = ? AND binding = ?", (answer_key, binding)
            )
            return _consent_from_row(row) if row is not None else await _open_question(tx, binding, at)

        return await self.backend.read(work)

    async def answer_consent(self, answer: ConsentAnswer, response: Answer, *, now: datetime) -> Decision:
        """Use a consent with an answer that dials nothing by itself (a no, or a batch's yes); once."""
        at = utc(now)

        async def work(tx: LedgerTx) -> Decision:
            await self._hold_policy(tx, at)
            consent = await _consent(tx, answer.consent_id)
            refused = await _refuse_use(tx, consent, answer, at)
            if refused is not None:
                return refused
            assert consent is not None
            return Decision(status="claimed", consent=await _use(tx, consent, answer, response, at))

        return await self.backend.write(work)

    async def decide(self, request: DialRequest, rules: Rules, *, clock: Callable[[], datetime]) -> Decision:
        """In one transaction serialized per account: the consent, the ledger's rules at one `now`, and the claim."""

        async def work(tx: LedgerTx) -> Decision:
            # Read inside the transaction: every rule, the hours included, sees the same instant.
            at = utc(clock())
            await self._hold_policy(tx, at)
            consent = None if request.consent_id is None else await _consent(tx, request.consent_id)
            use = request.use
            if use is not None:
                refused = await _refuse_use(tx, consent, use, at)
                if refused is not None:
                    if refused.status == "consent_used" and request.consent_id is not None:
                        first = await _intent_at(tx, request.consent_id, request.position)
                        return refused.model_copy(update={"intent": first})
                    return refused
            elif request.consent_id is not None:
                if consent is None or consent.state != "used" or consent.answer not in _YES:
                    raise LedgerStateError(request.consent_id, consent.state if consent else "unknown", "dial under it")
                done = await _intent_at(tx, request.consent_id, request.position)
                if done is not None:
                    return Decision(status="consent_used", intent=done, consent=consent)
            if consent is not None and not _agreed(consent, request):
                # A yes dials only what its consent showed as "will be called", at that position.
                await _audit_dial(tx, "refusal", at, request, {"claim": "not_agreed"})
                return Decision(status="consent_mismatched", consent=consent)
            preflight = rules(await _usage(tx, request.target.to_number, at), at)
            if not preflight.allowed:
                if use is not None and use.keep_open_if_refused:
                    await _audit_dial(
                        tx, "refusal", at, request, {"rules": list(preflight.rules), "stage": "confirmation"}
                    )
                    return Decision(status="refused", preflight=preflight, consent=consent)
                if use is not None and consent is not None:
                    consent = await _use(tx, consent, use, "accept" if use.via == "form" else "token", at)
                intent = (
                    await self._insert_intent(tx, request, "refused", at, preflight) if request.consent_id else None
                )
                await _audit_dial(
                    tx, "refusal", at, request, {"rules": list(preflight.rules), "stage": "decision"}, intent
                )
                return Decision(status="refused", intent=intent, preflight=preflight, consent=consent)
            if use is not None and consent is not None:
                consent = await _use(tx, consent, use, "accept" if use.via == "form" else "token", at)
            intent = await self._insert_intent(tx, request, "dialing", at, preflight)
            await _audit_dial(tx, "dial", at, request, {"mode": request.mode}, intent)
            return Decision(status="claimed", intent=intent, preflight=preflight, consent=consent)

        return await self.backend.write(work)

    async def intents_of(self, consent_id: str) -> list[IntentRecord]:
        """The dials decided under a consent, by position."""
        return await self.backend.read(lambda tx: _intents_of(tx, consent_id))

    async def intent(self, intent_id: str) -> IntentRecord:
        """One decided dial by its id; UnknownIntentError if none."""
        return await self.backend.read(lambda tx: _intent(tx, intent_id))

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

        async def work(tx: LedgerTx) -> IntentRecord:
            record = await _intent(tx, intent_id)
            if record.state != "dialing":
                raise LedgerStateError(record.intent_id, record.state, f"record the outcome {outcome.kind}")
            fields: dict[str, object] = {"state": outcome.kind, "finished_at": at}
            if isinstance(outcome, DialedOutcome):
                fields["call_id"] = outcome.call_id
            elif isinstance(outcome, FailedOutcome):
                fields.update(failure_status=outcome.status, failure_message=outcome.message)
            else:
                fields["unknown_reason"] = outcome.reason
            assignments = ", ".join(f"{name} = ?" for name in fields)
            await tx.execute(f"UPDATE intents SET {assignments} WHERE intent_id = ?", (*fields.values(), intent_id))
            await _audit_intent(tx, "outcome", at, record, outcome.model_dump())
            return await _intent(tx, intent_id)

        record = await self.backend.write(work)
        if record.consent_id is not None:
            self._wake(record.consent_id)
        return record

    async def reconcile_intent(self, intent_id: str, call_id: str | None, *, now: datetime) -> IntentRecord:
        """Settle an unknown outcome: dialed when the call was found, still unknown when not."""
        at = utc(now)

        async def work(tx: LedgerTx) -> IntentRecord:
            record = await _intent(tx, intent_id)
            if record.state != "unknown":
                raise LedgerStateError(record.intent_id, record.state, "reconcile")
            if call_id is not None:
                await tx.execute(
                    "UPDATE intents SET state = 'dialed', call_id = ?, reconciled_at = ? WHERE intent_id = ?",
                    (call_id, at, intent_id),
                )
            await _audit_intent(tx, "reconcile", at, record, {"found": call_id is not None, "call_id": call_id})
            return await _intent(tx, intent_id)

        return await self.backend.write(work)

    async def intent_for_call(self, call_id: str) -> IntentRecord | None:
        """The intent that recorded this vendor call id, so one call is never claimed by two intents."""
        return await self.backend.read(lambda tx: _intent_by_call(tx, call_id))

    async def record_charge(self, call_id: str, credits: float, *, now: datetime) -> bool:
        """Audit what a call this ledger dialed was charged, once; False if not ours or already audited."""
        at = utc(now)

        async def work(tx: LedgerTx) -> bool:
            record = await _intent_by_call(tx, call_id)
            if record is None:
                return False
            seen = await tx.fetchone(
                "SELECT 1 AS seen FROM audit WHERE kind = 'charge' AND intent_id = ? LIMIT 1", (record.intent_id,)
            )
            if seen is not None:
                return False
            await _insert_audit(
                tx, "charge", at, intent_id=record.intent_id, agent_id=record.args.agent_id,
                to_number=record.args.to_number, estimate=record.estimated_credits_per_minute, charge=credits,
                detail={"call_id": call_id},
            )  # fmt: skip
            return True

        return await self.backend.write(work)

    async def abandon_stale_claims(self, *, now: datetime, older_than: timedelta) -> list[IntentRecord]:
        """Mark claims whose process never recorded an outcome as unknown, so they get reconciled."""
        at = utc(now)

        async def work(tx: LedgerTx) -> list[IntentRecord]:
            rows = await tx.fetchall(
                "SELECT intent_id FROM intents WHERE state = 'dialing' AND decided_at < ?", (at - older_than,)
            )
            return await _abandon(tx, [row["intent_id"] for row in rows], at)

        return await self.backend.write(work)

    async def abandon_orphaned_claims(self, *, now: datetime, older_than: timedelta) -> list[IntentRecord]:
        """Mark unknown the claims of processes known to be gone (not this one), decided before now - older_than."""
        at = utc(now)

        async def work(tx: LedgerTx) -> list[IntentRecord]:
            rows = await tx.fetchall(
                "SELECT intent_id, claimed_by FROM intents WHERE state = 'dialing' AND decided_at < ? "
                "AND claimed_by IS NOT NULL AND claimed_by != ?",
                (at - older_than, self.holder_id),
            )
            await tx.execute("DELETE FROM policy_holders WHERE seen_at < ?", (at - POLICY_LEASE,))
            holders = {row["holder_id"] for row in await tx.fetchall("SELECT holder_id FROM policy_holders")}
            claimers = {row["claimed_by"] for row in rows}
            gone = (claimers - holders) | await self.backend.dead_holders(tx, claimers & holders)
            return await _abandon(tx, [row["intent_id"] for row in rows if row["claimed_by"] in gone], at)

        return await self.backend.write(work)

    async def usage(self, to_number: str | None, *, now: datetime) -> UsageFacts:
        """Dials and estimated credits in the last 24 hours, and this number's last dial, dial in flight and hold."""
        at = utc(now)
        return await self.backend.read(lambda tx: _usage(tx, to_number, at))

    async def unreconciled(self) -> list[IntentRecord]:
        """Intents whose outcome is still unknown, oldest first."""

        async def work(tx: LedgerTx) -> list[IntentRecord]:
            rows = await tx.fetchall("SELECT * FROM intents WHERE state = 'unknown' ORDER BY decided_at")
            return [_intent_from_row(row) for row in rows]

        return await self.backend.read(work)

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

        async def work(tx: LedgerTx) -> AuditEntry:
            row_id = await _insert_audit(
                tx, kind, moment, intent_id=intent_id, agent_id=agent_id, to_number=to_number,
                estimate=estimate, charge=charge, detail=entry,
            )  # fmt: skip
            row = await tx.fetchone("SELECT * FROM audit WHERE id = ?", (row_id,))
            assert row is not None
            return _audit_from_row(row)

        return await self.backend.write(work)

    async def recent_audit(self, limit: int = 50) -> list[AuditEntry]:
        """The most recent audit entries, newest first."""
        if not 1 <= limit <= 1000:
            raise ValueError(f"limit must be 1..1000, got {limit}")

        async def work(tx: LedgerTx) -> list[AuditEntry]:
            rows = await tx.fetchall("SELECT * FROM audit ORDER BY id DESC LIMIT ?", (limit,))
            return [_audit_from_row(row) for row in rows]

        return await self.backend.read(work)

    async def policy_lease_held(self, *, now: datetime) -> bool:
        """Whether this process's policy lease is current in the ledger (read only: a readiness probe)."""
        if self._fingerprint is None:
            return False
        at = utc(now)

        async def work(tx: LedgerTx) -> bool:
            row = await tx.fetchone("SELECT seen_at FROM policy_holders WHERE holder_id = ?", (self.holder_id,))
            return row is not None and row["seen_at"] >= at - POLICY_LEASE

        return await self.backend.read(work)

    async def aclose(self) -> None:
        """Leave the ledger: drop this process's policy lease and close the connection."""
        try:
            await self.backend.write(
                lambda tx: tx.execute("DELETE FROM policy_holders WHERE holder_id = ?", (self.holder_id,))
            )
        except LedgerUnavailableError:
            pass  # leaving while the database is away: the lease runs out by itself
        finally:
            await self.backend.aclose()

    async def _hold_policy(
        self, tx: LedgerTx, at: datetime, fingerprint: str | None = None, summary: dict[str, str] | None = None
    ) -> None:
        """Renew this process's policy lease (once it joined with one), refusing on a different live policy."""
        fingerprint = fingerprint or self._fingerprint
        if fingerprint is None:
            return
        summary = self._summary if summary is None else summary
        await tx.execute("DELETE FROM policy_holders WHERE seen_at < ?", (at - POLICY_LEASE,))
        other = await tx.fetchone(
            "SELECT summary, seen_at FROM policy_holders WHERE fingerprint != ? AND holder_id != ? "
            "ORDER BY seen_at DESC LIMIT 1",
            (fingerprint, self.holder_id),
        )
        if other is not None:
            theirs: dict[str, str] = other["summary"]
            changes = {
                name: (theirs.get(name, "(unset)"), summary.get(name, "(unset)"))
                for name in sorted(set(theirs) | set(summary))
                if theirs.get(name) != summary.get(name)
            }
            raise PolicyMismatchError(
                self.backend.location, changes, other["seen_at"], shared_by=self.backend.shared_by
            )
        await tx.execute(
            "INSERT INTO policy_holders (holder_id, fingerprint, summary, started_at, seen_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (holder_id) DO UPDATE SET seen_at = excluded.seen_at",
            (self.holder_id, fingerprint, summary, at, at),
        )

    async def _insert_intent(
        self, tx: LedgerTx, request: DialRequest, state: str, at: datetime, preflight: PreflightResult
    ) -> IntentRecord:
        intent_id = "in_" + secrets.token_hex(10)
        target = request.target
        refused = list(preflight.rules) if state == "refused" else None
        # claimed_by: a process known to be gone can have its claims settled by another at once.
        await tx.execute(
            "INSERT INTO intents (intent_id, consent_id, position, agent_id, to_number, phone_number_id, contact_id, "
            "mode, estimate_per_minute, estimate_per_call, state, refused_rules, decided_at, finished_at, claimed_by) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (intent_id, request.consent_id, request.position, target.agent_id, target.to_number, target.phone_number_id,
             target.contact_id, request.mode, request.estimate_per_minute,
             estimate_per_call(request.estimate_per_minute),
             state, refused, at, at if state == "refused" else None, self.holder_id),
        )  # fmt: skip
        return await _intent(tx, intent_id)

    def _wake(self, consent_id: str) -> None:
        """Wake this process's waiters on a consent whose dial just got its outcome."""
        event = self._events.pop(consent_id, None)
        if event is not None:
            event.set()


async def _abandon(tx: LedgerTx, intent_ids: Sequence[str], at: datetime) -> list[IntentRecord]:
    """Mark these dialing intents unknown (each audited), so they get reconciled and never dialed again."""
    records = []
    for intent_id in intent_ids:
        await tx.execute(
            "UPDATE intents SET state = 'unknown', unknown_reason = ?, finished_at = ? WHERE intent_id = ? "
            "AND state = 'dialing'",
            (_ABANDONED, at, intent_id),
        )
        record = await _intent(tx, intent_id)
        await _audit_intent(tx, "outcome", at, record, {"kind": "unknown", "reason": _ABANDONED})
        records.append(record)
    return records


async def _refuse_use(tx: LedgerTx, consent: ConsentRecord | None, use: ConsentAnswer, at: datetime) -> Decision | None:
    """Why this yes cannot use the consent (audited), or None when it can."""
    if consent is None:
        await _insert_audit(tx, "refusal", at, detail={"claim": "unknown_consent", "via": use.via})
        return Decision(status="consent_unknown")
    if consent.state == "used":
        # The first answer stands: a replay, or a second confirmation, dials nothing and gets its outcome.
        await _audit_consent(tx, "replay", at, consent, {"via": use.via, "first_answer": consent.answer})
        return Decision(status="consent_used", consent=consent)
    if consent.binding != use.binding or consent.mode != ("token" if use.via == "token" else "elicit"):
        await _audit_consent(tx, "refusal", at, consent, {"claim": "mismatched", "via": use.via})
        return Decision(status="consent_mismatched", consent=consent)
    if consent.expires_at <= at:
        await _audit_consent(tx, "refusal", at, consent, {"claim": "expired", "via": use.via})
        return Decision(status="consent_expired", consent=consent)
    return None


async def _use(
    tx: LedgerTx, consent: ConsentRecord, use: ConsentAnswer, response: Answer, at: datetime
) -> ConsentRecord:
    """Mark an open consent used by this answer, once, and audit the answer."""
    changed = await tx.execute(
        "UPDATE consents SET state = 'used', answer = ?, answered_at = ?, answer_key = ? "
        "WHERE consent_id = ? AND state = 'open'",
        (response, at, use.answer_key, consent.consent_id),
    )
    if changed != 1:  # pragma: no cover - the caller checked it open in this same transaction
        raise LedgerStateError(consent.consent_id, consent.state, "use it")
    if use.via == "form":
        await _audit_consent(tx, "answer", at, consent, {"answer": response})
    used = await _consent(tx, consent.consent_id)
    assert used is not None
    return used


def _agreed(consent: ConsentRecord, request: DialRequest) -> bool:
    """Whether the consent showed this exact dial, at this position, as one that will be called."""
    shown = next((d for d in consent.agreed if d.position == request.position), None)
    target = request.target
    if shown is None or shown.to_number != target.to_number or consent.agent_id != target.agent_id:
        return False
    return consent.phone_number_id == target.phone_number_id and consent.contact_id == target.contact_id


async def _open_question(tx: LedgerTx, binding: str, at: datetime) -> ConsentRecord | None:
    """The newest question with this binding that is still open and unexpired, if any."""
    # rowid: SQLite's own, and a column of that name in PostgreSQL, so equal times keep their order.
    row = await tx.fetchone(
        "SELECT * FROM consents WHERE binding = ? AND mode = 'elicit' AND state = 'open' AND expires_at > ? "
        "ORDER BY created_at DESC, rowid DESC LIMIT 1",
        (binding, at),
    )
    return None if row is None else _consent_from_row(row)


async def _consent(tx: LedgerTx, consent_id: str) -> ConsentRecord | None:
    row = await tx.fetchone("SELECT * FROM consents WHERE consent_id = ?", (consent_id,))
    return None if row is None else _consent_from_row(row)


def _consent_from_row(row: Row) -> ConsentRecord:
    return ConsentRecord(
        consent_id=row["consent_id"],
        kind=row["kind"],
        mode=row["mode"],
        agent_id=row["agent_id"],
        phone_number_id=row["phone_number_id"],
        contact_id=row["contact_id"],
        binding=row["binding"],
        destinations=tuple(ConsentDestination.model_validate(d) for d in row["destinations"]),
        question=row["question"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        state=row["state"],
        answer=row["answer"],
        answered_at=row["answered_at"],
    )


async def _intent(tx: LedgerTx, intent_id: str) -> IntentRecord:
    row = await tx.fetchone("SELECT * FROM intents WHERE intent_id = ?", (intent_id,))
    if row is None:
        raise UnknownIntentError(f"no intent has the id {intent_id!r}")
    return _intent_from_row(row)


async def _intent_at(tx: LedgerTx, consent_id: str, position: int) -> IntentRecord | None:
    row = await tx.fetchone("SELECT * FROM intents WHERE consent_id = ? AND position = ?", (consent_id, position))
    return None if row is None else _intent_from_row(row)


async def _intents_of(tx: LedgerTx, consent_id: str) -> list[IntentRecord]:
    rows = await tx.fetchall("SELECT * FROM intents WHERE consent_id = ? ORDER BY position", (consent_id,))
    return [_intent_from_row(row) for row in rows]


async def _intent_by_call(tx: LedgerTx, call_id: str) -> IntentRecord | None:
    row = await tx.fetchone("SELECT * FROM intents WHERE call_id = ? LIMIT 1", (call_id,))
    return None if row is None else _intent_from_row(row)


def _intent_from_row(row: Row) -> IntentRecord:
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
        decided_at=row["decided_at"],
        refused_rules=tuple(row["refused_rules"] or ()),
        call_id=row["call_id"],
        failure_status=row["failure_status"],
        failure_message=row["failure_message"],
        unknown_reason=row["unknown_reason"],
        finished_at=row["finished_at"],
        reconciled_at=row["reconciled_at"],
    )


async def _usage(tx: LedgerTx, to_number: str | None, at: datetime) -> UsageFacts:
    """Dials and estimated credits in the window before at, and to_number's last dial, dial in flight and hold."""
    totals = await tx.fetchone(
        f"SELECT COUNT(*) AS calls, COALESCE(SUM(estimate_per_call), 0) AS credits FROM intents "
        f"WHERE state IN {_REACHED_VENDOR} AND decided_at > ?",
        (at - USAGE_WINDOW,),
    )
    assert totals is not None
    last_dial = unknown_at = None
    in_flight = 0
    if to_number is not None:
        number = await tx.fetchone(
            f"SELECT MAX(CASE WHEN state IN {_REACHED_VENDOR} THEN decided_at END) AS last_dial_at, "
            "MAX(CASE WHEN state = 'unknown' THEN decided_at END) AS unknown_at, "
            "COUNT(CASE WHEN state = 'dialing' THEN 1 END) AS in_flight "
            "FROM intents WHERE to_number = ?",
            (to_number,),
        )
        assert number is not None
        last_dial, unknown_at, in_flight = number["last_dial_at"], number["unknown_at"], number["in_flight"]
    return UsageFacts(
        to_number=to_number,
        calls_last_24h=totals["calls"],
        credits_last_24h=round(float(totals["credits"]), 2),
        last_dial_at=last_dial,
        in_flight=in_flight > 0,
        unknown_outcome_at=unknown_at,
    )


async def _insert_audit(
    tx: LedgerTx,
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
    row = await tx.fetchone(
        "INSERT INTO audit (at, kind, intent_id, agent_id, to_number, estimate, charge, detail) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (at, kind, intent_id, agent_id, to_number, estimate, charge, dict(detail or {})),
    )
    assert row is not None
    return int(row["id"])


async def _audit_intent(
    tx: LedgerTx, kind: AuditKind, at: datetime, record: IntentRecord, detail: Mapping[str, JsonValue]
) -> None:
    """Append an audit entry about a decided dial, inside the caller's transaction."""
    await _insert_audit(
        tx, kind, at, intent_id=record.intent_id, agent_id=record.args.agent_id, to_number=record.args.to_number,
        estimate=record.estimated_credits_per_minute, detail=detail,
    )  # fmt: skip


async def _audit_dial(
    tx: LedgerTx,
    kind: AuditKind,
    at: datetime,
    request: DialRequest,
    detail: Mapping[str, JsonValue],
    intent: IntentRecord | None = None,
) -> None:
    """Append an audit entry about a decision, with its consent when it has one."""
    extra: dict[str, JsonValue] = {"consent": request.consent_id} if request.consent_id else {}
    await _insert_audit(
        tx, kind, at, intent_id=intent.intent_id if intent else None, agent_id=request.target.agent_id,
        to_number=request.target.to_number, estimate=request.estimate_per_minute, detail={**detail, **extra},
    )  # fmt: skip


async def _audit_consent(
    tx: LedgerTx, kind: AuditKind, at: datetime, consent: ConsentRecord, detail: Mapping[str, JsonValue]
) -> None:
    """Append an audit entry about a consent as a whole (its answer, a replay, a refused use)."""
    agreed = consent.agreed
    only = agreed[0] if consent.kind == "single" and agreed else None
    await _insert_audit(
        tx, kind, at, agent_id=consent.agent_id, to_number=only.to_number if only else None,
        estimate=only.estimate_per_minute if only else None, detail={**detail, "consent": consent.consent_id},
    )  # fmt: skip


def _audit_from_row(row: Row) -> AuditEntry:
    return AuditEntry(
        id=row["id"],
        at=row["at"],
        kind=row["kind"],
        intent_id=row["intent_id"],
        agent_id=row["agent_id"],
        to_number=row["to_number"],
        estimated_credits_per_minute=row["estimate"],
        charge_credits=row["charge"],
        detail=row["detail"],
    )


def _stamp(moment: datetime) -> str:
    """A time as the audit's detail shows it: fixed-width UTC text, whatever the database."""
    return utc(moment).strftime(TIME_FORMAT)


def refuse_secrets(detail: Mapping[str, JsonValue]) -> None:
    """Keep secrets out of the audit trail: a key that names one is a programming error."""
    for name, value in detail.items():
        if any(word in name.lower() for word in _SECRET_WORDS):
            raise ValueError(f"audit detail {name!r} looks like a secret; the audit trail never stores secrets")
        if isinstance(value, Mapping):
            refuse_secrets(value)
