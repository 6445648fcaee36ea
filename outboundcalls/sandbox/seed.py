"""The sandbox's starting data, built deterministically from a seed and the clock's start time."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Final

from ..pricing import credits_for_call
from .conversations import converse, long_survey
from .records import (
    FOREIGN,
    OWNER,
    AccountRecord,
    AgentRecord,
    CallRecord,
    CampaignRecord,
    ContactListRecord,
    ContactRecord,
    PhoneNumberRecord,
)
from .state import RECORDING_BASE_URL, SandboxState, destination_region

__all__ = ["HISTORY_CALLS", "LONG_TRANSCRIPT_TURNS", "SeedIds", "build_state"]

HISTORY_CALLS: Final = 240
LONG_TRANSCRIPT_TURNS: Final = 200
_CONTACTS: Final = 40
_CAMPAIGN_CALLS: Final = 30

_AGENTS: Final = (
    ("Ava — appointment reminders", "deployed", "appointment_reminder"),
    ("Leo — solar lead qualification", "deployed", "lead_qualification"),
    ("Mia — customer feedback survey", "deployed", "feedback_survey"),
    ("Noah — renewal outreach", "draft", "lead_qualification"),
    ("Zoe — payment reminders", "paused", "payment_reminder"),
)
_FIRST: Final = (
    "Jane",
    "Omar",
    "Priya",
    "Lucas",
    "Mei",
    "Diego",
    "Aisha",
    "Tom",
    "Sara",
    "Kenji",
    "Nora",
    "Ibrahim",
    "Elena",
    "Marcus",
    "Chloe",
    "Ravi",
    "Hannah",
    "Mateo",
    "Grace",
    "Yusuf",
)
_LAST: Final = ("Doe", "Haddad", "Patel", "Martin", "Chen", "Lopez", "Bello", "Walsh", "Nilsson", "Sato")
_COMPANIES: Final = ("Acme Corp", "Globex", None, "Initech", None, "Umbrella Health", "Stark Logistics")
# Fictional or documentation-range numbers in several countries, so charges vary by region.
_FOREIGN_NUMBERS: Final = (
    "+442079460{:03d}",
    "+34911234{:03d}",
    "+33612345{:03d}",
    "+4915123456{:03d}",
    "+61491570{:03d}",
    "+16135550{:03d}",
    "+919876543{:03d}",
)
_AREA_CODES: Final = ("415", "212", "312", "206", "512", "617", "303")
_HISTORY_WEIGHTS: Final = {"completed": 55, "no_answer": 14, "voicemail": 12, "busy": 7, "failed": 7, "canceled": 5}


@dataclass(frozen=True, slots=True)
class SeedIds:
    """Ids of the seeded resources that tests and demos refer to."""

    user_id: str
    deployed_agent_id: str
    deployed_agent_ids: tuple[str, ...]
    draft_agent_id: str
    paused_agent_id: str
    foreign_agent_id: str
    phone_number_id: str
    inactive_phone_number_id: str
    contact_list_id: str
    contact_id: str
    contact_ids: tuple[str, ...]
    foreign_contact_list_id: str
    foreign_contact_id: str
    campaign_id: str
    foreign_campaign_id: str
    long_transcript_call_id: str
    completed_call_id: str
    foreign_call_id: str
    call_ids_by_status: MappingProxyType[str, str]


def _phone(rng: random.Random, index: int) -> str:
    """A fictional number: mostly US 555-01xx, every fifth one abroad."""
    if index % 5 == 4:
        return rng.choice(_FOREIGN_NUMBERS).format(index % 1000)
    return f"+1{rng.choice(_AREA_CODES)}55501{index % 100:02d}"


def _history_call(
    state: SandboxState,
    rng: random.Random,
    *,
    agent: AgentRecord,
    contact: ContactRecord | None,
    to_number: str,
    status: str,
    created_at: datetime,
    campaign_id: str | None,
    owner: str = OWNER,
) -> CallRecord:
    """A finished call from before the sandbox started, with its conversation and charge."""
    region = destination_region(to_number) or "US"
    answered = status in ("completed", "voicemail")
    ring = float(rng.randint(3, 25 if status == "no_answer" else 8))
    duration = float(rng.randint(45, 420) if status == "completed" else rng.randint(20, 40) if answered else 0)
    started = created_at + timedelta(seconds=2 + ring)
    call = CallRecord(
        id=state.new_id(),
        owner=owner,
        agent_id=agent.id,
        campaign_id=campaign_id,
        contact_id=None if contact is None else contact.id,
        phone_number_id=None,
        to_number=to_number,
        from_number=None,
        region=region,
        status=status,
        created_at=created_at,
        started_at=started if answered else None,
        ended_at=started + timedelta(seconds=duration) if status != "canceled" else created_at + timedelta(seconds=1),
        duration_seconds=duration,
        credits_charged=credits_for_call(region, duration),
        recording_url=None,
    )
    conversation = converse(
        agent.purpose,
        agent=agent.first_name,
        contact_name=None if contact is None else contact.name,
        outcome=status,
        duration_seconds=duration,
        rng=rng,
    )
    call.transcript, call.summary = conversation.transcript, conversation.summary
    call.sentiment, call.extracted_data = conversation.sentiment, conversation.extracted_data
    if answered:
        call.recording_url = f"{RECORDING_BASE_URL}/{call.id}.mp3"
    return call


def build_state(*, seed: int, now: datetime, credits: float) -> tuple[SandboxState, SeedIds]:
    """A fresh account with agents, numbers, contacts, a running campaign and a call history."""
    rng = random.Random(f"seed-data:{seed}")
    account = AccountRecord(
        user_id="",
        email="demo@sandbox.outboundcalls.test",
        name="Sandbox Demo",
        credits=credits,
        plan="growth",
        subscription_status="active",
        period_end=now + timedelta(days=18),
    )
    state = SandboxState(seed=seed, account=account)
    account.user_id = state.new_id()

    agents = []
    for index, (name, status, purpose) in enumerate(_AGENTS):
        agent = AgentRecord(
            id=state.new_id(),
            owner=OWNER,
            name=name,
            status=status,
            eleven_labs_agent_id=None if status == "draft" else f"agent_{state.new_id()[3:]}",
            language="en",
            created_at=now - timedelta(days=90 - 7 * index, hours=index),
            purpose=purpose,
        )
        state.agents[agent.id] = agent
        agents.append(agent)
    foreign_agent = AgentRecord(
        id=state.new_id(),
        owner=FOREIGN,
        name="Kai — debt collection",
        status="deployed",
        eleven_labs_agent_id=f"agent_{state.new_id()[3:]}",
        language="en",
        created_at=now - timedelta(days=40),
        purpose="payment_reminder",
    )
    state.agents[foreign_agent.id] = foreign_agent

    numbers = [
        PhoneNumberRecord(state.new_id(), OWNER, "+14155550100", True),
        PhoneNumberRecord(state.new_id(), OWNER, "+12125550100", False),
        PhoneNumberRecord(state.new_id(), OWNER, "+442079460100", True),
        PhoneNumberRecord(state.new_id(), FOREIGN, "+13125550100", True),
    ]
    state.phone_numbers.update((number.id, number) for number in numbers)

    contact_list = ContactListRecord(state.new_id(), OWNER, "Spring check-up patients")
    foreign_list = ContactListRecord(state.new_id(), FOREIGN, "Other account leads")
    state.contact_lists.update({contact_list.id: contact_list, foreign_list.id: foreign_list})
    contacts = []
    for index in range(_CONTACTS):
        first, last = _FIRST[index % len(_FIRST)], _LAST[(index * 3) % len(_LAST)]
        contact = ContactRecord(
            id=state.new_id(),
            owner=OWNER,
            contact_list_id=contact_list.id,
            phone=_phone(rng, index),
            name=f"{first} {last}",
            email=f"{first.lower()}.{last.lower()}@example.com" if index % 3 else None,
            company=_COMPANIES[index % len(_COMPANIES)],
            tags=["patient", "spring"] if index % 2 else ["patient"],
            custom_fields={"preferredTime": rng.choice(("morning", "afternoon", "evening"))},
            created_at=now - timedelta(days=30, minutes=index * 7),
        )
        state.contacts[contact.id] = contact
        contacts.append(contact)
    foreign_contact = ContactRecord(
        id=state.new_id(),
        owner=FOREIGN,
        contact_list_id=foreign_list.id,
        phone="+13125550142",
        name="Pat Other",
        email=None,
        company=None,
        tags=[],
        custom_fields={},
        created_at=now - timedelta(days=20),
    )
    state.contacts[foreign_contact.id] = foreign_contact

    campaign = CampaignRecord(
        state.new_id(),
        OWNER,
        "Spring check-up reminders",
        "running",
        agents[0].id,
        contact_list.id,
        calls_planned=_CONTACTS,
    )
    foreign_campaign = CampaignRecord(
        state.new_id(), FOREIGN, "Q2 collections", "completed", foreign_agent.id, foreign_list.id, calls_planned=1
    )
    state.campaigns.update({campaign.id: campaign, foreign_campaign.id: foreign_campaign})

    statuses = rng.choices(list(_HISTORY_WEIGHTS), weights=list(_HISTORY_WEIGHTS.values()), k=HISTORY_CALLS)
    # The newest calls show every terminal status once, then the long survey, so they are easy to find.
    statuses[1:8] = ["completed", "voicemail", "no_answer", "busy", "failed", "canceled", "completed"]
    history: list[CallRecord] = []
    callers = [agent for agent in agents if agent.status != "draft"]
    campaign_slots = {20 + 2 * offset: offset for offset in range(_CAMPAIGN_CALLS)}
    for index, status in enumerate(statuses):
        created_at = now - timedelta(minutes=45 + index * 125 + rng.randint(0, 40))
        if index in campaign_slots:
            callee: ContactRecord | None = contacts[campaign_slots[index]]
            agent, campaign_id = agents[0], campaign.id
        else:
            callee = rng.choice(contacts) if rng.random() < 0.5 else None
            agent, campaign_id = rng.choice(callers), None
        if index == 7:
            callee, agent = contacts[0], agents[2]
        to_number = callee.phone if callee is not None else _phone(rng, 100 + index)
        call = _history_call(
            state,
            rng,
            agent=agent,
            contact=callee,
            to_number=to_number,
            status=status,
            created_at=created_at,
            campaign_id=campaign_id,
        )
        call.phone_number_id, call.from_number = numbers[0].id, numbers[0].number
        if index == 7:
            survey = long_survey(
                agent=agent.first_name,
                contact_name=contacts[0].name or "",
                duration_seconds=1680.0,
                turns=LONG_TRANSCRIPT_TURNS,
            )
            call.duration_seconds = 1680.0
            call.ended_at = (call.started_at or created_at) + timedelta(seconds=1680)
            call.credits_charged = credits_for_call(call.region, 1680.0)
            call.transcript, call.summary = survey.transcript, survey.summary
            call.sentiment, call.extracted_data = survey.sentiment, survey.extracted_data
        history.append(call)
    for call in reversed(history):
        state.add_call(call)
    foreign_call = _history_call(
        state,
        rng,
        agent=foreign_agent,
        contact=foreign_contact,
        to_number=foreign_contact.phone,
        status="completed",
        created_at=now - timedelta(hours=3),
        campaign_id=foreign_campaign.id,
        owner=FOREIGN,
    )
    state.add_call(foreign_call)

    ids = SeedIds(
        user_id=account.user_id,
        deployed_agent_id=agents[0].id,
        deployed_agent_ids=tuple(agent.id for agent in agents if agent.status == "deployed"),
        draft_agent_id=agents[3].id,
        paused_agent_id=agents[4].id,
        foreign_agent_id=foreign_agent.id,
        phone_number_id=numbers[0].id,
        inactive_phone_number_id=numbers[1].id,
        contact_list_id=contact_list.id,
        contact_id=contacts[0].id,
        contact_ids=tuple(c.id for c in contacts),
        foreign_contact_list_id=foreign_list.id,
        foreign_contact_id=foreign_contact.id,
        campaign_id=campaign.id,
        foreign_campaign_id=foreign_campaign.id,
        long_transcript_call_id=history[7].id,
        completed_call_id=history[1].id,
        foreign_call_id=foreign_call.id,
        call_ids_by_status=MappingProxyType({history[i].status: history[i].id for i in range(1, 7)}),
    )
    return state, ids
