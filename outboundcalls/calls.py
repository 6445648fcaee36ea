"""Calls: summaries, full detail with transcript, and the body that dispatches one."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field, field_validator

from outboundcalls.wire import RequestModel, WireModel

__all__ = [
    "TERMINAL_STATUSES",
    "CallDetail",
    "CallStatus",
    "CallSummary",
    "NewCall",
    "TranscriptTurn",
    "is_terminal_status",
]


class CallStatus(StrEnum):
    """The call statuses the API is known to send; others are kept as plain strings."""

    QUEUED = "queued"
    RINGING = "ringing"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    VOICEMAIL = "voicemail"
    CANCELED = "canceled"


TERMINAL_STATUSES: frozenset[str] = frozenset({"completed", "failed", "no_answer", "busy", "voicemail", "canceled"})


def is_terminal_status(status: str) -> bool:
    """Whether a call in this status has ended; unknown statuses are not terminal."""
    return status in TERMINAL_STATUSES


class TranscriptTurn(WireModel):
    """One turn of a call transcript."""

    role: str = "unknown"
    message: str = ""
    time_in_call_secs: float | None = None

    @field_validator("role", "message", mode="before")
    @classmethod
    def _null_is_default(cls, value: Any) -> Any:
        """ElevenLabs-style transcripts carry null messages for tool turns."""
        return "" if value is None else value


class CallSummary(WireModel):
    """A call as listed, or as returned when it is dispatched."""

    id: str
    agent_id: str | None = None
    campaign_id: str | None = None
    contact_id: str | None = None
    phone_number_id: str | None = None
    to_number: str | None = None
    from_number: str | None = None
    status: str
    created_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_seconds: float | None = None
    credits_charged: float | None = None

    @property
    def is_terminal(self) -> bool:
        """Whether this call has ended."""
        return is_terminal_status(self.status)


class CallDetail(CallSummary):
    """Full call detail: transcript, summary, recording, sentiment, extracted data."""

    transcript: list[TranscriptTurn] = Field(default_factory=list)
    summary: str | None = None
    recording_url: str | None = None
    sentiment: str | None = None
    extracted_data: dict[str, Any] | None = None

    @field_validator("transcript", mode="before")
    @classmethod
    def _tolerant_transcript(cls, value: Any) -> Any:
        """A plain-string transcript becomes one turn by an unknown speaker; null becomes none."""
        if value is None:
            return []
        if isinstance(value, str):
            return [{"role": "unknown", "message": value}] if value.strip() else []
        return value


class NewCall(RequestModel):
    """The body of POST /calls; optional fields not given are not sent."""

    agent_id: str = Field(min_length=1)
    to_number: str = Field(min_length=1)
    phone_number_id: str | None = None
    contact_id: str | None = None
