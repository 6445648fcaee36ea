"""The sandbox's account state and the API's rules over it (ownership, validation, charging)."""

from __future__ import annotations

import random
import string
from collections import deque
from datetime import datetime, timedelta
from typing import Any, TypeVar

from ..numbers import country_code_of
from ..pricing import MINIMUM_BALANCE_CREDITS, credits_for_call, estimate_credits_per_minute
from .conversations import converse
from .lifecycle import TERMINAL_STATUSES, CallScript, plan_call
from .records import (
    OWNER,
    AccountRecord,
    AgentRecord,
    CallRecord,
    CampaignRecord,
    ContactListRecord,
    ContactRecord,
    PhoneNumberRecord,
)

__all__ = ["RECORDING_BASE_URL", "ApiError", "SandboxState", "destination_region"]

RECORDING_BASE_URL = "https://recordings.sandbox.outboundcalls.test"
_ID_ALPHABET = string.ascii_lowercase + string.digits
_Owned = TypeVar("_Owned", AgentRecord, ContactListRecord, ContactRecord, CampaignRecord, CallRecord, PhoneNumberRecord)


class ApiError(Exception):
    """An error the API answers as {"error": message} with `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def destination_region(e164: str) -> str | None:
    """The ISO region a number rings in, falling back to its country code's main region."""
    import phonenumbers  # imported lazily: its metadata is large and most imports never dial

    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return None
    region = phonenumbers.region_code_for_number(number)
    if region in (None, "ZZ", "001"):
        region = phonenumbers.region_code_for_country_code(country_code_of(number))
    return None if region in (None, "ZZ", "001") else region


class SandboxState:
    """Every resource of the sandbox account (and one foreign account), and the rules over them."""

    def __init__(self, *, seed: int, account: AccountRecord, id_source: random.Random | None = None) -> None:
        self.seed = seed
        self.account = account
        self.agents: dict[str, AgentRecord] = {}
        self.phone_numbers: dict[str, PhoneNumberRecord] = {}
        self.contact_lists: dict[str, ContactListRecord] = {}
        self.contacts: dict[str, ContactRecord] = {}
        self.campaigns: dict[str, CampaignRecord] = {}
        self.calls: dict[str, CallRecord] = {}
        self.dispatched = 0
        # Seeded for a reproducible account in memory; a persistent account draws from the OS instead,
        # so that ids never repeat across its resets.
        self.id_source = id_source if id_source is not None else random.Random(f"ids:{seed}")
        self._scripts: deque[CallScript] = deque()
        self.sequence = 0  # the last call's creation order

    def new_id(self) -> str:
        """A fresh cuid-like id, deterministic for a seed and the order of creation."""
        while True:
            candidate = "clx" + "".join(self.id_source.choices(_ID_ALPHABET, k=22))
            if candidate not in self.calls and candidate not in self.contacts:
                return candidate

    def add_call(self, call: CallRecord) -> CallRecord:
        """Store a call, remembering creation order to break ties between equal timestamps."""
        self.sequence += 1
        call.sequence = self.sequence
        self.calls[call.id] = call
        return call

    def script_next_call(self, script: CallScript) -> None:
        """Queue how the next dispatched call behaves (scripts are used in order)."""
        self._scripts.append(script)

    def _owned(self, table: dict[str, _Owned], resource_id: str, label: str) -> _Owned:
        """A resource of this account; a foreign one answers 404 exactly like a missing one."""
        record = table.get(resource_id)
        if record is None or record.owner != OWNER:
            raise ApiError(404, f"{label} not found: {resource_id}")
        return record

    def agent(self, agent_id: str) -> AgentRecord:
        """An agent of this account, or 404."""
        return self._owned(self.agents, agent_id, "Agent")

    def call(self, call_id: str) -> CallRecord:
        """A call of this account, or 404."""
        return self._owned(self.calls, call_id, "Call")

    def campaign_json(self, campaign_id: str) -> dict[str, Any]:
        """A campaign with its progress figures, computed from its calls."""
        campaign = self._owned(self.campaigns, campaign_id, "Campaign")
        calls = [call for call in self.calls.values() if call.campaign_id == campaign.id]
        finished = [call for call in calls if call.status in TERMINAL_STATUSES]
        successful = sum(1 for call in finished if call.status == "completed")
        return {
            "id": campaign.id,
            "name": campaign.name,
            "status": campaign.status,
            "callsTotal": max(campaign.calls_planned, len(calls)),
            "callsCompleted": len(finished),
            "callsSuccessful": successful,
            "callsFailed": len(finished) - successful,
            "creditsUsed": round(sum(call.credits_charged or 0.0 for call in finished), 2),
            "successRate": round(successful / len(finished), 4) if finished else 0.0,
        }

    def list_agents(self, *, status: str | None, limit: int) -> list[AgentRecord]:
        """This account's agents, oldest first."""
        agents = [a for a in self.agents.values() if a.owner == OWNER and status in (None, a.status)]
        return sorted(agents, key=lambda agent: agent.created_at)[:limit]

    def list_contacts(self, *, contact_list_id: str | None, limit: int) -> list[ContactRecord]:
        """This account's contacts, oldest first; an unknown list id simply matches nothing."""
        contacts = [
            c for c in self.contacts.values() if c.owner == OWNER and contact_list_id in (None, c.contact_list_id)
        ]
        return contacts[:limit]

    def create_contact(self, fields: dict[str, Any], now: datetime) -> ContactRecord:
        """Add a contact to one of this account's lists (404 for a list it does not own)."""
        contact_list = self._owned(self.contact_lists, fields["contactListId"], "Contact list")
        contact = ContactRecord(
            id=self.new_id(),
            owner=OWNER,
            contact_list_id=contact_list.id,
            phone=fields["phone"],
            name=fields.get("name"),
            email=fields.get("email"),
            company=fields.get("company"),
            tags=list(fields.get("tags") or []),
            custom_fields=dict(fields.get("customFields") or {}),
            created_at=now,
        )
        self.contacts[contact.id] = contact
        return contact

    def list_calls(
        self, *, status: str | None, agent_id: str | None, campaign_id: str | None, limit: int
    ) -> list[CallRecord]:
        """This account's calls matching every given filter, newest first."""
        calls = [
            call
            for call in self.calls.values()
            if call.owner == OWNER
            and status in (None, call.status)
            and agent_id in (None, call.agent_id)
            and campaign_id in (None, call.campaign_id)
        ]
        calls.sort(key=lambda call: (call.created_at, call.sequence), reverse=True)
        return calls[:limit]

    def create_call(self, fields: dict[str, Any], now: datetime) -> CallRecord:
        """Dispatch a call: 404 for what this account does not own, 400 if not dialable, 402 if broke."""
        agent = self.agent(fields["agentId"])
        if agent.status != "deployed":
            raise ApiError(
                400, f"agentId {agent.id} is not deployed (status: {agent.status}); deploy it before dispatching"
            )
        region = destination_region(fields["toNumber"])
        if region is None or estimate_credits_per_minute(region) is None:
            where = region or "unknown"
            raise ApiError(400, f"toNumber {fields['toNumber']}: calls to region {where} are not supported")
        phone_number = self._caller_id(fields.get("phoneNumberId"))
        contact = None
        if fields.get("contactId") is not None:
            contact = self._owned(self.contacts, fields["contactId"], "Contact")
        if self.account.credits < MINIMUM_BALANCE_CREDITS:
            raise ApiError(
                402,
                f"Insufficient credits: balance is {self.account.credits:.2f}, "
                f"at least {MINIMUM_BALANCE_CREDITS:g} credits are needed to dispatch a call",
            )
        script = self._scripts.popleft() if self._scripts else None
        plan = plan_call(self.seed, self.dispatched, script)
        self.dispatched += 1
        return self.add_call(
            CallRecord(
                id=self.new_id(),
                owner=OWNER,
                agent_id=agent.id,
                campaign_id=None,
                contact_id=None if contact is None else contact.id,
                phone_number_id=phone_number.id,
                to_number=fields["toNumber"],
                from_number=phone_number.number,
                region=region,
                status="queued",
                created_at=now,
                plan=plan,
            )
        )

    def _caller_id(self, phone_number_id: str | None) -> PhoneNumberRecord:
        """The number to dial from: the one asked for, or the account's first active number."""
        if phone_number_id is not None:
            number = self._owned(self.phone_numbers, phone_number_id, "Phone number")
            if not number.active:
                raise ApiError(400, f"phoneNumberId {phone_number_id} is not active")
            return number
        for number in self.phone_numbers.values():
            if number.owner == OWNER and number.active:
                return number
        raise ApiError(400, "phoneNumberId: the account has no active phone number")

    def due(self, now: datetime) -> bool:
        """Whether some live call has moved on to another status by `now`."""
        return any(
            call.plan is not None
            and call.status not in TERMINAL_STATUSES
            and call.plan.status_at((now - call.created_at).total_seconds()) != call.status
            for call in self.calls.values()
        )

    def dialed_calls(self) -> list[CallRecord]:
        """This account's calls created by POST /calls (not the seeded history), newest first."""
        calls = [call for call in self.calls.values() if call.owner == OWNER and call.plan is not None]
        calls.sort(key=lambda call: (call.created_at, call.sequence), reverse=True)
        return calls

    def advance(self, now: datetime) -> list[CallRecord]:
        """Move live calls to their status at `now`; return the ones that just ended, in end order."""
        ended: list[tuple[datetime, int, CallRecord]] = []
        for call in self.calls.values():
            if call.plan is None or call.status in TERMINAL_STATUSES:
                continue
            status = call.plan.status_at((now - call.created_at).total_seconds())
            if status in TERMINAL_STATUSES:
                ended.append((call.created_at + timedelta(seconds=call.plan.end_after), call.sequence, call))
                continue
            call.status = status
            if status == "in_progress":
                call.started_at = call.created_at + timedelta(seconds=call.plan.answer_after)
        # Charged in the order they ended, so the balance (and any cap) is the same every run.
        ended.sort(key=lambda entry: entry[:2])
        for _, _, call in ended:
            self._finish(call)
        return [call for _, _, call in ended]

    def _finish(self, call: CallRecord) -> None:
        """Give an ended call its outcome and conversation, and charge for it."""
        plan = call.plan
        assert plan is not None
        call.status = plan.outcome
        call.ended_at = call.created_at + timedelta(seconds=plan.end_after)
        call.started_at = call.created_at + timedelta(seconds=plan.answer_after) if plan.answered else None
        call.duration_seconds = plan.duration_seconds if plan.answered else 0.0
        agent = self.agents[call.agent_id]
        contact = self.contacts.get(call.contact_id) if call.contact_id else None
        conversation = converse(
            agent.purpose,
            agent=agent.first_name,
            contact_name=None if contact is None else contact.name,
            outcome=plan.outcome,
            duration_seconds=call.duration_seconds,
            rng=random.Random(f"conversation:{self.seed}:{call.id}"),
        )
        call.transcript = conversation.transcript
        call.summary = conversation.summary
        call.sentiment = conversation.sentiment
        call.extracted_data = conversation.extracted_data
        call.recording_url = f"{RECORDING_BASE_URL}/{call.id}.mp3" if plan.answered else None
        cost = credits_for_call(call.region, call.duration_seconds)
        # Charged on completion, never past zero: the vendor checks the balance only at dispatch,
        # so concurrent calls can cost more than is left, and the sandbox caps instead of owing.
        charged = round(min(cost, max(self.account.credits, 0.0)), 2)
        call.credits_charged = charged
        self.account.credits = round(self.account.credits - charged, 2)
