"""The dispatch policy: pre-flight rules as pure functions over facts the caller gathered.

Every refusing rule is named, most fundamental first, in RULE_ORDER:
validity, emergency, agent, balance, number_type, country, rate, do_not_call, hours,
daily_calls, daily_credits, cooldown, unknown_outcome_hold.
Emergency replaces validity (an emergency number is never a valid full number, and "emergency"
is the truer name). Agent and balance come next: they concern who would place the call, not where
it goes, and no destination rule matters while either refuses. The hold comes last because it is
the cooldown's companion: it lasts until the outcome is reconciled or the cooldown ends.
Nothing here reads a clock, the network or the ledger; only the do-not-call file is read, once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final, Literal, get_args

from outboundcalls.display import one_line
from outboundcalls.numbers import InvalidPhoneNumberError, PhoneNumber, number_type_names, parse_phone
from outboundcalls.pricing import MINIMUM_BALANCE_CREDITS, estimate_credits_per_minute
from outboundcalls_mcp.server.calling_hours import (
    DEFAULT_CALLING_HOURS,
    CallingHours,
    LocalTime,
    destination_zones,
    local_times,
)
from outboundcalls_mcp.server.do_not_call import DoNotCallFileError, load_do_not_call
from outboundcalls_mcp.server.preflight import (
    ESTIMATE_MINUTES_PER_CALL,
    RULE_ORDER,
    RULE_SETTINGS,
    AgentFacts,
    PreflightResult,
    Refusal,
    RuleName,
    UsageFacts,
    estimate_per_call,
)

__all__ = [
    "CONFIRM_MODES",
    "DEFAULT_ALLOWED_NUMBER_TYPES",
    "DEFAULT_CONFIRM_MODE",
    "DEFAULT_MAX_BATCH",
    "DEFAULT_MAX_CALLS_PER_DAY",
    "DEFAULT_MAX_CREDITS_PER_DAY",
    "DEFAULT_MAX_CREDITS_PER_MINUTE",
    "DEFAULT_REDIAL_COOLDOWN_MINUTES",
    "DEFAULT_REGION",
    "ESTIMATE_MINUTES_PER_CALL",
    "RULE_ORDER",
    "RULE_SETTINGS",
    "AgentFacts",
    "ConfirmMode",
    "DispatchPolicy",
    "DoNotCallFileError",
    "PolicyError",
    "PreflightResult",
    "Refusal",
    "RuleName",
    "UsageFacts",
    "bad_country_codes",
    "bad_number_types",
    "load_do_not_call",
]

# How a dispatch is consented to: by form when the client can show one (auto), always by form
# (elicit), always by preview and token (token), or never (none: unattended, within explicit caps).
ConfirmMode = Literal["auto", "elicit", "token", "none"]
# The owner's policy when a setting is not given: the one place these values are written
# (server/settings.py and manifest.json's user_config defaults follow them, the latter by a test).
DEFAULT_CONFIRM_MODE: Final[ConfirmMode] = "auto"
DEFAULT_REGION: Final = "US"
DEFAULT_MAX_BATCH: Final = 20
DEFAULT_MAX_CREDITS_PER_MINUTE: Final = 100.0
DEFAULT_MAX_CALLS_PER_DAY: Final = 50
DEFAULT_MAX_CREDITS_PER_DAY: Final = 5000.0
DEFAULT_REDIAL_COOLDOWN_MINUTES: Final = 60

DEFAULT_ALLOWED_NUMBER_TYPES: Final = frozenset({"FIXED_LINE", "MOBILE", "FIXED_LINE_OR_MOBILE", "TOLL_FREE", "VOIP"})
DEPLOYED_STATUS: Final = "deployed"
CONFIRM_MODES: Final[tuple[ConfirmMode, ...]] = get_args(ConfirmMode)
_FINGERPRINT_VERSION: Final = 2


class PolicyError(ValueError):
    """A policy setting that does not parse or makes no sense; the server must not start."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"{setting}: {message}")
        self.setting = setting


@dataclass(frozen=True)
class DispatchPolicy:
    """The owner's dispatch rules, fixed at start-up; no tool argument can loosen them."""

    confirm_mode: ConfirmMode = DEFAULT_CONFIRM_MODE
    default_region: str = DEFAULT_REGION
    max_batch: int = DEFAULT_MAX_BATCH
    allowed_countries: frozenset[str] = frozenset()
    allowed_number_types: frozenset[str] = DEFAULT_ALLOWED_NUMBER_TYPES
    max_credits_per_minute: float = DEFAULT_MAX_CREDITS_PER_MINUTE
    calling_hours: CallingHours = DEFAULT_CALLING_HOURS
    do_not_call: frozenset[str] = frozenset()
    max_calls_per_day: int = DEFAULT_MAX_CALLS_PER_DAY
    max_credits_per_day: float = DEFAULT_MAX_CREDITS_PER_DAY
    redial_cooldown_minutes: int = DEFAULT_REDIAL_COOLDOWN_MINUTES

    def __post_init__(self) -> None:
        if self.confirm_mode not in CONFIRM_MODES:
            raise PolicyError(
                "OUTBOUNDCALLS_CONFIRM", f"must be one of {', '.join(CONFIRM_MODES)}, got {self.confirm_mode!r}"
            )
        if len(self.default_region) != 2 or not self.default_region.isascii() or not self.default_region.isupper():
            raise PolicyError("OUTBOUNDCALLS_DEFAULT_REGION", f"not an upper-case ISO code: {self.default_region!r}")
        if self.max_batch < 1:
            raise PolicyError("OUTBOUNDCALLS_MAX_BATCH", f"must be 1 or more, got {self.max_batch}")
        if bad := bad_country_codes(self.allowed_countries):
            raise PolicyError("OUTBOUNDCALLS_ALLOWED_COUNTRIES", bad)
        if bad := bad_number_types(self.allowed_number_types):
            raise PolicyError("OUTBOUNDCALLS_ALLOWED_NUMBER_TYPES", bad)
        bad_numbers = sorted(n for n in self.do_not_call if not (n.startswith("+") and n[1:].isdigit()))
        if bad_numbers:
            raise PolicyError("OUTBOUNDCALLS_DO_NOT_CALL_FILE", f"not E.164: {', '.join(bad_numbers[:3])}")
        for setting, value in (
            ("OUTBOUNDCALLS_MAX_CREDITS_PER_MINUTE", self.max_credits_per_minute),
            ("OUTBOUNDCALLS_MAX_CALLS_PER_DAY", self.max_calls_per_day),
            ("OUTBOUNDCALLS_MAX_CREDITS_PER_DAY", self.max_credits_per_day),
        ):
            if not value > 0:
                raise PolicyError(setting, f"must be greater than 0, got {value!r}")
        if self.redial_cooldown_minutes < 0:
            raise PolicyError(
                "OUTBOUNDCALLS_REDIAL_COOLDOWN_MINUTES", f"must be 0 or more, got {self.redial_cooldown_minutes}"
            )

    @classmethod
    def from_values(
        cls,
        *,
        confirm_mode: ConfirmMode = DEFAULT_CONFIRM_MODE,
        max_batch: int = DEFAULT_MAX_BATCH,
        allowed_countries: Iterable[str] = (),
        allowed_number_types: Iterable[str] = DEFAULT_ALLOWED_NUMBER_TYPES,
        max_credits_per_minute: float = DEFAULT_MAX_CREDITS_PER_MINUTE,
        calling_hours: str | CallingHours = DEFAULT_CALLING_HOURS,
        do_not_call_file: Path | None = None,
        default_region: str = DEFAULT_REGION,
        max_calls_per_day: int = DEFAULT_MAX_CALLS_PER_DAY,
        max_credits_per_day: float = DEFAULT_MAX_CREDITS_PER_DAY,
        redial_cooldown_minutes: int = DEFAULT_REDIAL_COOLDOWN_MINUTES,
    ) -> DispatchPolicy:
        """Build the policy from typed settings, parsing the hours and reading the do-not-call file."""
        if isinstance(calling_hours, str):
            try:
                calling_hours = CallingHours.parse(calling_hours)
            except ValueError as exc:
                raise PolicyError("OUTBOUNDCALLS_CALLING_HOURS", str(exc)) from None
        return cls(
            confirm_mode=confirm_mode,
            default_region=default_region.strip().upper(),
            max_batch=max_batch,
            allowed_countries=frozenset(c.strip().upper() for c in allowed_countries if c.strip()),
            allowed_number_types=frozenset(t.strip().upper() for t in allowed_number_types if t.strip()),
            max_credits_per_minute=float(max_credits_per_minute),
            calling_hours=calling_hours,
            do_not_call=frozenset() if do_not_call_file is None else load_do_not_call(do_not_call_file, default_region),
            max_calls_per_day=max_calls_per_day,
            max_credits_per_day=float(max_credits_per_day),
            redial_cooldown_minutes=redial_cooldown_minutes,
        )

    def settings_summary(self) -> dict[str, str]:
        """Each setting's normalized value by env var; do-not-call numbers as a count and digest only."""
        digest = hashlib.sha256("\n".join(sorted(self.do_not_call)).encode()).hexdigest()
        return {
            # Consent first: an elicit-mode process must never share a ledger with one that mints tokens.
            "OUTBOUNDCALLS_CONFIRM": self.confirm_mode,
            # How national numbers are read decides which number is dialed.
            "OUTBOUNDCALLS_DEFAULT_REGION": self.default_region,
            "OUTBOUNDCALLS_MAX_BATCH": str(self.max_batch),
            "OUTBOUNDCALLS_ALLOWED_COUNTRIES": ",".join(sorted(self.allowed_countries)) or "(all)",
            "OUTBOUNDCALLS_ALLOWED_NUMBER_TYPES": ",".join(sorted(self.allowed_number_types)),
            "OUTBOUNDCALLS_MAX_CREDITS_PER_MINUTE": repr(self.max_credits_per_minute),
            "OUTBOUNDCALLS_CALLING_HOURS": str(self.calling_hours),
            "OUTBOUNDCALLS_DO_NOT_CALL_FILE": f"{len(self.do_not_call)} numbers, sha256 {digest}",
            "OUTBOUNDCALLS_MAX_CALLS_PER_DAY": str(self.max_calls_per_day),
            "OUTBOUNDCALLS_MAX_CREDITS_PER_DAY": repr(self.max_credits_per_day),
            "OUTBOUNDCALLS_REDIAL_COOLDOWN_MINUTES": str(self.redial_cooldown_minutes),
        }

    def fingerprint(self) -> str:
        """A stable sha256 of the normalized settings, so processes sharing a ledger can compare policies."""
        payload = {"version": _FINGERPRINT_VERSION, "settings": self.settings_summary()}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

    def evaluate(
        self,
        *,
        raw: str,
        now: datetime,
        agent: AgentFacts,
        balance: float,
        usage: UsageFacts,
    ) -> PreflightResult:
        """Run every pre-flight rule and name each one that refuses, most fundamental first."""
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware (UTC)")
        refusals: list[Refusal] = []
        number: PhoneNumber | None = None
        short = None
        try:
            number = parse_phone(raw, self.default_region)
        except InvalidPhoneNumberError as exc:
            short = exc.short_number
            refusals.append(_refuse_invalid(exc))
        if number is not None and usage.to_number not in (None, number.e164):
            raise ValueError(f"usage facts are for {usage.to_number}, not for {number.e164}")
        refusals.extend(_refuse_agent_and_balance(agent, balance))
        per_minute = estimate_credits_per_minute(number.region) if number and number.region else None
        per_call = estimate_per_call(per_minute)
        times: tuple[LocalTime, ...] = ()
        zones_fallback, zone_note = False, None
        if number is not None:
            refusals.extend(self._refuse_destination(number, per_minute))
            zones = destination_zones(number, self.default_region)
            times = local_times(zones.zones, now, self.calling_hours)
            zones_fallback, zone_note = zones.fallback, zones.note
            hours = self._refuse_hours(number, times, zone_note)
            if hours is not None:
                refusals.append(hours)
        refusals.extend(self.refuse_caps(usage, per_call))
        if number is not None:
            refusals.extend(self._refuse_redial(number, usage, now))
        refusals.sort(key=lambda refusal: RULE_ORDER.index(refusal.rule))
        return PreflightResult(
            raw=raw,
            number=number,
            short_number=short,
            region=number.region if number else None,
            estimated_credits_per_minute=per_minute,
            estimated_credits_per_call=per_call,
            local_times=list(times),
            zones_fallback=zones_fallback,
            zone_note=zone_note,
            refusals=refusals,
        )

    def _refuse_destination(self, number: PhoneNumber, per_minute: float | None) -> list[Refusal]:
        """Number type, country, rate and do-not-call: what the destination itself is."""
        refusals = []
        if number.number_type not in self.allowed_number_types:
            allowed = ", ".join(sorted(self.allowed_number_types))
            refusals.append(
                _refusal(
                    "number_type",
                    f"{number.e164} is {number.number_type}",
                    f"{number.number_type} numbers are not allowed (allowed: {allowed}); premium-rate and similar "
                    "numbers can cost far more than a call. Only the owner can allow the type, in the setting.",
                )
            )
        if self.allowed_countries and number.region not in self.allowed_countries:
            where = number.region or "no country (a non-geographic number)"
            allowed = ", ".join(sorted(self.allowed_countries))
            refusals.append(
                _refusal(
                    "country",
                    f"{number.e164} is in {where}",
                    f"Calls are limited to {allowed}. Only the owner can add a country, in the setting.",
                )
            )
        if per_minute is None:
            refusals.append(
                _refusal(
                    "rate",
                    f"{number.e164} ({number.region or 'non-geographic'}) has no rate estimate",
                    "Without an estimated rate the toll-fraud guard cannot check this destination, so it is refused.",
                )
            )
        elif per_minute > self.max_credits_per_minute:
            refusals.append(
                _refusal(
                    "rate",
                    f"{number.e164} ({number.region}) is estimated at {per_minute:g} credits/min, "
                    f"over the cap of {self.max_credits_per_minute:g}",
                    "Expensive destinations are refused as a guard against toll fraud (the figure is an estimate). "
                    "Only the owner can raise the cap, in the setting.",
                )
            )
        if number.e164 in self.do_not_call:
            # Where the owner keeps the list is the owner's business, not the assistant's.
            refusals.append(
                _refusal(
                    "do_not_call",
                    f"{number.e164} is on the do-not-call list",
                    "This number must not be called. Do not try another way to reach it.",
                )
            )
        return refusals

    def _refuse_hours(self, number: PhoneNumber, times: tuple[LocalTime, ...], zone_note: str | None) -> Refusal | None:
        """The local time in every zone of the destination must be inside the calling hours."""
        if not times:
            return _refusal(
                "hours",
                f"the local time at {number.e164} is unknown",
                f"{zone_note or 'No time zone is known'}, so calling hours ({self.calling_hours}) cannot be checked.",
            )
        outside = [t for t in times if not t.inside_hours]
        if not outside:
            return None
        shown = ", ".join(f"{t.local_time:%H:%M} in {t.zone}" for t in outside)
        return _refusal(
            "hours",
            f"the local time at {number.e164} is {shown}, outside {self.calling_hours}",
            f"Calls are placed only between {self.calling_hours} local time (end exclusive) in every time zone "
            "the number may be in. Try again inside that window; only the owner can change the hours.",
        )

    def refuse_caps(
        self, usage: UsageFacts, per_call: float | None, *, planned_calls: int = 0, planned_credits: float = 0.0
    ) -> list[Refusal]:
        """The rolling 24-hour caps on dials and on estimated credits, counting what a batch already plans."""
        refusals = []
        planned = f" and {planned_calls} more planned in this batch" if planned_calls else ""
        if usage.calls_last_24h + planned_calls >= self.max_calls_per_day:
            refusals.append(
                _refusal(
                    "daily_calls",
                    f"{usage.calls_last_24h} calls were dialed in the last 24 hours{planned}; "
                    f"the cap is {self.max_calls_per_day}",
                    "The daily call cap is reached; it frees up as dials age past 24 hours. "
                    "Only the owner can raise it, in the setting.",
                )
            )
        this_call = per_call or 0.0
        if usage.credits_last_24h + planned_credits + this_call > self.max_credits_per_day:
            planned_spend = f" and {planned_credits:g} planned in this batch" if planned_calls else ""
            refusals.append(
                _refusal(
                    "daily_credits",
                    f"{usage.credits_last_24h:g} estimated credits in the last 24 hours{planned_spend} plus "
                    f"{this_call:g} for this call ({ESTIMATE_MINUTES_PER_CALL} minutes at the estimated rate) "
                    f"exceeds the cap of {self.max_credits_per_day:g}",
                    "The daily credit cap (an estimate) is reached; it frees up as dials age past 24 hours. "
                    "Only the owner can raise it, in the setting.",
                )
            )
        return refusals

    def _refuse_redial(self, number: PhoneNumber, usage: UsageFacts, now: datetime) -> list[Refusal]:
        """The cooldown since the last dial to this number, and the hold on an unreconciled outcome."""
        refusals = []
        cooldown = timedelta(minutes=self.redial_cooldown_minutes)
        if usage.in_flight:
            # Whatever the cooldown, even none: two dials to one person at once are never what anyone meant.
            refusals.append(
                _refusal(
                    "cooldown",
                    f"{number.e164} is being dialed right now by another dispatch",
                    "The same number is never dialed twice at once. Wait for that call (list_calls shows it).",
                )
            )
        elif usage.last_dial_at is not None and now - usage.last_dial_at < cooldown:
            ago = int((now - usage.last_dial_at).total_seconds() // 60)
            again = usage.last_dial_at + cooldown
            refusals.append(
                _refusal(
                    "cooldown",
                    f"{number.e164} was dialed {ago} minutes ago; "
                    f"the cooldown is {self.redial_cooldown_minutes} minutes",
                    f"The same number is not dialed again until {again:%Y-%m-%d %H:%M} UTC. "
                    "Only the owner can shorten the cooldown, in the setting.",
                )
            )
        if usage.unknown_outcome_at is not None and now - usage.unknown_outcome_at < cooldown:
            refusals.append(
                _refusal(
                    "unknown_outcome_hold",
                    f"the outcome of the call to {number.e164} at {usage.unknown_outcome_at:%Y-%m-%d %H:%M} UTC "
                    "is unknown",
                    "It may have been placed, and it was not retried. This number is held until that outcome is "
                    "reconciled (look for the call with list_calls) or the cooldown ends.",
                )
            )
        return refusals


def bad_country_codes(codes: Iterable[str]) -> str | None:
    """What is wrong with these country codes (each must be an upper-case ISO 3166 alpha-2 code), or None."""
    bad = sorted(c for c in codes if len(c) != 2 or not c.isascii() or not c.isalpha() or not c.isupper())
    return f"not upper-case ISO 3166 alpha-2 codes: {', '.join(bad)}" if bad else None


def bad_number_types(types: Iterable[str]) -> str | None:
    """What is wrong with these number types (each must be a phonenumbers PhoneNumberType name), or None."""
    others = set(types) - DEFAULT_ALLOWED_NUMBER_TYPES
    if not others:
        return None  # the defaults are PhoneNumberType names (tests/server/test_policy.py): phonenumbers stays unloaded
    known = number_type_names()
    bad = sorted(others - known)
    return f"unknown number types {', '.join(bad)}; known: {', '.join(sorted(known))}" if bad else None


def _refuse_invalid(exc: InvalidPhoneNumberError) -> Refusal:
    """The validity refusal, or the emergency one for emergency and short service numbers."""
    if exc.short_number is not None:
        return _refusal(
            "emergency",
            exc.short_number.describe(),
            "Emergency and short service numbers are never called, whatever the settings; "
            "a person who needs emergency services must dial them directly.",
        )
    return _refusal("validity", f"'{one_line(exc.raw, limit=40)}' is not a dialable number", str(exc))


def _refuse_agent_and_balance(agent: AgentFacts, balance: float) -> list[Refusal]:
    """The agent must exist and be deployed; the balance must meet the vendor's minimum."""
    refusals = []
    if not agent.exists:
        refusals.append(
            _refusal(
                "agent",
                f"agent {agent.agent_id!r} does not exist in this account",
                "Use list_agents to find a deployed agent's id.",
            )
        )
    elif (agent.status or "").strip().lower() != DEPLOYED_STATUS:
        refusals.append(
            _refusal(
                "agent",
                f"agent {agent.agent_id!r} is {agent.status or 'of unknown status'}, not {DEPLOYED_STATUS}",
                "Only a deployed agent can place calls: deploy it in the OutboundCalls dashboard, "
                "or use list_agents with status=deployed to pick another.",
            )
        )
    if balance < MINIMUM_BALANCE_CREDITS:
        refusals.append(
            _refusal(
                "balance",
                f"the balance is {balance:g} credits, under the {MINIMUM_BALANCE_CREDITS:g}-credit minimum",
                "The vendor refuses calls below this balance; the owner can top up in the OutboundCalls dashboard.",
            )
        )
    return refusals


def _refusal(rule: RuleName, value: str, message: str) -> Refusal:
    """A refusal carrying the setting its rule answers to."""
    return Refusal(rule=rule, value=value, setting=RULE_SETTINGS[rule], message=message)
