"""What dispatch_call shows and returns; shared by the tool and the server's dispatch service."""

from __future__ import annotations

from datetime import datetime
from collections.abc import Sequence
from typing import Literal, Protocol

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, ConfigDict, Field

from tools.calls import CallItem
from tools.results import ToolModel

__all__ = [
    "DialConsent", "DispatchArgs", "DispatchResult", "DispatchStatus", "NamedRefusal", "PreflightRefused", "Prepared",
    "Preview",
]

DispatchStatus = Literal["dialed", "needs_confirmation", "not_dialed", "outcome_unknown"]


class DispatchArgs(BaseModel):
    """The arguments a dispatch is bound to; to_number as the assistant wrote it."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    agent_id: str
    to_number: str
    phone_number_id: str | None = None
    contact_id: str | None = None


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


class DialConsent(BaseModel):
    """The one-field form a person answers before a call is placed."""

    confirm: bool = Field(description="Place this call now?")


class Prepared(BaseModel):
    """A dispatch that passed pre-flight: what to show, what to ask, and the service's own record."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True, defer_build=True)

    args: DispatchArgs
    view: Preview
    question: str
    handle: object = None


class NamedRefusal(Protocol):
    """One refusing rule as pre-flight names it (server.preflight.Refusal)."""

    @property
    def rule(self) -> str: ...

    @property
    def value(self) -> str: ...


class PreflightRefused(ToolError):
    """Pre-flight refused a destination: the message names every rule; a batch lists `refusals` per destination."""

    def __init__(self, message: str, refusals: Sequence[NamedRefusal]) -> None:
        super().__init__(message)
        self.refusals = tuple(refusals)
