"""What the dispatch tools and the server's dispatch service pass each other, and what the tools return.

The service (server/dispatch.py, server/batch_dispatch.py) takes these requests and returns these
results; it raises DispatchError, never an MCP error, and the tools turn that into a tool error.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from outboundcalls_mcp.tools.calls import CallItem
from outboundcalls_mcp.tools.results import ToolModel

__all__ = [
    "Answer",
    "BatchArgs",
    "BatchPlan",
    "BatchResult",
    "ConsentTicket",
    "Destination",
    "DestinationStatus",
    "DialConsent",
    "DispatchError",
    "DispatchRequest",
    "DispatchResult",
    "DispatchStatus",
    "NamedRefusal",
    "PreflightRefused",
    "Prepared",
    "Preview",
    "ReadyDestination",
]

DispatchStatus = Literal["dialed", "needs_confirmation", "not_dialed", "outcome_unknown"]
DestinationStatus = Literal["ready", "refused", "dialed", "failed", "outcome_unknown", "not_dialed"]
# A person's answer as the ledger records it: only "accept" is a yes.
Answer = Literal["accept", "accept_false", "decline", "cancel", "error"]


class DispatchRequest(BaseModel):
    """dispatch_call's arguments as the assistant wrote them."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    agent_id: str
    to_number: str
    phone_number_id: str | None = None
    contact_id: str | None = None


class BatchArgs(BaseModel):
    """dispatch_calls' arguments: one agent, the destinations as written and in order, the caller id."""

    model_config = ConfigDict(frozen=True, defer_build=True)

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

    model_config = ConfigDict(frozen=True, defer_build=True)

    args: DispatchRequest
    view: Preview
    question: str


class ReadyDestination(BaseModel):
    """A batch destination that passed pre-flight, at its position in the batch."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    position: int
    view: Preview


class BatchPlan(BaseModel):
    """A batch after pre-flight: every destination as shown, the ready ones, and the one question."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    args: BatchArgs
    destinations: list[Destination]
    ready: tuple[ReadyDestination, ...]
    est_credits_per_min: float | None
    question: str


class ConsentTicket(BaseModel):
    """A consent the service recorded as shown: the words to ask, and the record a yes will use."""

    model_config = ConfigDict(frozen=True, defer_build=True)

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
