"""What pre-flight takes and answers: the facts gathered for it, and each refusing rule."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Final, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from outboundcalls.numbers import PhoneNumber, ShortNumber
from outboundcalls_mcp.server.calling_hours import LocalTime

__all__ = [
    "ESTIMATE_MINUTES_PER_CALL",
    "RULE_ORDER",
    "RULE_SETTINGS",
    "AgentFacts",
    "PreflightResult",
    "Refusal",
    "RuleName",
    "UsageFacts",
    "estimate_per_call",
]

# The daily credit cap counts each dial as this many minutes at the destination's estimated rate.
ESTIMATE_MINUTES_PER_CALL: Final = 5

RuleName = Literal[
    "validity",
    "emergency",
    "agent",
    "balance",
    "number_type",
    "country",
    "rate",
    "do_not_call",
    "hours",
    "daily_calls",
    "daily_credits",
    "cooldown",
    "unknown_outcome_hold",
]
# Most fundamental first: refusals are reported in the order the names are declared above.
RULE_ORDER: Final[tuple[RuleName, ...]] = get_args(RuleName)
# None where no setting can change the outcome (an invalid or emergency number, the agent, credits).
RULE_SETTINGS: Final[Mapping[RuleName, str | None]] = MappingProxyType(
    {
        "validity": None,
        "emergency": None,
        "agent": None,
        "balance": None,
        "number_type": "OUTBOUNDCALLS_ALLOWED_NUMBER_TYPES",
        "country": "OUTBOUNDCALLS_ALLOWED_COUNTRIES",
        "rate": "OUTBOUNDCALLS_MAX_CREDITS_PER_MINUTE",
        "do_not_call": "OUTBOUNDCALLS_DO_NOT_CALL_FILE",
        "hours": "OUTBOUNDCALLS_CALLING_HOURS",
        "daily_calls": "OUTBOUNDCALLS_MAX_CALLS_PER_DAY",
        "daily_credits": "OUTBOUNDCALLS_MAX_CREDITS_PER_DAY",
        "cooldown": "OUTBOUNDCALLS_REDIAL_COOLDOWN_MINUTES",
        "unknown_outcome_hold": "OUTBOUNDCALLS_REDIAL_COOLDOWN_MINUTES",
    }
)


class Refusal(BaseModel):
    """One rule that refuses a dispatch: what it refused, which setting governs it, what to do."""

    model_config = ConfigDict(frozen=True)

    rule: RuleName
    value: str
    setting: str | None
    message: str


class AgentFacts(BaseModel):
    """What the API said about the agent that would place the call."""

    model_config = ConfigDict(frozen=True)

    agent_id: str
    exists: bool
    status: str | None = None
    name: str | None = None


class UsageFacts(BaseModel):
    """What the ledger says about recent dials: overall, and to this destination (to_number)."""

    model_config = ConfigDict(frozen=True)

    to_number: str | None = None
    calls_last_24h: int = Field(default=0, ge=0)
    credits_last_24h: float = Field(default=0.0, ge=0)
    last_dial_at: datetime | None = None
    in_flight: bool = Field(default=False, description="A dial to this number is claimed and has no outcome yet.")
    unknown_outcome_at: datetime | None = None


class PreflightResult(BaseModel):
    """The destination as understood, its estimates and local times, and every refusing rule."""

    model_config = ConfigDict(frozen=True)

    raw: str
    number: PhoneNumber | None
    short_number: ShortNumber | None = None
    region: str | None
    estimated_credits_per_minute: float | None = Field(description="An estimate, not a quote.")
    estimated_credits_per_call: float | None = Field(
        description=f"{ESTIMATE_MINUTES_PER_CALL} minutes at the estimated rate, as counted by the daily credit cap."
    )
    local_times: list[LocalTime]
    zones_fallback: bool = Field(description="The number has no geographic area; a capital or default zone was used.")
    zone_note: str | None
    refusals: list[Refusal]

    @property
    def allowed(self) -> bool:
        """Whether no rule refuses."""
        return not self.refusals

    @property
    def rules(self) -> list[RuleName]:
        """The refusing rules' names, in order."""
        return [refusal.rule for refusal in self.refusals]

    def refusal_text(self) -> str:
        """Every refusal as lines an assistant can read and act on."""
        lines = [f"Not dialed: {len(self.refusals)} rule(s) refuse this call."]
        for refusal in self.refusals:
            setting = f" (setting {refusal.setting})" if refusal.setting else ""
            lines.append(f"- {refusal.rule}: {refusal.value}. {refusal.message}{setting}")
        return "\n".join(lines)


def estimate_per_call(per_minute: float | None) -> float | None:
    """The credits the daily cap counts for one dial: the estimated rate for a fixed number of minutes."""
    return None if per_minute is None else round(per_minute * ESTIMATE_MINUTES_PER_CALL, 2)
