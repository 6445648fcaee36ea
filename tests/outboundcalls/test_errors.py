"""error_from_response: one test per branch, every body variant, no network."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

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
    parse_retry_after,
    scrub_secret,
)

KEY = "oc_live_" + "k" * 32


def _json(payload: object) -> bytes:
    return json.dumps(payload).encode()


def test_400_is_bad_request() -> None:
    err = error_from_response(400, {}, _json({"error": "phone is required"}))
    assert type(err) is BadRequestError
    assert (err.status, err.message) == (400, "phone is required")


def test_401_is_authentication_error() -> None:
    err = error_from_response(401, {}, _json({"error": "invalid key"}))
    assert type(err) is AuthenticationError
    assert err.status == 401


def test_402_is_insufficient_credits() -> None:
    err = error_from_response(402, {}, _json({"error": "Insufficient credits"}))
    assert type(err) is InsufficientCreditsError


def test_404_is_not_found() -> None:
    err = error_from_response(404, {}, _json({"error": "Agent not found"}))
    assert type(err) is NotFoundError


def test_429_is_rate_limit_with_retry_after_seconds() -> None:
    err = error_from_response(429, {"Retry-After": "7"}, b"")
    assert type(err) is RateLimitError
    assert err.retry_after == 7.0


def test_429_retry_after_http_date_in_the_past_means_no_wait() -> None:
    err = error_from_response(429, {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, b"")
    assert isinstance(err, RateLimitError)
    assert err.retry_after == 0.0


def test_429_without_retry_after_has_none() -> None:
    err = error_from_response(429, {}, b"")
    assert isinstance(err, RateLimitError)
    assert err.retry_after is None


def test_502_is_upstream_with_documented_meaning_when_body_is_empty() -> None:
    err = error_from_response(502, {}, b"")
    assert type(err) is UpstreamError
    assert err.message == "Upstream telephony provider error"


@pytest.mark.parametrize("status", [500, 503, 504, 599])
def test_any_5xx_is_upstream(status: int) -> None:
    err = error_from_response(status, {}, b"")
    assert type(err) is UpstreamError
    assert err.status == status


@pytest.mark.parametrize("status", [403, 405, 409, 410, 418, 422, 302])
def test_other_statuses_are_plain_api_status_errors(status: int) -> None:
    err = error_from_response(status, {}, b"")
    assert type(err) is APIStatusError
    assert str(status) in err.message


@pytest.mark.parametrize(
    ("status", "meaning"),
    [
        (400, "Bad request: missing or invalid fields"),
        (401, "Missing, invalid, or revoked API key"),
        (402, "Insufficient credits to dispatch a call"),
        (404, "Resource not found (or not owned by your account)"),
    ],
)
def test_empty_body_falls_back_to_documented_meaning(status: int, meaning: str) -> None:
    assert error_from_response(status, {}, b"  \n").message == meaning


def test_message_from_error_string() -> None:
    assert error_from_response(400, {}, _json({"error": "bad phone"})).message == "bad phone"


def test_message_and_code_from_error_object() -> None:
    err = error_from_response(402, {}, _json({"error": {"message": "Need 25 credits", "code": "low_balance"}}))
    assert (err.message, err.code) == ("Need 25 credits", "low_balance")


def test_message_from_top_level_message() -> None:
    err = error_from_response(404, {}, _json({"message": "No such call", "code": "not_found"}))
    assert (err.message, err.code) == ("No such call", "not_found")


def test_message_from_json_string_body() -> None:
    assert error_from_response(400, {}, _json("plain complaint")).message == "plain complaint"


def test_json_without_a_message_falls_back_to_documented_meaning() -> None:
    err = error_from_response(401, {}, _json({"ok": False}))
    assert err.message == "Missing, invalid, or revoked API key"


def test_html_page_from_a_proxy_becomes_a_short_text_excerpt() -> None:
    page = (
        b"<html><head><title>x</title><style>body{color:red}</style></head>"
        b"<body>\n  <h1>502   Bad Gateway</h1>\n<p>nginx &amp; friends</p>" + b"<p>filler</p>" * 200 + b"</body></html>"
    )
    err = error_from_response(502, {}, page)
    assert err.message.startswith("502 Bad Gateway nginx & friends filler")
    assert "<" not in err.message and "color" not in err.message
    assert len(err.message) <= 200


def test_non_utf8_body_does_not_break_the_mapping() -> None:
    err = error_from_response(500, {}, b"\xff\xfe oops")
    assert "oops" in err.message


def test_request_id_comes_from_x_request_id_header_in_any_case() -> None:
    err = error_from_response(404, {"X-Request-Id": "req_123"}, b"")
    assert err.request_id == "req_123"
    assert "req_123" in str(err)


def test_request_id_is_none_without_the_header() -> None:
    assert error_from_response(404, {}, b"").request_id is None


def test_secret_is_scrubbed_from_message_code_and_request_id() -> None:
    body = _json({"error": {"message": f"key {KEY} revoked", "code": KEY}})
    err = error_from_response(401, {"x-request-id": KEY}, body, secret=KEY)
    for text in (str(err), repr(err), err.message, err.code, err.request_id):
        assert KEY not in (text or "")
    assert "oc_live_***" in err.message


def test_scrub_secret_leaves_text_alone_without_a_usable_secret() -> None:
    assert scrub_secret("abc", None) == "abc"
    assert scrub_secret("a b a", "a") == "a b a"


def test_parse_retry_after_http_date_relative_to_now() -> None:
    now = datetime(2015, 10, 21, 7, 27, 0, tzinfo=UTC)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=now) == 60.0


@pytest.mark.parametrize("value", [None, "", "soon", "nan", "inf"])
def test_parse_retry_after_unusable_values_are_none(value: str | None) -> None:
    assert parse_retry_after(value) is None


def test_parse_retry_after_negative_seconds_mean_no_wait() -> None:
    assert parse_retry_after("-3") == 0.0


@pytest.mark.parametrize(
    ("cls", "parent"),
    [
        (InvalidRequestError, OutboundCallsError),
        (InvalidRequestError, ValueError),
        (TransportError, OutboundCallsError),
        (ConnectionFailedError, TransportError),
        (ConnectTimeoutError, ConnectionFailedError),
        (RequestTimeoutError, TransportError),
        (OutcomeUnknownError, TransportError),
        (APIStatusError, OutboundCallsError),
        (BadRequestError, APIStatusError),
        (AuthenticationError, APIStatusError),
        (InsufficientCreditsError, APIStatusError),
        (NotFoundError, APIStatusError),
        (RateLimitError, APIStatusError),
        (UpstreamError, APIStatusError),
        (ResponseValidationError, OutboundCallsError),
    ],
)
def test_the_tree_is_as_drawn(cls: type[Exception], parent: type[Exception]) -> None:
    assert issubclass(cls, parent)
