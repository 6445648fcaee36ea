"""What the ledger tests share: fixed times, bound arguments, rules that allow or refuse, consents and dials."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from pydantic import JsonValue

from outboundcalls_mcp.server.ledger import (
    BoundArgs,
    ConfirmMode,
    ConsentAnswer,
    ConsentDestination,
    ConsentRecord,
    Decision,
    DialedOutcome,
    DialRequest,
    IntentRecord,
    LedgerStore,
    NewConsent,
    Rules,
    binding_of,
    new_consent_id,
)
from outboundcalls_mcp.server.ledger_sqlite import SqliteLedger
from outboundcalls_mcp.server.policy import DEPLOYED_STATUS, DispatchPolicy
from outboundcalls_mcp.server.preflight import AgentFacts, PreflightResult, Refusal, RuleName, UsageFacts

__all__ = [
    "ARGS",
    "EXPIRES",
    "OTHER_ARGS",
    "RATE",
    "T0",
    "TTL",
    "Clock",
    "RecordingRules",
    "allow",
    "batch_binding",
    "batch_consent",
    "batch_use",
    "dial",
    "dialed",
    "form_use",
    "intent_of",
    "new_token",
    "open_ledger",
    "policy_rules",
    "preflight",
    "refuse",
    "single_consent",
    "single_consent_of",
    "token_use",
    "unattended",
]

# Noon in New York, 09:00 in San Francisco: inside the default calling hours for the numbers below.
T0: Final = datetime(2026, 1, 15, 17, 0, tzinfo=UTC)
TTL: Final = timedelta(minutes=5)
EXPIRES: Final = T0 + TTL
# The estimate the product's pricing gives these US numbers, so its rules and the kit's agree.
RATE: Final = 19.95
ARGS: Final = BoundArgs(agent_id="agent_1", to_number="+14155550134")
OTHER_ARGS: Final = BoundArgs(agent_id="agent_1", to_number="+14155550135")


@asynccontextmanager
async def open_ledger(state_dir: Path, *, poll_interval: float = 0.05) -> AsyncIterator[SqliteLedger]:
    """A SQLite ledger on a state directory, closed (its lease dropped) however the test ends."""
    ledger = SqliteLedger(state_dir, poll_interval=poll_interval)
    try:
        yield ledger
    finally:
        await ledger.aclose()


def new_token() -> str:
    """A confirmation token as the product mints them (32 URL-safe characters)."""
    return secrets.token_urlsafe(24)


def preflight(*rules: RuleName) -> PreflightResult:
    """A real pre-flight result refused by exactly these rules (allowed when none)."""
    return PreflightResult(
        raw=ARGS.to_number,
        number=None,
        region=None,
        estimated_credits_per_minute=RATE,
        estimated_credits_per_call=None,
        local_times=[],
        zones_fallback=False,
        zone_note=None,
        refusals=[Refusal(rule=rule, value="test", setting=None, message=f"{rule} refuses") for rule in rules],
    )


def allow(usage: UsageFacts, now: datetime) -> PreflightResult:
    """Rules that allow every dial."""
    return preflight()


def refuse(*rules: RuleName) -> Rules:
    """Rules that refuse every dial, naming these rules."""

    def evaluate(usage: UsageFacts, now: datetime) -> PreflightResult:
        return preflight(*rules)

    return evaluate


def policy_rules(policy: DispatchPolicy, target: BoundArgs, *, balance: float = 1000.0) -> Rules:
    """The product's own rules for a target (as DispatchService.rules builds them), with a deployed agent."""
    agent = AgentFacts(agent_id=target.agent_id, exists=True, status=DEPLOYED_STATUS)

    def evaluate(usage: UsageFacts, now: datetime) -> PreflightResult:
        return policy.evaluate(raw=target.to_number, now=now, agent=agent, balance=balance, usage=usage)

    return evaluate


@dataclass
class RecordingRules:
    """Rules that answer as given and keep every (usage, now) they were asked about."""

    refusing: tuple[RuleName, ...] = ()
    seen: list[tuple[UsageFacts, datetime]] = field(default_factory=list)

    def __call__(self, usage: UsageFacts, now: datetime) -> PreflightResult:
        self.seen.append((usage, now))
        return preflight(*self.refusing)


@dataclass
class Clock:
    """A manual clock for `decide`: it returns its time, moving `step` after each reading, and keeps the readings."""

    at: datetime = T0
    step: timedelta = timedelta(0)
    readings: list[datetime] = field(default_factory=list)

    def __call__(self) -> datetime:
        reading = self.at
        self.readings.append(reading)
        self.at += self.step
        return reading


def single_consent_of(
    args: BoundArgs, *, mode: str, estimate: float | None = RATE, audit: Mapping[str, JsonValue] | None = None
) -> NewConsent:
    """A single dispatch's consent to these arguments, shown as 'will be called', with this extra audit detail."""
    return NewConsent.model_validate(
        {
            "consent_id": new_consent_id(),
            "kind": "single",
            "mode": mode,
            "agent_id": args.agent_id,
            "phone_number_id": args.phone_number_id,
            "contact_id": args.contact_id,
            "binding": args.binding(),
            "destinations": [
                {"position": 0, "to_number": args.to_number, "dial": True, "estimate_per_minute": estimate}
            ],
            "question": f"Call {args.to_number}?",
            "audit": dict(audit or {}),
        }
    )


async def single_consent(
    ledger: LedgerStore,
    args: BoundArgs = ARGS,
    *,
    token: str | None,
    now: datetime = T0,
    expires_at: datetime | None = None,
    **audit: JsonValue,
) -> ConsentRecord:
    """Open a single dispatch's consent: a preview with this token, or a question when the token is None."""
    consent = single_consent_of(args, mode="elicit" if token is None else "token", audit=audit)
    return await ledger.open_consent(consent, now=now, expires_at=expires_at or now + TTL, token=token)


def batch_binding(agent_id: str, numbers: Sequence[str]) -> str:
    """A batch's binding, as dispatch_calls binds it."""
    return binding_of("batch", {"agent_id": agent_id, "phone_number_id": None, "to_numbers": list(numbers)})


async def batch_consent(
    ledger: LedgerStore,
    shown: Sequence[tuple[str, bool]],
    *,
    token: str | None = None,
    agent_id: str = "agent_1",
    now: datetime = T0,
) -> ConsentRecord:
    """Open a batch's consent over (number, shown as 'will be called') destinations, by position."""
    destinations = tuple(
        ConsentDestination(position=position, to_number=number, dial=dial, reason=None if dial else "hours",
                           estimate_per_minute=RATE)
        for position, (number, dial) in enumerate(shown)
    )  # fmt: skip
    consent = NewConsent(
        consent_id=new_consent_id(), kind="batch", mode="elicit" if token is None else "token", agent_id=agent_id,
        binding=batch_binding(agent_id, [number for number, _ in shown]), destinations=destinations,
        question=f"Call {len(shown)} numbers?",
    )  # fmt: skip
    return await ledger.open_consent(consent, now=now, expires_at=now + TTL, token=token)


def batch_use(consent: ConsentRecord, *, via: str = "form", answer_key: str | None = None) -> ConsentAnswer:
    """A batch's yes (or no) to the numbers it showed, its binding computed afresh from them."""
    binding = batch_binding(consent.agent_id, [d.to_number for d in consent.destinations])
    return ConsentAnswer.model_validate(
        {"consent_id": consent.consent_id, "binding": binding, "via": via, "answer_key": answer_key}
    )


def token_use(consent: ConsentRecord, args: BoundArgs = ARGS, *, keep_open: bool = True) -> ConsentAnswer:
    """A yes by token with these arguments; a token stays usable when the rules refuse it, as the product asks."""
    return ConsentAnswer(
        consent_id=consent.consent_id, binding=args.binding(), via="token", keep_open_if_refused=keep_open
    )


def form_use(consent: ConsentRecord, args: BoundArgs = ARGS, *, answer_key: str | None = None) -> ConsentAnswer:
    """A ticked form's yes to a question with these arguments."""
    return ConsentAnswer(consent_id=consent.consent_id, binding=args.binding(), via="form", answer_key=answer_key)


def dial(
    args: BoundArgs = ARGS,
    *,
    consent: ConsentRecord | None = None,
    use: ConsentAnswer | None = None,
    position: int = 0,
    mode: ConfirmMode | None = None,
) -> DialRequest:
    """A dial to decide: under a consent (with a yes that uses it, or a batch's position), or unattended."""
    if mode is None:
        mode = "none" if consent is None else consent.mode
    return DialRequest(
        target=args, estimate_per_minute=RATE, mode=mode, consent_id=consent.consent_id if consent else None,
        position=position, use=use,
    )  # fmt: skip


def intent_of(decision: Decision) -> IntentRecord:
    """The intent a decision recorded (claimed, or refused under a consent); it must have one."""
    assert decision.intent is not None, decision
    return decision.intent


async def unattended(ledger: LedgerStore, args: BoundArgs = ARGS, at: datetime = T0, rules: Rules = allow) -> Decision:
    """Decide an unattended dial (no consent) at a fixed time."""
    return await ledger.decide(dial(args), rules, clock=Clock(at))


async def dialed(ledger: LedgerStore, args: BoundArgs, at: datetime, call_id: str) -> IntentRecord:
    """An unattended dial claimed at `at` whose POST created `call_id`."""
    decision = await unattended(ledger, args, at)
    assert decision.claimed and decision.intent is not None, decision
    return await ledger.record_outcome(decision.intent.intent_id, DialedOutcome(call_id=call_id), now=at)
