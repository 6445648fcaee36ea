"""The dispatch ledger: consents, dials decided one at a time, their outcomes, and the audit trail.

A consent is what a person was shown and may say yes to: one question (a form) or one preview
(with a confirmation token), bound to the exact arguments and to the destinations shown as "will
be called". It is open until a yes (or a no) uses it, once; every later use gets the first
outcome and dials nothing.

A dial is decided in one transaction, serialized per account: the consent's state, the rules
that read the ledger (cooldown, holds, the daily caps) and the time-based ones, evaluated with
one `now` read inside it, and the claim (a new intent in state "dialing"). Only "claimed" allows
the one POST. An intent then moves dialing -> dialed | failed | unknown; unknown -> dialed when
reconciliation finds the call. A dial refused inside the transaction is recorded as an intent in
state "refused", so that the consent it answered reports it again.

LedgerStore is the storage seam. Its operations are written once (server.ledger_sql) over two
backends: SQLite (server.ledger_sqlite) serializes writes by the file's write lock, PostgreSQL
(server.ledger_postgres) by a transaction-scoped advisory lock per account.

LedgerError
├── UnknownIntentError     no intent has this id
├── LedgerStateError       the intent is not in a state that allows the operation
├── PolicyMismatchError    another live process shares the ledger with a different policy
├── NewerSchemaError       the ledger was written by a newer release: run that one
└── LedgerUnavailableError the ledger's database cannot be reached now: nothing was decided
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Final, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from outboundcalls_mcp.server.preflight import PreflightResult, RuleName, UsageFacts

__all__ = [
    "USAGE_WINDOW",
    "AuditEntry",
    "AuditKind",
    "BoundArgs",
    "ConfirmMode",
    "ConsentAnswer",
    "ConsentDestination",
    "ConsentKind",
    "ConsentRecord",
    "ConsentState",
    "Decision",
    "DecisionStatus",
    "DialRequest",
    "DialedOutcome",
    "FailedOutcome",
    "IntentRecord",
    "IntentState",
    "LedgerError",
    "LedgerStateError",
    "LedgerStore",
    "LedgerUnavailableError",
    "NewConsent",
    "NewerSchemaError",
    "Outcome",
    "PolicyMismatchError",
    "Rules",
    "UnknownIntentError",
    "UnknownOutcome",
    "UsageFacts",
    "binding_of",
    "consent_reference",
    "new_consent_id",
    "token_hash",
    "utc",
]

# The caps and the call count look back this far (a rolling day).
USAGE_WINDOW: Final = timedelta(hours=24)
_E164_PATTERN: Final = r"^\+[1-9][0-9]{1,14}$"

ConfirmMode = Literal["token", "elicit", "none"]
ConsentKind = Literal["single", "batch"]
ConsentState = Literal["open", "used"]
IntentState = Literal["dialing", "dialed", "failed", "unknown", "refused"]
AuditKind = Literal["preview", "question", "answer", "refusal", "dial", "outcome", "reconcile", "charge", "replay"]
DecisionStatus = Literal[
    "claimed", "refused", "consent_used", "consent_expired", "consent_mismatched", "consent_unknown"
]
# How a person's answer reads in the ledger: a ticked form, a token, or anything that is not a yes.
Answer = Literal["accept", "token", "accept_false", "decline", "cancel", "error"]

# Rules evaluated inside the decision: the ledger's usage facts and the decision's own `now` in,
# every refusing rule out. Pure: it runs while the account is locked.
Rules = Callable[[UsageFacts, datetime], PreflightResult]


class LedgerError(Exception):
    """Root of the ledger's errors."""


class UnknownIntentError(LedgerError):
    """No intent has this id."""


class LedgerStateError(LedgerError):
    """The intent's state does not allow the operation (for example an outcome recorded twice)."""

    def __init__(self, intent_id: str, state: str, operation: str) -> None:
        super().__init__(f"intent {intent_id} is {state}; cannot {operation}")
        self.intent_id = intent_id
        self.state = state


class PolicyMismatchError(LedgerError):
    """Another live process uses this ledger with a different dispatch policy."""

    def __init__(
        self,
        location: str,
        changes: Mapping[str, tuple[str, str]],
        other_seen_at: datetime,
        *,
        shared_by: str = "OUTBOUNDCALLS_STATE_DIR",
    ) -> None:
        listed = "; ".join(f"{name}: {theirs} there, {ours} here" for name, (theirs, ours) in sorted(changes.items()))
        super().__init__(
            f"the dispatch ledger in {location} is in use by another process (last seen "
            f"{other_seen_at:%Y-%m-%d %H:%M:%S} UTC) with a different policy: {listed or 'settings differ'}. "
            f"Processes sharing {shared_by} must enforce the same rules: start this one with the same "
            f"settings, stop the other one first, or give this one its own {shared_by}."
        )
        self.changes = dict(changes)


class NewerSchemaError(LedgerError):
    """The ledger's schema is newer than this release knows; the message names the release to run."""

    def __init__(
        self, location: str, found: int, written_by: str | None, supported: int, *, kept_in: str, setting: str
    ) -> None:
        from outboundcalls.version import __version__

        release = written_by or "a newer release"
        super().__init__(
            f"{location} has ledger schema {found}, written by outboundcalls-mcp {release}; this is {__version__} "
            f"(schema {supported}). Run outboundcalls-mcp {release} or newer with this {kept_in}, or give this one "
            f"its own {setting}."
        )
        self.written_by = written_by


class LedgerUnavailableError(LedgerError):
    """The ledger's database could not be reached or failed mid-transaction; that transaction changed nothing."""

    def __init__(self, location: str) -> None:
        super().__init__(
            f"the dispatch ledger ({location}) cannot be reached right now, so nothing was decided or dialed; "
            "the server reconnects by itself: try again in a moment"
        )


class BoundArgs(BaseModel):
    """What one dial is bound to: the agent, the number in E.164, the caller id and the contact."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    agent_id: str = Field(min_length=1)
    to_number: str = Field(pattern=_E164_PATTERN)
    phone_number_id: str | None = None
    contact_id: str | None = None

    def binding(self) -> str:
        """The binding of a single dispatch to exactly these arguments."""
        return binding_of("single", self.model_dump())


class ConsentDestination(BaseModel):
    """One destination as the person was shown it: to be called, or refused and why."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    position: int = Field(ge=0)
    to_number: str = Field(description="E.164, or the input as displayed when it is no number.")
    dial: bool = Field(description="Shown as 'will be called'.")
    reason: str | None = None
    estimate_per_minute: float | None = None


class NewConsent(BaseModel):
    """A consent about to be shown: as a question (elicit) or a preview with a token."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    consent_id: str = Field(
        pattern=r"^cn_[0-9a-f]{20}$", description="From new_consent_id(); the question may cite it."
    )
    kind: ConsentKind
    mode: Literal["token", "elicit"]
    agent_id: str
    phone_number_id: str | None = None
    contact_id: str | None = None
    binding: str
    destinations: tuple[ConsentDestination, ...] = Field(min_length=1)
    question: str = Field(description="The exact words shown; the same words are asked again on the answering round.")
    audit: dict[str, JsonValue] = Field(
        default_factory=dict, description="Extra detail for the preview or question entry."
    )


class ConsentRecord(BaseModel):
    """A consent as the ledger keeps it; never its token."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    consent_id: str
    kind: ConsentKind
    mode: Literal["token", "elicit"]
    agent_id: str
    phone_number_id: str | None = None
    contact_id: str | None = None
    binding: str
    destinations: tuple[ConsentDestination, ...]
    question: str
    created_at: datetime
    expires_at: datetime
    state: ConsentState
    answer: Answer | None = None
    answered_at: datetime | None = None

    @property
    def agreed(self) -> tuple[ConsentDestination, ...]:
        """The destinations shown as 'will be called', the only ones a yes can dial."""
        return tuple(d for d in self.destinations if d.dial)


class ConsentAnswer(BaseModel):
    """A yes that uses a consent inside the decision that dials under it."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    consent_id: str
    binding: str
    via: Literal["token", "form"]
    answer_key: str | None = Field(default=None, description="Identifies the answering round, so a replay finds it.")
    # A token whose dial the rules refuse at confirmation stays usable until it expires; a form's
    # yes is used by its first decision, whatever that decides.
    keep_open_if_refused: bool = False


class DialRequest(BaseModel):
    """One destination to decide on: dial it now, or refuse it, in one transaction."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    target: BoundArgs
    estimate_per_minute: float | None
    mode: ConfirmMode
    consent_id: str | None = None
    position: int = 0
    use: ConsentAnswer | None = None

    @model_validator(mode="after")
    def _use_is_of_this_consent(self) -> DialRequest:
        if self.use is not None and self.use.consent_id != self.consent_id:
            raise ValueError("a yes can only use the consent the dial is decided under")
        return self


class IntentRecord(BaseModel):
    """One decided dial: claimed (then its outcome), or refused inside the decision."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    intent_id: str
    consent_id: str | None = None
    position: int = 0
    args: BoundArgs
    mode: ConfirmMode
    state: IntentState
    estimated_credits_per_minute: float | None
    estimated_credits_per_call: float | None
    decided_at: datetime
    refused_rules: tuple[RuleName, ...] = ()
    call_id: str | None = None
    failure_status: int | None = None
    failure_message: str | None = None
    unknown_reason: str | None = None
    finished_at: datetime | None = None
    reconciled_at: datetime | None = None


class Decision(BaseModel):
    """What one decision did: only "claimed" allows the POST."""

    model_config = ConfigDict(frozen=True, defer_build=True, arbitrary_types_allowed=True)

    status: DecisionStatus
    intent: IntentRecord | None = None
    preflight: PreflightResult | None = None
    consent: ConsentRecord | None = None

    @property
    def claimed(self) -> bool:
        """Whether this caller, and only this caller, may now send the POST."""
        return self.status == "claimed"


class DialedOutcome(BaseModel):
    """The vendor created the call."""

    model_config = ConfigDict(defer_build=True)

    kind: Literal["dialed"] = "dialed"
    call_id: str = Field(min_length=1)


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


Outcome = Annotated[DialedOutcome | FailedOutcome | UnknownOutcome, Field(discriminator="kind")]


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
    """The storage seam of safe dispatch; times are passed in, or read once inside a decision."""

    async def ensure_policy_fingerprint(self, fingerprint: str, summary: Mapping[str, str], *, now: datetime) -> None:
        """Join the ledger with this policy, or raise PolicyMismatchError if a live process has another."""
        ...

    async def heartbeat(self, *, now: datetime) -> None:
        """Tell other processes this one is still running with its policy."""
        ...

    async def open_consent(
        self, consent: NewConsent, *, now: datetime, expires_at: datetime, token: str | None
    ) -> ConsentRecord:
        """Record a consent as shown (audited as a preview or a question); a token is stored only as its hash.

        A question whose binding already has an open, unexpired question is that question: identical
        requests racing (a host sending one tool call twice) are asked once, and a yes to either is one yes.
        """
        ...

    async def consent(self, consent_id: str) -> ConsentRecord | None:
        """A consent by its id, if any."""
        ...

    async def consent_by_token(self, token: str) -> ConsentRecord | None:
        """The consent a token was issued for, if any."""
        ...

    async def consent_for_answer(self, binding: str, *, answer_key: str, now: datetime) -> ConsentRecord | None:
        """The consent an answering round answers: the one it already used, else the newest open question so bound."""
        ...

    async def answer_consent(self, answer: ConsentAnswer, response: Answer, *, now: datetime) -> Decision:
        """Use a consent with an answer that dials nothing by itself (a no, or a batch's yes); once."""
        ...

    async def decide(self, request: DialRequest, rules: Rules, *, clock: Callable[[], datetime]) -> Decision:
        """In one transaction serialized per account: the consent, the ledger's rules at one `now`, and the claim."""
        ...

    async def intents_of(self, consent_id: str) -> list[IntentRecord]:
        """The dials decided under a consent, by position."""
        ...

    async def intent(self, intent_id: str) -> IntentRecord:
        """One decided dial by its id; UnknownIntentError if none."""
        ...

    async def wait_for_consent(self, consent_id: str, *, positions: int, timeout: float) -> list[IntentRecord]:
        """Wait (bounded) until every agreed position of a used consent is decided and none is still dialing."""
        ...

    async def record_outcome(self, intent_id: str, outcome: Outcome, *, now: datetime) -> IntentRecord:
        """Record what the POST of a claimed intent did."""
        ...

    async def reconcile_intent(self, intent_id: str, call_id: str | None, *, now: datetime) -> IntentRecord:
        """Settle an unknown outcome: dialed when the call was found, still unknown when not."""
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

    async def abandon_orphaned_claims(self, *, now: datetime, older_than: timedelta) -> list[IntentRecord]:
        """Mark unknown the claims of processes known to be gone (not this one), decided before now - older_than."""
        ...

    async def policy_lease_held(self, *, now: datetime) -> bool:
        """Whether this process's policy lease is current in the ledger (read only: a readiness probe)."""
        ...

    async def usage(self, to_number: str | None, *, now: datetime) -> UsageFacts:
        """Dials and estimated credits in the last 24 hours, and this number's last dial, dial in flight and hold."""
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


def new_consent_id() -> str:
    """A fresh consent id; unguessable, so a question citing it is worded like no other."""
    return "cn_" + secrets.token_hex(10)


def consent_reference(consent_id: str) -> str:
    """The short form of a consent id a person reads in the question."""
    return consent_id[-6:].upper()


def binding_of(kind: ConsentKind, arguments: Mapping[str, JsonValue | Sequence[str | None]]) -> str:
    """A sha256 of a consent's exact, normalised arguments: any difference makes another binding."""
    canonical = json.dumps({"kind": kind, "arguments": arguments}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def token_hash(token: str) -> str:
    """The sha256 a token is stored and looked up by; a leaked ledger file confirms nothing."""
    return hashlib.sha256(token.encode()).hexdigest()


def utc(moment: datetime) -> datetime:
    """The same instant in UTC; a naive time is refused because it has no instant."""
    if moment.tzinfo is None:
        raise ValueError(f"{moment!r} is naive; pass timezone-aware UTC times")
    return moment.astimezone(UTC)
