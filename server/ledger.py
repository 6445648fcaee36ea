"""The dispatch ledger: intents and their confirmation tokens, exactly-once claims, outcomes, audit.

An intent moves pending -> dialing (claimed: the one POST may go) -> dialed | failed | unknown;
unknown -> dialed when reconciliation finds the call. Pre-flight runs again before the claim, so a
refusal at confirmation leaves the intent as it was (pending: the token stays usable).
LedgerStore is the storage seam: SQLite today (server.ledger_sqlite), a shared PostgreSQL later;
any backend must make the pending -> dialing step a single conditional update in the database.

LedgerError
├── UnknownIntentError     no intent has this id
│   └── UnknownTokenError  no intent has this token
├── LedgerStateError       the intent is not in a state that allows the operation
└── PolicyMismatchError    another live process shares the ledger with a different policy
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Final, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from server.preflight import RuleName, UsageFacts

__all__ = [
    "USAGE_WINDOW",
    "AuditEntry",
    "AuditKind",
    "ClaimResult",
    "ClaimStatus",
    "ConfirmMode",
    "DialedOutcome",
    "DispatchArgs",
    "FailedOutcome",
    "Intent",
    "IntentRecord",
    "IntentState",
    "LedgerError",
    "LedgerStateError",
    "LedgerStore",
    "Outcome",
    "PolicyMismatchError",
    "RefusedOutcome",
    "UnknownIntentError",
    "UnknownOutcome",
    "UnknownTokenError",
    "UsageFacts",
    "token_hash",
    "utc",
]

# The caps and the call count look back this far (a rolling day, per the safe-dispatch decisions).
USAGE_WINDOW: Final = timedelta(hours=24)
_E164: Final = re.compile(r"^\+[1-9][0-9]{1,14}$")

ConfirmMode = Literal["token", "elicit", "none"]
IntentState = Literal["pending", "dialing", "dialed", "failed", "unknown"]
ClaimStatus = Literal["claimed", "already_done", "in_progress", "expired", "mismatched", "unknown_token"]
AuditKind = Literal["preview", "question", "answer", "refusal", "dial", "outcome", "reconcile", "charge"]


class LedgerError(Exception):
    """Root of the ledger's errors."""


class UnknownIntentError(LedgerError):
    """No intent has this id."""


class UnknownTokenError(UnknownIntentError):
    """No intent was ever issued with this token (or it was tampered with)."""


class LedgerStateError(LedgerError):
    """The intent's state does not allow the operation (for example an outcome recorded twice)."""

    def __init__(self, intent_id: str, state: str, operation: str) -> None:
        super().__init__(f"intent {intent_id} is {state}; cannot {operation}")
        self.intent_id = intent_id
        self.state = state


class PolicyMismatchError(LedgerError):
    """Another live process uses this ledger with a different dispatch policy."""

    def __init__(self, location: str, changes: Mapping[str, tuple[str, str]], other_seen_at: datetime) -> None:
        listed = "; ".join(f"{name}: {theirs} there, {ours} here" for name, (theirs, ours) in sorted(changes.items()))
        super().__init__(
            f"the dispatch ledger in {location} is in use by another process (last seen "
            f"{other_seen_at:%Y-%m-%d %H:%M:%S} UTC) with a different policy: {listed or 'settings differ'}. "
            "Processes sharing OUTBOUNDCALLS_STATE_DIR must enforce the same rules: start this one with the same "
            "settings, stop the other one first, or give this one its own OUTBOUNDCALLS_STATE_DIR."
        )
        self.changes = dict(changes)


class DispatchArgs(BaseModel):
    """The exact arguments a confirmation token is bound to; the number already in E.164."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    agent_id: str = Field(min_length=1)
    to_number: str = Field(pattern=_E164.pattern)
    phone_number_id: str | None = None
    contact_id: str | None = None

    def args_hash(self) -> str:
        """A sha256 of the canonical arguments: any difference makes another hash."""
        canonical = json.dumps(self.model_dump(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


class IntentRecord(BaseModel):
    """What the ledger knows about one intent; never the token itself."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    intent_id: str
    batch_id: str | None = None
    args: DispatchArgs
    mode: ConfirmMode
    state: IntentState
    estimated_credits_per_minute: float | None
    estimated_credits_per_call: float | None
    created_at: datetime
    expires_at: datetime
    claimed_at: datetime | None = None
    call_id: str | None = None
    failure_status: int | None = None
    failure_message: str | None = None
    unknown_reason: str | None = None
    finished_at: datetime | None = None
    reconciled_at: datetime | None = None


class Intent(IntentRecord):
    """A newly created intent with its confirmation token, shown once and stored only as a hash."""

    token: str = Field(repr=False)


class ClaimResult(BaseModel):
    """The answer to a confirmation: only "claimed" allows the POST."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    status: ClaimStatus
    intent: IntentRecord | None = None

    @property
    def claimed(self) -> bool:
        """Whether this caller, and only this caller, may now send the POST."""
        return self.status == "claimed"


class DialedOutcome(BaseModel):
    """The vendor created the call."""

    model_config = ConfigDict(defer_build=True)

    kind: Literal["dialed"] = "dialed"
    call_id: str = Field(min_length=1)


class RefusedOutcome(BaseModel):
    """Pre-flight refused at confirmation: audited, and the token stays unused."""

    model_config = ConfigDict(defer_build=True)

    kind: Literal["refused"] = "refused"
    rules: list[RuleName] = Field(min_length=1)


class FailedOutcome(BaseModel):
    """The vendor answered with an error and no call exists."""

    model_config = ConfigDict(defer_build=True)

    kind: Literal["failed"] = "failed"
    status: int | None = None
    message: str


class UnknownOutcome(BaseModel):
    """The request left and no answer came back: the call may exist; reconcile, never retry."""

    model_config = ConfigDict(defer_build=True)

    kind: Literal["unknown"] = "unknown"
    reason: str


Outcome = Annotated[DialedOutcome | RefusedOutcome | FailedOutcome | UnknownOutcome, Field(discriminator="kind")]


class AuditEntry(BaseModel):
    """One line of the append-only audit trail; numbers in E.164, never a secret."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    id: int
    at: datetime
    kind: AuditKind
    intent_id: str | None = None
    agent_id: str | None = None
    to_number: str | None = None
    estimated_credits_per_minute: float | None = None
    charge_credits: float | None = None
    detail: dict[str, JsonValue] = Field(default_factory=dict)


class LedgerStore(Protocol):
    """The storage seam of safe dispatch; every time is passed in, none is read from a clock."""

    async def ensure_policy_fingerprint(self, fingerprint: str, summary: Mapping[str, str], *, now: datetime) -> None:
        """Join the ledger with this policy, or raise PolicyMismatchError if a live process has another."""
        ...

    async def heartbeat(self, *, now: datetime) -> None:
        """Tell other processes this one is still running with its policy."""
        ...

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
        """Record a pending intent (audited as a preview in token mode) with a fresh token, or a batch-derived one."""
        ...

    async def get_intent(self, token: str) -> IntentRecord | None:
        """The intent a token was issued for, if any."""
        ...

    async def claim(self, token: str, args: DispatchArgs, *, now: datetime) -> ClaimResult:
        """Move a pending, unexpired intent with these exact arguments to dialing, exactly once."""
        ...

    async def wait_for_outcome(self, token: str, *, timeout: float) -> IntentRecord | None:
        """Wait (bounded) until another claimer records the outcome; the record as it then stands."""
        ...

    async def record_outcome(self, token: str, outcome: Outcome, *, now: datetime) -> IntentRecord:
        """Record what the POST did (from dialing), or audit a refusal (the intent stays as it is)."""
        ...

    async def reconcile(self, token: str, call_id: str | None, *, now: datetime) -> IntentRecord:
        """Settle an unknown outcome: dialed when the call was found, still unknown when not."""
        ...

    async def reconcile_intent(self, intent_id: str, call_id: str | None, *, now: datetime) -> IntentRecord:
        """reconcile() by intent id: start-up has only ids, because tokens are stored hashed."""
        ...

    async def intent_for_call(self, call_id: str) -> IntentRecord | None:
        """The intent that recorded this vendor call id, so one call is never claimed by two intents."""
        ...

    async def record_charge(self, call_id: str, credits: float, *, now: datetime) -> bool:
        """Audit what a call this ledger dialed was charged, once; False if not ours or already audited."""
        ...

    async def abandon_stale_claims(self, *, now: datetime, older_than: timedelta) -> list[IntentRecord]:
        """Mark claims whose process never recorded an outcome as unknown, so they get reconciled."""
        ...

    async def usage(self, to_number: str | None, *, now: datetime) -> UsageFacts:
        """Dials and estimated credits in the last 24 hours, and this number's last dial and unknown outcome."""
        ...

    async def unreconciled(self) -> list[IntentRecord]:
        """Intents whose outcome is still unknown, oldest first."""
        ...

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
        ...

    async def recent_audit(self, limit: int = 50) -> list[AuditEntry]:
        """The most recent audit entries, newest first."""
        ...

    async def aclose(self) -> None:
        """Leave the ledger: drop this process's policy lease and close the connection."""
        ...


def token_hash(token: str) -> str:
    """The sha256 a token is stored and looked up by; a leaked ledger file confirms nothing."""
    return hashlib.sha256(token.encode()).hexdigest()


def utc(moment: datetime) -> datetime:
    """The same instant in UTC; a naive time is refused because it has no instant."""
    if moment.tzinfo is None:
        raise ValueError(f"{moment!r} is naive; pass timezone-aware UTC times")
    return moment.astimezone(UTC)
