"""Upstream failures turned into tool errors the assistant can act on (house style 9)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from mcp.server.mcpserver.exceptions import ToolError

from outboundcalls.errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ConnectionFailedError,
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
)

__all__ = ["describe_upstream_error", "upstream_errors"]


def describe_upstream_error(exc: OutboundCallsError, subject: str | None = None) -> str:
    """One actionable sentence or two for an upstream failure; never includes the key."""
    if isinstance(exc, InvalidRequestError):
        return f"{exc}. Nothing was sent."
    if isinstance(exc, AuthenticationError):
        return (
            "The OutboundCalls API refused the API key (401: missing, invalid or revoked). "
            "The owner must set OUTBOUNDCALLS_API_KEY to a valid key from Settings → API Keys."
        )
    if isinstance(exc, InsufficientCreditsError):
        return (
            f"Insufficient credits (402): {exc.message}. The vendor requires a balance of at least 25 credits "
            "to dispatch; check get_balance and top up in the OutboundCalls dashboard."
        )
    if isinstance(exc, NotFoundError):
        what = subject or "The resource"
        return f"{what} was not found (404), or belongs to another account. Check the id with the matching list_* tool."
    if isinstance(exc, BadRequestError):
        return f"The API rejected the request (400): {exc.message}. Fix that field and try again."
    if isinstance(exc, RateLimitError):
        wait = f" in {exc.retry_after:g} s" if exc.retry_after else " shortly"
        return f"The API is rate limiting requests (429). Try again{wait}."
    if isinstance(exc, UpstreamError):
        return f"The OutboundCalls service failed ({exc.status}): {exc.message}. Try again in a minute."
    if isinstance(exc, APIStatusError):
        return f"The API answered {exc.status}: {exc.message}."
    if isinstance(exc, OutcomeUnknownError):
        return f"{exc} Check list_calls before trying again."
    if isinstance(exc, RequestTimeoutError):
        return "The OutboundCalls API did not answer in time, even after retries. Try again shortly."
    if isinstance(exc, ConnectionFailedError | TransportError):
        return f"Could not reach the OutboundCalls API ({exc}). Nothing was changed; try again shortly."
    if isinstance(exc, ResponseValidationError):
        return f"The OutboundCalls API answered with something unexpected ({exc}). Try again; report it if it persists."
    return f"OutboundCalls API error: {exc}"


@contextmanager
def upstream_errors(subject: str | None = None) -> Iterator[None]:
    """Translate client errors raised inside the block into tool errors."""
    try:
        yield
    except OutboundCallsError as exc:
        raise ToolError(describe_upstream_error(exc, subject)) from exc
