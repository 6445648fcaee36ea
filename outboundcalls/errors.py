"""The exception tree of the OutboundCalls client and the pure status-to-exception mapping.

OutboundCallsError
├── InvalidRequestError(ValueError)      rejected locally, nothing sent
├── TransportError                        no usable answer from the API
│   ├── ConnectionFailedError             never reached the API: nothing happened (safe)
│   │   └── ConnectTimeoutError           timed out connecting or waiting for the pool
│   ├── RequestTimeoutError               a read (GET) timed out
│   └── OutcomeUnknownError               a write left, then timeout/drop: it may have happened
├── APIStatusError(status, message, code, request_id)
│   ├── BadRequestError 400
│   ├── AuthenticationError 401
│   ├── InsufficientCreditsError 402
│   ├── NotFoundError 404
│   ├── RateLimitError 429 (retry_after: float|None)
│   └── UpstreamError 5xx (502 documented)
└── ResponseValidationError               2xx body not what the model expects
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

__all__ = [
    "APIStatusError",
    "AuthenticationError",
    "BadRequestError",
    "ConnectTimeoutError",
    "ConnectionFailedError",
    "InsufficientCreditsError",
    "InvalidRequestError",
    "NotFoundError",
    "OutboundCallsError",
    "OutcomeUnknownError",
    "RateLimitError",
    "RequestTimeoutError",
    "ResponseValidationError",
    "TransportError",
    "UpstreamError",
    "error_from_response",
    "header_value",
    "parse_retry_after",
    "retry_after_of",
    "scrub_secret",
]

REDACTED_KEY = "oc_live_***"
# Shorter "keys" would turn scrubbing into mangling ordinary words; real keys are ~40 chars.
_MIN_SCRUB_LENGTH = 6
_EXCERPT_CHARS = 200
_JSON_MESSAGE_CHARS = 500

# The vendor's documented meaning of each status, used when the body says nothing.
_DOCUMENTED_MEANING = {
    400: "Bad request: missing or invalid fields",
    401: "Missing, invalid, or revoked API key",
    402: "Insufficient credits to dispatch a call",
    404: "Resource not found (or not owned by your account)",
    429: "Too many requests: rate limited by the API",
    502: "Upstream telephony provider error",
}


class OutboundCallsError(Exception):
    """Root of every error raised by the OutboundCalls client."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequestError(OutboundCallsError, ValueError):
    """The request was rejected locally; nothing was sent."""


class TransportError(OutboundCallsError):
    """No usable answer came back from the API."""


class ConnectionFailedError(TransportError):
    """The API was never reached, so nothing happened; safe to try again."""


class ConnectTimeoutError(ConnectionFailedError):
    """Timed out before the request was sent (connecting or waiting for a pooled connection)."""


class RequestTimeoutError(TransportError):
    """A read-only request timed out after its retries."""


class OutcomeUnknownError(TransportError):
    """A write may have reached the API before the connection failed; it may have happened."""


class APIStatusError(OutboundCallsError):
    """The API answered with a non-2xx status."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.request_id = request_id

    def __str__(self) -> str:
        extra = f", request id {self.request_id}" if self.request_id else ""
        return f"{self.message} (HTTP {self.status}{extra})"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, message={self.message!r}, "
            f"code={self.code!r}, request_id={self.request_id!r})"
        )


class BadRequestError(APIStatusError):
    """400: missing or invalid fields."""


class AuthenticationError(APIStatusError):
    """401: missing, invalid, or revoked API key."""


class InsufficientCreditsError(APIStatusError):
    """402: not enough credits to dispatch a call."""


class NotFoundError(APIStatusError):
    """404: no such resource, or not owned by this account."""


class RateLimitError(APIStatusError):
    """429: rate limited; retry_after holds the server's wait in seconds, if it gave one."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        request_id: str | None = None,
        *,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(status, message, code, request_id)
        self.retry_after = retry_after


class UpstreamError(APIStatusError):
    """5xx: the API or its telephony provider failed."""


class ResponseValidationError(OutboundCallsError):
    """A 2xx body did not fit the expected model."""

    def __init__(self, message: str, *, status: int | None = None, request_id: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.request_id = request_id


_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: InsufficientCreditsError,
    404: NotFoundError,
}


def scrub_secret(text: str, secret: str | None) -> str:
    """Replace every occurrence of the secret in text with a redacted marker."""
    if not secret or len(secret) < _MIN_SCRUB_LENGTH:
        return text
    return text.replace(secret, REDACTED_KEY)


def header_value(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive header lookup that works on plain dicts too."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def retry_after_of(headers: Mapping[str, str]) -> float | None:
    """Seconds a response's Retry-After header asks to wait, or None."""
    return parse_retry_after(header_value(headers, "retry-after"))


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After value (delta-seconds or HTTP-date); None if unusable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now if now is not None else datetime.now(UTC)
    return max((when - current).total_seconds(), 0.0)


def _excerpt(text: str, limit: int) -> str:
    """Collapse whitespace and cut text to at most limit characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def _text_from_markup(text: str) -> str:
    """Visible text of an HTML page (e.g. a proxy's error page)."""
    text = re.sub(r"(?is)<(script|style|head)\b.*?</\1\s*>", " ", text)
    text = re.sub(r"(?s)<!--.*?-->", " ", text)
    text = re.sub(r"(?s)<[^>]*>", " ", text)
    return html.unescape(text)


def _as_text(value: Any) -> str | None:
    """A non-empty string from a JSON scalar, else None."""
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _message_and_code(body: bytes) -> tuple[str | None, str | None]:
    """The vendor's message and code from any of the documented error-body variants."""
    text = body.decode("utf-8", errors="replace").strip()
    if not text:
        return None, None
    try:
        parsed: Any = json.loads(text)
    except ValueError:
        return _excerpt(_text_from_markup(text), _EXCERPT_CHARS) or None, None
    if isinstance(parsed, str):
        return _excerpt(parsed, _JSON_MESSAGE_CHARS) or None, None
    if not isinstance(parsed, dict):
        return None, None
    message: str | None = None
    code = _as_text(parsed.get("code"))
    error = parsed.get("error")
    if isinstance(error, dict):
        message = _as_text(error.get("message"))
        code = _as_text(error.get("code")) or code
    else:
        message = _as_text(error)
    message = message or _as_text(parsed.get("message")) or _as_text(parsed.get("detail"))
    return (_excerpt(message, _JSON_MESSAGE_CHARS) if message else None), code


def _fallback_message(status: int) -> str:
    """The documented meaning of a status, for bodies that carry no message."""
    if status in _DOCUMENTED_MEANING:
        return _DOCUMENTED_MEANING[status]
    if status >= 500:
        return f"The API failed with HTTP {status}"
    return f"The API refused the request with HTTP {status}"


def error_from_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    secret: str | None = None,
) -> APIStatusError:
    """Build the exception for a non-2xx response; secret, if given, is scrubbed from its text."""
    message, code = _message_and_code(body)
    message = scrub_secret(message or _fallback_message(status), secret)
    code = scrub_secret(code, secret) if code else None
    request_id = header_value(headers, "x-request-id")
    request_id = scrub_secret(request_id, secret) if request_id else None
    if status == 429:
        return RateLimitError(status, message, code, request_id, retry_after=retry_after_of(headers))
    if status >= 500:
        return UpstreamError(status, message, code, request_id)
    cls = _STATUS_CLASSES.get(status, APIStatusError)
    return cls(status, message, code, request_id)
