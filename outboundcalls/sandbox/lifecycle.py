"""How a dispatched call moves through its statuses, and how its outcome is chosen."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Final, Literal, get_args

__all__ = [
    "CALL_STATUSES",
    "LIVE_OUTCOMES",
    "QUEUED_SECONDS",
    "TERMINAL_STATUSES",
    "CallPlan",
    "CallScript",
    "LiveOutcome",
    "plan_call",
]

LiveOutcome = Literal["completed", "no_answer", "busy", "voicemail", "failed"]
LIVE_OUTCOMES: Final = get_args(LiveOutcome)
TERMINAL_STATUSES: Final = frozenset({"completed", "failed", "no_answer", "busy", "voicemail", "canceled"})
CALL_STATUSES: Final = ("queued", "ringing", "in_progress", *sorted(TERMINAL_STATUSES))

QUEUED_SECONDS: Final = 2.0
# Live calls are short on purpose: a person trying `--sandbox` sees a call finish within ~20 s.
_RING_SECONDS: Final = {
    "completed": (3, 5),
    "voicemail": (4, 6),
    "no_answer": (12, 16),
    "busy": (1, 2),
    "failed": (1, 1),
}
_TALK_SECONDS: Final = {"completed": (8, 13), "voicemail": (5, 8)}
_OUTCOME_WEIGHTS: Final[dict[LiveOutcome, int]] = {
    "completed": 60,
    "voicemail": 12,
    "no_answer": 14,
    "busy": 7,
    "failed": 7,
}


@dataclass(frozen=True, slots=True)
class CallScript:
    """What a test wants the next dispatched call to do."""

    outcome: LiveOutcome = "completed"
    duration_seconds: float | None = None
    ring_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.outcome not in LIVE_OUTCOMES:
            raise ValueError(f"outcome must be one of {LIVE_OUTCOMES}, not {self.outcome!r}")
        if self.duration_seconds is not None and self.duration_seconds < 0:
            raise ValueError("duration_seconds cannot be negative")
        if self.ring_seconds is not None and self.ring_seconds < 0:
            raise ValueError("ring_seconds cannot be negative")


@dataclass(frozen=True, slots=True)
class CallPlan:
    """A call's timeline in seconds after it was created, and how it ends."""

    outcome: LiveOutcome
    ring_seconds: float
    duration_seconds: float

    @property
    def answered(self) -> bool:
        """Whether the line connects (someone or a voicemail box picks up)."""
        return self.outcome in ("completed", "voicemail")

    @property
    def answer_after(self) -> float:
        """Seconds after creation when the line connects (or stops ringing)."""
        return QUEUED_SECONDS + self.ring_seconds

    @property
    def end_after(self) -> float:
        """Seconds after creation when the call reaches its terminal status."""
        return self.answer_after + (self.duration_seconds if self.answered else 0.0)

    def status_at(self, elapsed: float) -> str:
        """The status `elapsed` seconds after creation."""
        if elapsed >= self.end_after:
            return self.outcome
        if elapsed < QUEUED_SECONDS:
            return "queued"
        if elapsed < self.answer_after:
            return "ringing"
        return "in_progress"


def plan_call(seed: int, counter: int, script: CallScript | None = None) -> CallPlan:
    """The plan for the `counter`-th live call: scripted if asked, else drawn from the seed."""
    rng = random.Random(f"call-plan:{seed}:{counter}")
    drawn = rng.choices(list(_OUTCOME_WEIGHTS), weights=list(_OUTCOME_WEIGHTS.values()))[0]
    outcome: LiveOutcome = script.outcome if script is not None else drawn
    low, high = _RING_SECONDS[outcome]
    ring = float(rng.randint(low, high))
    talk_low, talk_high = _TALK_SECONDS.get(outcome, (0, 0))
    talk = float(rng.randint(talk_low, talk_high))
    if script is not None and script.ring_seconds is not None:
        ring = float(script.ring_seconds)
    if script is not None and script.duration_seconds is not None and outcome in ("completed", "voicemail"):
        talk = float(script.duration_seconds)
    return CallPlan(outcome=outcome, ring_seconds=ring, duration_seconds=talk)
