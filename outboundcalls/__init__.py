"""OutboundCalls API client: models, errors and an async client over httpx2 (no MCP here)."""

from outboundcalls.account import Account, AccountUser, Subscription
from outboundcalls.agents import Agent
from outboundcalls.calls import (
    TERMINAL_STATUSES,
    CallDetail,
    CallStatus,
    CallSummary,
    NewCall,
    TranscriptTurn,
    is_terminal_status,
)
from outboundcalls.campaigns import Campaign
from outboundcalls.client import DEFAULT_BASE_URL, OutboundCallsClient
from outboundcalls.contacts import Contact, NewContact
from outboundcalls.errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ConnectionFailedError,
    ConnectTimeoutError,
    InsufficientCreditsError,
    InvalidRequestError,
    NotFoundError,
    OutboundCallsError,
    OutcomeUnknownError,
    RateLimitError,
    RequestTimeoutError,
    ResponseValidationError,
    TransportError,
    UpstreamError,
    error_from_response,
)
from outboundcalls.retry import RetryPolicy
from outboundcalls.wire import WireModel

__all__ = [
    "DEFAULT_BASE_URL",
    "TERMINAL_STATUSES",
    "APIStatusError",
    "Account",
    "AccountUser",
    "Agent",
    "AuthenticationError",
    "BadRequestError",
    "CallDetail",
    "CallStatus",
    "CallSummary",
    "Campaign",
    "ConnectTimeoutError",
    "ConnectionFailedError",
    "Contact",
    "InsufficientCreditsError",
    "InvalidRequestError",
    "NewCall",
    "NewContact",
    "NotFoundError",
    "OutboundCallsClient",
    "OutboundCallsError",
    "OutcomeUnknownError",
    "RateLimitError",
    "RequestTimeoutError",
    "ResponseValidationError",
    "RetryPolicy",
    "Subscription",
    "TranscriptTurn",
    "TransportError",
    "UpstreamError",
    "WireModel",
    "error_from_response",
    "is_terminal_status",
]
