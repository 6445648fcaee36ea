"""What a person and an assistant read about a dispatch: the preview, the question, the refusals."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from server.ledger import DispatchArgs as BoundArgs
from server.preflight import AgentFacts, PreflightResult
from tools.dispatch_models import DispatchArgs, Prepared, Preview

__all__ = [
    "DIAL_SUBJECT",
    "RecentQuestions",
    "NOT_PLACED",
    "TOKEN_EXPIRED",
    "TOKEN_UNKNOWN",
    "describe_refusals",
    "local_time_text",
    "other_arguments",
    "outcome_unknown",
    "preview_view",
    "question_text",
]

SANDBOX_PREFIX = "[SANDBOX: simulated call, no real phone rings, no real credits] "


def local_time_text(preflight: PreflightResult) -> str | None:
    """The destination's local time in each of its zones, and which zone rule was used."""
    if not preflight.local_times:
        return None
    parts = [f"{t.local_time:%a %H:%M} {t.zone}" for t in preflight.local_times]
    text = ", ".join(parts)
    if preflight.zone_note:
        text += f" ({preflight.zone_note})"
    return text


def preview_view(bound: BoundArgs, preflight: PreflightResult, agent: AgentFacts, balance: float, *, sandbox: bool) -> Preview:
    """The structured preview returned to the assistant."""
    number = preflight.number
    return Preview(
        to=bound.to_number,
        country=preflight.region,
        number_type=number.number_type if number else None,
        agent_id=bound.agent_id,
        agent_name=agent.name,
        est_credits_per_min=preflight.estimated_credits_per_minute,
        balance=balance,
        local_time=local_time_text(preflight),
        sandbox=sandbox,
    )


def question_text(view: Preview, preflight: PreflightResult, *, sandbox: bool) -> str:
    """The confirmation question a person answers; every fact they need, in one message."""
    rate = (
        f"about {view.est_credits_per_min:g} credits per minute (an estimate, not a quote; charged on completion)"
        if view.est_credits_per_min is not None
        else "an unknown rate (no estimate for this country)"
    )
    agent = f'"{view.agent_name}"' if view.agent_name else view.agent_id
    text = (
        f"Place a phone call to {view.to} ({view.country or 'unknown country'}, {view.number_type or 'unknown type'}) "
        f"through agent {agent}? Local time there: {view.local_time or 'unknown'}. Cost: {rate}. "
        f"Balance: {view.balance:g} credits."
    )
    return (SANDBOX_PREFIX + text) if sandbox else text


NOT_PLACED = " The call was not placed. Once that is resolved, dispatch it again: that needs a new confirmation."
# A 404 to POST /calls names none of the ids it was given, so all of them are suspects.
DIAL_SUBJECT = "The agent, the caller id (phone_number_id) or the contact"
TOKEN_UNKNOWN = (
    "confirmation_token is not one this server issued (or it was altered). Nothing was dialed. "
    "Call dispatch_call without a token to get a new preview."
)
TOKEN_EXPIRED = (
    "This confirmation_token has expired (tokens last 5 minutes). Nothing was dialed. "
    "Call dispatch_call without a token to preview again."
)
_AFTER = {
    "preview": "",
    "token": "\nThe confirmation token was not used and stays valid until it expires.",
    "answer": "\nThe person's yes was not acted on: the rules are checked again right before dialing.",
}


def describe_refusals(preflight: PreflightResult, *, stage: Literal["preview", "token", "answer"] = "preview") -> str:
    """Every refusing rule with its value and setting, and what became of the token or the answer."""
    return preflight.refusal_text() + _AFTER[stage]


def other_arguments(bound: BoundArgs) -> str:
    """Why a token presented with other arguments confirms nothing."""
    return (
        "This confirmation_token was issued for other arguments "
        f"(agent {bound.agent_id}, to {bound.to_number}); it confirms nothing here and stays "
        "valid for its own arguments. Nothing was dialed."
    )


def outcome_unknown(to_number: str) -> str:
    """What the assistant is told when a dial's outcome is unknown and the call was not found."""
    return (
        f"The request to call {to_number} left, but no usable answer came back, and no matching call was found. "
        "The call may or may not have been placed. Nothing was retried; the number is held until this is "
        "reconciled or the redial cooldown ends. Check list_calls in a minute."
    )


class RecentQuestions:
    """Questions already shown, by arguments, so a repeated preview is worded exactly as before."""

    # A person answers one question at a time; a thousand open ones is far beyond real use, and
    # the cap keeps memory flat however many previews a busy server makes.
    MAX_REMEMBERED = 1000

    def __init__(self, *, ttl: timedelta) -> None:
        self.ttl = ttl
        self._shown: dict[DispatchArgs, tuple[datetime, Prepared]] = {}

    def get(self, args: DispatchArgs, now: datetime) -> Prepared | None:
        """The question shown for these arguments within the TTL, if any."""
        self._forget(now)
        entry = self._shown.get(args)
        return entry[1] if entry is not None else None

    def put(self, args: DispatchArgs, prepared: Prepared, now: datetime) -> None:
        """Remember a question as shown now: its wording, not the service's record of that preview."""
        # A repeated preview gets a fresh pre-flight record anyway; keeping the old one (the parsed
        # number, local times, agent facts) would more than double what each remembered question holds.
        kept = prepared if prepared.handle is None else prepared.model_copy(update={"handle": None})
        self._shown.pop(args, None)
        self._shown[args] = (now, kept)
        self._forget(now)

    def _forget(self, now: datetime) -> None:
        # Insertion order is age order (put re-inserts), so pruning walks from the oldest.
        while self._shown:
            oldest = next(iter(self._shown))
            if now - self._shown[oldest][0] < self.ttl and len(self._shown) <= self.MAX_REMEMBERED:
                break
            del self._shown[oldest]
