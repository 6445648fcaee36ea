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
from outboundcalls.pricing import MINIMUM_BALANCE_CREDITS

__all__ = ["describe_upstream_error", "upstream_errors"]


def _sentence(text: str) -> str:
    """Text as a sentence: capitalised, ending in a full stop."""
    text = text.strip().rstrip(".")
    return text[:1].upper() + text[1:] + "."


def describe_upstream_error(
    exc: OutboundCallsError, subject: str | None = None, *, after_write: str | None = None
) -> str:
    """One actionable sentence or two for an upstream failure; never includes the key."""
    # after_write names the list tool that shows whether a write took effect, for failures that
    # leave it unknown (its answer was lost or unreadable): repeating the write could duplicate it.
    if isinstance(exc, InvalidRequestError):
        return f"{exc}. Nothing was sent."
    if isinstance(exc, AuthenticationError):
        return (
            "The OutboundCalls API refused the API key (401: missing, invalid or revoked). "
            "The owner must set OUTBOUNDCALLS_API_KEY to a valid key from Settings → API Keys."
        )
    if isinstance(exc, InsufficientCreditsError):
        return (
            f"Insufficient credits (402): {exc.message}. The vendor requires a balance of at least "
            f"{MINIMUM_BALANCE_CREDITS:g} credits "
            "to dispatch; check get_balance and top up in the OutboundCalls dashboard."
        )
    if isinstance(exc, NotFoundError):
        if subject is None:
            # No id was given, so a 404 means the address is wrong, not the arguments.
            return (
                "The API answered 404 (not found) for a request that names no id: the API address "
                "(OUTBOUNDCALLS_BASE_URL) may be wrong or the service is misrouting. "
                "Try again; report it if it persists."
            )
        return (
            f"{subject} was not found (404), or belongs to another account. Check the id with the matching list_* tool."
        )
    if isinstance(exc, BadRequestError):
        return (
            f"The API rejected the request as invalid (400): {exc.message}. Check the arguments against the tool's "
            "description and try again with corrected values."
        )
    if isinstance(exc, RateLimitError):
        wait = f" in {exc.retry_after:g} s" if exc.retry_after else " shortly"
        return f"The API is rate limiting requests (429). Try again{wait}."
    if isinstance(exc, UpstreamError):
        return f"The OutboundCalls service failed ({exc.status}): {exc.message}. Try again in a minute."
    if isinstance(exc, APIStatusError):
        return f"The API answered {exc.status}: {exc.message}."
    if isinstance(exc, OutcomeUnknownError):
        check = f" ({after_write} shows what exists)" if after_write else ""
        return _sentence(str(exc)) + check
    if isinstance(exc, RequestTimeoutError):
        return "The OutboundCalls API did not answer in time, even after retries. Try again shortly."
    if isinstance(exc, ConnectionFailedError):
        return f"Could not reach the OutboundCalls API ({exc}). Nothing was changed; try again shortly."
    if isinstance(exc, TransportError):
        # Only reads get here (a broken write is OutcomeUnknownError), so nothing changed upstream.
        return (
            f"The connection to the OutboundCalls API broke before an answer came ({exc}). "
            "Nothing was changed; try again shortly."
        )
    if isinstance(exc, ResponseValidationError):
        if after_write:
            return (
                f"The OutboundCalls API answered with something unexpected ({exc}). Do not repeat the request: "
                f"check {after_write} first, since it may already have taken effect."
            )
        return f"The OutboundCalls API answered with something unexpected ({exc}). Try again; report it if it persists."
    return f"OutboundCalls API error: {exc}"


@contextmanager
def upstream_errors(subject: str | None = None, *, after_write: str | None = None) -> Iterator[None]:
    """Translate client errors raised inside the block into tool errors."""
    try:
        yield
    except OutboundCallsError as exc:
        raise ToolError(describe_upstream_error(exc, subject, after_write=after_write)) from exc
