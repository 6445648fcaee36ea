"""The contracts between the tools and the server: the protocols the server implements and the models they pass.

The server's dispatch service (server/dispatch.py, server/batch_dispatch.py) takes these requests
and returns these results; it raises DispatchError, never an MCP error, and the tools turn that
into a tool error. This module imports nothing else from tools/, so either side can import it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from outboundcalls.calls import CallDetail, CallSummary

__all__ = [
    "Answer",
    "BatchArgs",
    "BatchDispatcher",
    "BatchPlan",
    "BatchResult",
    "CallEndWaiter",
    "CallItem",
    "ConsentTicket",
    "Destination",
    "DestinationStatus",
    "DialConsent",
    "DispatchError",
    "DispatchRequest",
    "DispatchResult",
    "DispatchStatus",
    "Dispatcher",
    "NamedRefusal",
    "PreflightRefused",
    "Prepared",
    "Preview",
    "ReadyDestination",
    "ToolModel",
]


class ToolModel(BaseModel):
    """Base of every tool output; unset optional fields are left out on the wire, never sent as null."""

    model_config = ConfigDict(extra="forbid")


# The compact view of a call that lists, waits and dispatch results show (a docstring would be
# published in every outputSchema that holds one).
class CallItem(ToolModel):
    id: str
    status: str
    to: str | None = None
    agent_id: str | None = None
    created_at: datetime | None = None
    duration_s: float | None = None
    credits: float | None = None


DispatchStatus = Literal["dialed", "needs_confirmation", "not_dialed", "outcome_unknown"]
DestinationStatus = Literal["ready", "refused", "dialed", "failed", "outcome_unknown", "not_dialed"]
# A person's answer as the ledger records it: only "accept" is a yes.
Answer = Literal["accept", "accept_false", "decline", "cancel", "error"]


class DispatchRequest(BaseModel):
    """dispatch_call's arguments as the assistant wrote them."""

    model_config = ConfigDict(frozen=True)

    agent_id: str
    to_number: str
    phone_number_id: str | None = None
    contact_id: str | None = None


class BatchArgs(BaseModel):
    """dispatch_calls' arguments: one agent, the destinations as written and in order, the caller id."""

    model_config = ConfigDict(frozen=True)

    agent_id: str
    to_numbers: tuple[str, ...]
    phone_number_id: str | None = None


class DialConsent(BaseModel):
    """The one-field form a person answers before a call is placed."""

    # Strict: the form's field is a boolean, and only JSON true is a yes ("yes", "true", 1 are not).
    confirm: StrictBool = Field(description="Place this call now?")


class Preview(ToolModel):
    to: str
    country: str | None = None
    number_type: str | None = None
    agent_id: str
    agent_name: str | None = None
    est_credits_per_min: float | None = Field(default=None, description="Estimate, not a quote.")
    balance: float | None = None
    local_time: str | None = None
    sandbox: bool = False
    confirmation_token: str | None = None
    expires_at: datetime | None = None


class DispatchResult(ToolModel):
    status: DispatchStatus
    message: str
    call: CallItem | None = None
    preview: Preview | None = None


class Destination(ToolModel):
    to: str
    status: DestinationStatus
    call_id: str | None = None
    est_credits_per_min: float | None = None
    local_time: str | None = None
    reason: str | None = None


class BatchResult(ToolModel):
    status: Literal["dialed", "needs_confirmation", "not_dialed"]
    message: str
    destinations: list[Destination]
    est_credits_per_min: float | None = None  # all ready calls together; an estimate
    confirmation_token: str | None = None
    expires_at: datetime | None = None


class Prepared(BaseModel):
    """A dispatch that passed pre-flight: the destination in E.164 (view.to), what to show and what to ask."""

    model_config = ConfigDict(frozen=True)

    args: DispatchRequest
    view: Preview
    question: str


class ReadyDestination(BaseModel):
    """A batch destination that passed pre-flight, at its position in the batch."""

    model_config = ConfigDict(frozen=True)

    position: int
    view: Preview


class BatchPlan(BaseModel):
    """A batch after pre-flight: every destination as shown, the ready ones, and the one question."""

    model_config = ConfigDict(frozen=True)

    args: BatchArgs
    destinations: list[Destination]
    ready: tuple[ReadyDestination, ...]
    est_credits_per_min: float | None
    question: str


class ConsentTicket(BaseModel):
    """A consent the service recorded as shown: the words to ask, and the record a yes will use."""

    model_config = ConfigDict(frozen=True)

    consent_id: str
    question: str


class NamedRefusal(Protocol):
    """One refusing rule as pre-flight names it (server.preflight.Refusal)."""

    @property
    def rule(self) -> str: ...

    @property
    def value(self) -> str: ...


class DispatchError(Exception):
    """Nothing was dialed, and the message says why and what to do; the tools show it as a tool error."""


class PreflightRefused(DispatchError):
    """Pre-flight refused a destination: the message names every rule; a batch lists `refusals` per destination."""

    def __init__(self, message: str, refusals: Sequence[NamedRefusal]) -> None:
        super().__init__(message)
        self.refusals = tuple(refusals)


class Dispatcher(Protocol):
    """The one path every dispatch_call takes: pre-flight, a consent used once, a dial decided once.

    Every method raises DispatchError when nothing was dialed and the
    assistant must be told why.
    """

    async def prepare(self, args: DispatchRequest) -> Prepared:
        """Run pre-flight; raise PreflightRefused naming every refusing rule (audited)."""
        ...

    async def consent_for_answer(self, args: DispatchRequest, answer_key: str) -> ConsentTicket | None:
        """On an answering round: the question it answers (or already answered), if one is on record."""
        ...

    async def open_question(self, prepared: Prepared, *, era: str) -> ConsentTicket:
        """Record the question about to be asked (audited once); its words are asked as recorded."""
        ...

    async def refuse(self, prepared: Prepared, reason: str) -> None:
        """Audit a refusal that is no pre-flight rule (a required question the client cannot show)."""
        ...

    async def offer_token(self, prepared: Prepared) -> Preview:
        """Record the preview as a consent and return it carrying its confirmation token."""
        ...

    async def answer(self, ticket: ConsentTicket, answer: Answer, *, answer_key: str | None) -> DispatchResult:
        """Use the consent with the person's answer, once: a yes dials (if the rules still allow it)."""
        ...

    async def dial_unattended(self, prepared: Prepared) -> DispatchResult:
        """Dial without asking (OUTBOUNDCALLS_CONFIRM=none), decided like any other dial."""
        ...

    async def confirm_token(self, args: DispatchRequest, token: str) -> DispatchResult:
        """Use a preview's consent by its token: dial once, or return what it already did."""
        ...

    async def record_charge(self, call: CallSummary) -> bool:
        """Audit what an ended call this server dialed was charged, once."""
        ...


class BatchDispatcher(Protocol):
    """dispatch_calls' path: every destination through the same pre-flight and ledger, one consent."""

    async def plan(self, args: BatchArgs) -> BatchPlan:
        """Pre-flight every destination; refusals are listed, never fatal (only a batch over the limit is)."""
        ...

    async def consent_for_answer(self, args: BatchArgs, answer_key: str) -> ConsentTicket | None:
        """On an answering round: the question it answers (or already answered), if one is on record."""
        ...

    async def open_question(self, plan: BatchPlan, *, era: str) -> ConsentTicket:
        """Record the one question about the batch (audited once)."""
        ...

    async def refuse(self, plan: BatchPlan, reason: str) -> None:
        """Audit a refusal that is no pre-flight rule."""
        ...

    async def offer_token(self, plan: BatchPlan) -> BatchResult:
        """Record the preview as one consent for the batch; one token confirms it."""
        ...

    async def answer(self, ticket: ConsentTicket, answer: Answer, *, answer_key: str | None) -> BatchResult:
        """Use the consent with the person's answer, once: a yes dials exactly the destinations agreed."""
        ...

    async def dial_unattended(self, plan: BatchPlan) -> BatchResult:
        """Dial each ready destination without asking, each decided like any other dial."""
        ...

    async def confirm_token(self, args: BatchArgs, token: str) -> BatchResult:
        """Use a batch preview's consent by its token: each agreed destination dialed once, or what it did."""
        ...

    def not_dialed(self, plan: BatchPlan, message: str) -> BatchResult:
        """The plan reported with nothing dialed."""
        ...


class CallEndWaiter(Protocol):
    """Call ends known without polling (webhooks) or seen by a tool: waited on, and announced."""

    async def wait(self, call_ids: Sequence[str], timeout: float) -> dict[str, CallDetail]:
        """Return once one of these calls is known to have ended, or after timeout; the ended ones known."""
        ...

    async def call_ended(self, call: CallDetail) -> None:
        """Announce a call seen in a terminal status: wakes its waiters, notifies subscribers once."""
        ...
