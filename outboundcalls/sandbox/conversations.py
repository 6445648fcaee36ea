"""Plausible transcripts, summaries, sentiment and extracted data for simulated calls."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["PURPOSES", "Conversation", "converse", "long_survey"]

_DAYS: Final = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")
_TIMES: Final = ("9:30 am", "11:00 am", "1:15 pm", "3:45 pm", "4:30 pm")

# Each purpose: the company the agent speaks for, then dialogues as (role, line) pairs for a
# willing contact and for a reluctant one, so that sentiment and extracted data vary plausibly.
PURPOSES: Final[dict[str, dict[str, Any]]] = {
    "appointment_reminder": {
        "company": "Brightside Dental",
        "positive": [
            (
                "agent",
                "Hi {name}, this is {agent} calling from {company}. "
                "I'm calling about your appointment on {day} at {time}.",
            ),
            ("user", "Oh hi, yes, I remember."),
            ("agent", "Great. Can you confirm you'll be able to make it?"),
            ("user", "Yes, I'll be there."),
            ("agent", "Perfect. Please arrive ten minutes early and bring your insurance card."),
            ("user", "Will do, thanks for the reminder."),
            ("agent", "You're welcome. Have a lovely day!"),
        ],
        "negative": [
            ("agent", "Hi {name}, this is {agent} from {company}, calling about your appointment on {day} at {time}."),
            ("user", "Ah, I actually can't make that one."),
            ("agent", "No problem. Would you like me to note that you'd like to reschedule?"),
            ("user", "Yes please, sometime the week after."),
            ("agent", "Done. The front desk will call you back with a new time."),
            ("user", "Okay, thanks."),
        ],
    },
    "lead_qualification": {
        "company": "Northwind Solar",
        "positive": [
            (
                "agent",
                "Hello {name}, this is {agent} with {company}. "
                "You asked about solar panels on our website. Is now a good time?",
            ),
            ("user", "Sure, I have a few minutes."),
            ("agent", "Do you own your home, and roughly how much is your monthly electricity bill?"),
            ("user", "I own it. The bill is around 180 dollars a month."),
            ("agent", "Thanks. Would you like a free assessment with one of our engineers?"),
            ("user", "Yes, that sounds good. {day} afternoon works."),
            ("agent", "Wonderful, I've booked you for {day} at {time}. You'll get a confirmation by text."),
        ],
        "negative": [
            ("agent", "Hello {name}, this is {agent} with {company}, following up on your enquiry about solar."),
            ("user", "I'm renting, so I don't think I can install anything."),
            ("agent", "Understood. Would you like information on community solar plans instead?"),
            ("user", "Not right now, thanks."),
            ("agent", "No problem at all. Thanks for your time, {name}."),
        ],
    },
    "feedback_survey": {
        "company": "Harbor Internet",
        "positive": [
            (
                "agent",
                "Hi {name}, I'm {agent}, calling from {company} "
                "for a one-minute survey about your recent installation.",
            ),
            ("user", "Okay, go ahead."),
            ("agent", "On a scale of one to five, how satisfied were you with the installation?"),
            ("user", "Five. The technician was quick and tidy."),
            ("agent", "Great to hear. Is there anything we could improve?"),
            ("user", "Maybe send the arrival window by text."),
            ("agent", "Thank you, I'll pass that on. Have a good day."),
        ],
        "negative": [
            ("agent", "Hi {name}, I'm {agent} from {company}. Do you have a minute for a short survey?"),
            ("user", "Honestly the service has been dropping every evening."),
            ("agent", "I'm sorry to hear that. On a scale of one to five, how would you rate it?"),
            ("user", "Two."),
            ("agent", "Thank you. I'll open a ticket so a technician contacts you."),
            ("user", "Fine."),
        ],
    },
    "payment_reminder": {
        "company": "Maple Utilities",
        "positive": [
            (
                "agent",
                "Hello {name}, this is {agent} from {company} with a courtesy reminder that your bill is due on {day}.",
            ),
            ("user", "Thanks, I'll pay it tomorrow."),
            ("agent", "Great. Would you like the payment link by text?"),
            ("user", "Yes please."),
            ("agent", "Sent. Thank you and goodbye."),
        ],
        "negative": [
            ("agent", "Hello {name}, this is {agent} from {company}. Your bill is due on {day}."),
            ("user", "I can't pay it all this month."),
            ("agent", "I understand. I can ask our team to call you about a payment plan."),
            ("user", "Okay, do that."),
        ],
    },
}

_SUMMARIES: Final = {
    ("appointment_reminder", "positive"): "{name} confirmed the appointment on {day} at {time}.",
    ("appointment_reminder", "negative"): "{name} cannot attend on {day} and asked to reschedule the following week.",
    (
        "lead_qualification",
        "positive",
    ): "{name} owns the home, spends about $180/month on power, and booked an assessment for {day} at {time}.",
    ("lead_qualification", "negative"): "{name} rents and is not a fit for rooftop solar; declined other offers.",
    ("feedback_survey", "positive"): "{name} rated the installation 5/5 and suggested texting the arrival window.",
    ("feedback_survey", "negative"): "{name} rated the service 2/5 because of evening outages; a ticket was opened.",
    ("payment_reminder", "positive"): "{name} will pay tomorrow and asked for the payment link by text.",
    ("payment_reminder", "negative"): "{name} cannot pay in full and wants a call about a payment plan.",
}

_UNANSWERED_SUMMARIES: Final = {
    "no_answer": "No answer after ringing; no voicemail box picked up.",
    "busy": "The line was busy.",
    "failed": "The call failed before connecting (carrier rejected it).",
    "canceled": "The call was canceled before it connected.",
}

_SURVEY: Final = (
    ("How often do you use the service each week?", "Most evenings, and weekends."),
    ("Which feature do you use the most?", "Probably the streaming bundle."),
    ("How would you rate the speed at peak times?", "Three out of five, it slows down around eight."),
    ("Have you contacted support in the last three months?", "Once, about a billing question."),
    ("Was the issue resolved on the first call?", "Yes, they fixed it quickly."),
    ("How likely are you to recommend us to a friend?", "Maybe a seven."),
    ("What would make it a ten?", "A lower price after the first year."),
    ("Would you be interested in the fibre upgrade?", "Possibly, if the installation is free."),
)


@dataclass(frozen=True, slots=True)
class Conversation:
    """What a finished call produced besides its status."""

    transcript: list[dict[str, Any]] = field(default_factory=list)
    summary: str | None = None
    sentiment: str | None = None
    extracted_data: dict[str, Any] | None = None


def _timed(lines: list[tuple[str, str]], duration: float) -> list[dict[str, Any]]:
    """Turns spread evenly across the call, each stamped with when it was said."""
    count = max(len(lines), 1)
    return [
        {"role": role, "message": message, "timeInCallSecs": round(duration * index / count, 1)}
        for index, (role, message) in enumerate(lines)
    ]


def _extracted(purpose: str, positive: bool, day: str, time: str) -> dict[str, Any]:
    """Structured fields an agent of this purpose would extract."""
    if purpose == "appointment_reminder":
        return {"appointmentConfirmed": positive, "rescheduleRequested": not positive, "appointment": f"{day} {time}"}
    if purpose == "lead_qualification":
        return {
            "qualified": positive,
            "homeowner": positive,
            "monthlyBillUsd": 180 if positive else None,
            "assessmentBooked": f"{day} {time}" if positive else None,
        }
    if purpose == "feedback_survey":
        return {"satisfactionScore": 5 if positive else 2, "ticketOpened": not positive}
    return {"promisedToPay": positive, "paymentPlanRequested": not positive}


def converse(
    purpose: str,
    *,
    agent: str,
    contact_name: str | None,
    outcome: str,
    duration_seconds: float,
    rng: random.Random,
) -> Conversation:
    """The conversation of a call that ended with `outcome`, for an agent of `purpose`."""
    script = PURPOSES[purpose]
    name = (contact_name or "").split(" ")[0] or "there"
    day, time = rng.choice(_DAYS), rng.choice(_TIMES)
    values = {"name": name, "agent": agent, "company": script["company"], "day": day, "time": time}
    if outcome == "voicemail":
        line = ("agent", "Hi {name}, this is {agent} from {company}. Please call us back when you can. Thank you!")
        return Conversation(
            transcript=_timed([(line[0], line[1].format(**values))], duration_seconds),
            summary=f"Reached voicemail; {agent} left a call-back message.",
            sentiment="neutral",
            extracted_data={"voicemailLeft": True},
        )
    if outcome != "completed":
        return Conversation(summary=_UNANSWERED_SUMMARIES.get(outcome))
    positive = rng.random() < 0.7
    mood = "positive" if positive else "negative"
    lines = [(role, text.format(**values)) for role, text in script[mood]]
    summary_name = contact_name or "The contact"
    summary = _SUMMARIES[(purpose, mood)].format(**{**values, "name": summary_name})
    sentiment = "positive" if positive else rng.choice(("neutral", "negative"))
    return Conversation(_timed(lines, duration_seconds), summary, sentiment, _extracted(purpose, positive, day, time))


def long_survey(*, agent: str, contact_name: str, duration_seconds: float, turns: int = 200) -> Conversation:
    """A long, patient survey call of exactly `turns` turns (for size and paging benchmarks)."""
    name = contact_name.split(" ")[0]
    lines: list[tuple[str, str]] = [
        ("agent", f"Hi {name}, this is {agent} from Harbor Internet. Do you have time for our detailed annual survey?"),
        ("user", "Yes, I've set aside some time for it."),
    ]
    round_number = 0
    while len(lines) < turns:
        question, answer = _SURVEY[round_number % len(_SURVEY)]
        part = round_number // len(_SURVEY) + 1
        lines.append(("agent", f"Part {part}, question {round_number % len(_SURVEY) + 1}: {question}"))
        lines.append(("user", answer))
        round_number += 1
    lines = [*lines[: turns - 1], ("agent", f"That's everything, {name}. Thank you so much for your time!")]
    return Conversation(
        transcript=_timed(lines, duration_seconds),
        summary=(
            f"{contact_name} completed the full annual survey ({round_number} answers); likely to recommend (7/10)."
        ),
        sentiment="positive",
        extracted_data={"surveyCompleted": True, "npsScore": 7, "answers": round_number, "interestedInFibre": True},
    )
