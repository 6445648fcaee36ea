"""What a person and an assistant read about a dispatch: the preview, the question, the refusals."""

from __future__ import annotations

from typing import Final, Literal

from outboundcalls.display import one_line
from outboundcalls_mcp.server.ledger import BoundArgs, ConsentRecord, consent_reference
from outboundcalls_mcp.server.preflight import AgentFacts, PreflightResult
from outboundcalls_mcp.tools.contracts import Answer, Preview

__all__ = [
    "CONSENT_GONE",
    "DIAL_SUBJECT",
    "NOT_A_YES",
    "NOT_PLACED",
    "QUESTION_EXPIRED",
    "SANDBOX_PREFIX",
    "TOKEN_EXPIRED",
    "TOKEN_UNKNOWN",
    "describe_refusals",
    "local_time_text",
    "other_arguments",
    "outcome_unknown",
    "preview_view",
    "question_text",
    "with_reference",
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


def preview_view(
    bound: BoundArgs, preflight: PreflightResult, agent: AgentFacts, balance: float, *, sandbox: bool
) -> Preview:
    """The structured preview returned to the assistant."""
    number = preflight.number
    return Preview(
        to=bound.to_number,
        country=preflight.region,
        number_type=number.number_type if number else None,
        agent_id=bound.agent_id,
        # A name from the API is shown to the person: one visible line, whatever it holds.
        agent_name=None if agent.name is None else one_line(agent.name),
        est_credits_per_min=preflight.estimated_credits_per_minute,
        balance=balance,
        local_time=local_time_text(preflight),
        sandbox=sandbox,
    )


def with_reference(question: str, consent_id: str) -> str:
    """The question with its consent's reference: no two questions are worded alike, so an answer names its question."""
    return f"{question} (Confirmation {consent_reference(consent_id)}.)"


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
QUESTION_EXPIRED = (
    "The confirmation question expired before the answer arrived (questions last 5 minutes). Nothing was dialed. "
    "Dispatch again to ask anew."
)
OUTCOME_NOT_RECORDED = (
    "The request to place the call was sent (its outcome: {kind}), but the dispatch ledger's database could not "
    "record it. The number stays held, and the outcome is reconciled with the API once the database is back; do not "
    "dispatch it again: check list_calls first."
)
CONSENT_GONE = "The confirmation this answers is not on record (it expired or was never asked). Nothing was dialed."
NOT_A_YES: Final[dict[Answer, str]] = {
    "accept": "The person said yes.",
    "accept_false": "The person did not tick confirm. Nothing was dialed.",
    "decline": "The person declined. Nothing was dialed.",
    "cancel": "The person cancelled. Nothing was dialed.",
    "error": "The confirmation request failed, and no answer is no consent. Nothing was dialed.",
}
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


def other_arguments(consent: ConsentRecord) -> str:
    """Why a token presented with other arguments confirms nothing."""
    if consent.kind == "batch":
        return (
            "This confirmation_token was issued for another agent, caller id or list of numbers; it confirms nothing "
            "here. Nothing was dialed. Use exactly the previewed agent and numbers, in the same order."
        )
    to = consent.agreed[0].to_number if consent.agreed else "?"
    return (
        "This confirmation_token was issued for other arguments "
        f"(agent {consent.agent_id}, to {to}); it confirms nothing here and stays "
        "valid for its own arguments. Nothing was dialed."
    )


def outcome_unknown(to_number: str) -> str:
    """What the assistant is told when a dial's outcome is unknown and the call was not found."""
    return (
        f"The request to call {to_number} left, but no usable answer came back, and no matching call was found. "
        "The call may or may not have been placed. Nothing was retried; the number is held until this is "
        "reconciled or the redial cooldown ends. Check list_calls in a minute."
    )
