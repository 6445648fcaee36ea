"""The sandbox's stored resources and their JSON (camelCase) shapes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from .clock import format_timestamp
from .lifecycle import CallPlan

__all__ = [
    "FOREIGN",
    "OWNER",
    "AccountRecord",
    "AgentRecord",
    "CallRecord",
    "CampaignRecord",
    "ContactListRecord",
    "ContactRecord",
    "PhoneNumberRecord",
]

# Resources belong to the sandbox's own account or to another one, whose ids must answer 404.
OWNER: Final = "self"
FOREIGN: Final = "foreign"


def _stamp(moment: datetime | None) -> str | None:
    """A timestamp for the wire, or None."""
    return None if moment is None else format_timestamp(moment)


@dataclass(slots=True)
class AccountRecord:
    """The account the sandbox key belongs to."""

    user_id: str
    email: str
    name: str
    credits: float
    plan: str
    subscription_status: str
    period_end: datetime

    def to_json(self) -> dict[str, Any]:
        """The GET /me body."""
        return {
            "user": {"id": self.user_id, "email": self.email, "name": self.name},
            "credits": round(self.credits, 2),
            "subscription": {
                "plan": self.plan,
                "status": self.subscription_status,
                "currentPeriodEnd": format_timestamp(self.period_end),
            },
        }


@dataclass(slots=True)
class AgentRecord:
    """A voice agent; only deployed ones can dispatch calls."""

    id: str
    owner: str
    name: str
    status: str
    eleven_labs_agent_id: str | None
    language: str
    created_at: datetime
    purpose: str

    @property
    def first_name(self) -> str:
        """The name the agent introduces itself with ("Ava" for "Ava — reminders")."""
        return self.name.split(" ")[0]

    def to_json(self) -> dict[str, Any]:
        """The agent as the API shows it."""
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "elevenLabsAgentId": self.eleven_labs_agent_id,
            "language": self.language,
            "createdAt": format_timestamp(self.created_at),
        }


@dataclass(slots=True)
class PhoneNumberRecord:
    """A caller id the account can dial from; the first active one is the default."""

    id: str
    owner: str
    number: str
    active: bool


@dataclass(slots=True)
class ContactListRecord:
    """A named list that contacts belong to."""

    id: str
    owner: str
    name: str


@dataclass(slots=True)
class ContactRecord:
    """A person who can be called."""

    id: str
    owner: str
    contact_list_id: str
    phone: str
    name: str | None
    email: str | None
    company: str | None
    tags: list[str]
    custom_fields: dict[str, Any]
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        """The contact as the API shows it."""
        return {
            "id": self.id,
            "contactListId": self.contact_list_id,
            "phone": self.phone,
            "name": self.name,
            "email": self.email,
            "company": self.company,
            "tags": list(self.tags),
            "customFields": dict(self.custom_fields),
            "createdAt": format_timestamp(self.created_at),
        }


@dataclass(slots=True)
class CampaignRecord:
    """A batch of calls to a contact list; its progress is computed from its calls."""

    id: str
    owner: str
    name: str
    status: str
    agent_id: str
    contact_list_id: str
    calls_planned: int


@dataclass(slots=True)
class CallRecord:
    """One call, seeded history or dispatched live (then `plan` drives its lifecycle)."""

    id: str
    owner: str
    agent_id: str
    campaign_id: str | None
    contact_id: str | None
    phone_number_id: str | None
    to_number: str
    from_number: str | None
    region: str
    status: str
    created_at: datetime
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_seconds: float | None = None
    credits_charged: float | None = None
    transcript: list[dict[str, Any]] = field(default_factory=list)
    summary: str | None = None
    recording_url: str | None = None
    sentiment: str | None = None
    extracted_data: dict[str, Any] | None = None
    plan: CallPlan | None = None
    sequence: int = 0

    def summary_json(self) -> dict[str, Any]:
        """The call as lists and POST /calls show it."""
        return {
            "id": self.id,
            "agentId": self.agent_id,
            "campaignId": self.campaign_id,
            "contactId": self.contact_id,
            "phoneNumberId": self.phone_number_id,
            "toNumber": self.to_number,
            "fromNumber": self.from_number,
            "status": self.status,
            "createdAt": format_timestamp(self.created_at),
            "startedAt": _stamp(self.started_at),
            "endedAt": _stamp(self.ended_at),
            "durationSeconds": self.duration_seconds,
            "creditsCharged": self.credits_charged,
        }

    def detail_json(self) -> dict[str, Any]:
        """The full call, as GET /calls/{id} and the post-call webhook show it."""
        return {
            **self.summary_json(),
            "transcript": [dict(turn) for turn in self.transcript],
            "summary": self.summary,
            "recordingUrl": self.recording_url,
            "sentiment": self.sentiment,
            "extractedData": None if self.extracted_data is None else dict(self.extracted_data),
        }
