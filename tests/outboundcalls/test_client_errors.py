"""How the client fails: status codes, malformed 2xx bodies, transport errors, and never leaking the key."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx2
import pytest

from outboundcalls import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ConnectionFailedError,
    ConnectTimeoutError,
    InsufficientCreditsError,
    NewCall,
    NewContact,
    NotFoundError,
    OutboundCallsClient,
    OutboundCallsError,
    OutcomeUnknownError,
    RateLimitError,
    RequestTimeoutError,
    ResponseValidationError,
    RetryPolicy,
    TransportError,
    UpstreamError,
)

pytestmark = pytest.mark.anyio

KEY = "oc_live_" + "Zq9x" * 8
Handler = Callable[[httpx2.Request], httpx2.Response]
Call = Callable[[OutboundCallsClient], Awaitable[Any]]


async def _noop_sleep(_: float) -> None:
    return None


class Counting:
    """Wraps a handler and counts the requests it saw."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.count = 0

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.count += 1
        return self.handler(request)


def _client(handler: Handler) -> OutboundCallsClient:
    return OutboundCallsClient(KEY, transport=httpx2.MockTransport(handler), retry=RetryPolicy(sleep=_noop_sleep))


def _raising(exc_type: type[httpx2.RequestError], text: str = "boom") -> Handler:
    def handler(request: httpx2.Request) -> httpx2.Response:
        raise exc_type(text, request=request)

    return handler


def _answer(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Handler:
    return lambda request: httpx2.Response(status, content=body, headers=headers)


def create_call(client: OutboundCallsClient) -> Awaitable[Any]:
    return client.create_call(NewCall(agent_id="clxagent", to_number="+14155551212"))


def create_contact(client: OutboundCallsClient) -> Awaitable[Any]:
    return client.create_contact(NewContact(contact_list_id="l1", phone="+14155551212"))


def list_calls_with_the_key_as_limit(client: OutboundCallsClient) -> Awaitable[Any]:
    return client.list_calls(limit=KEY)  # type: ignore[arg-type]  # the wrong type on purpose


POSTS: list[tuple[str, Call]] = [("create_call", create_call), ("create_contact", create_contact)]
POST_IDS = [p[0] for p in POSTS]


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (402, InsufficientCreditsError),
        (404, NotFoundError),
        (409, APIStatusError),
        (422, APIStatusError),
        (500, UpstreamError),
    ],
)
async def test_get_status_maps_to_its_error_without_retrying(status: int, cls: type[APIStatusError]) -> None:
    handler = Counting(_answer(status, b'{"error": {"message": "nope", "code": "c1"}}', {"x-request-id": "r1"}))
    async with _client(handler) as client:
        with pytest.raises(cls) as info:
            await client.get_agent("a1")
    assert type(info.value) is cls
    assert (info.value.status, info.value.message, info.value.code, info.value.request_id) == (
        status,
        "nope",
        "c1",
        "r1",
    )
    assert handler.count == 1


async def test_402_on_create_call_is_insufficient_credits() -> None:
    async with _client(_answer(402, b'{"error": "Insufficient credits"}')) as client:
        with pytest.raises(InsufficientCreditsError, match="Insufficient credits"):
            await create_call(client)


@pytest.mark.parametrize("name,call", POSTS, ids=POST_IDS)
@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
async def test_post_is_never_retried_on_a_retryable_status(name: str, call: Call, status: int) -> None:
    handler = Counting(_answer(status, b"", {"retry-after": "0"}))
    async with _client(handler) as client:
        with pytest.raises(APIStatusError):
            await call(client)
    assert handler.count == 1


async def test_post_calls_is_never_retried_on_502() -> None:
    handler = Counting(_answer(502, b'{"error": "Upstream telephony provider error"}'))
    async with _client(handler) as client:
        with pytest.raises(UpstreamError) as info:
            await create_call(client)
    assert handler.count == 1
    assert info.value.status == 502


@pytest.mark.parametrize("name,call", POSTS, ids=POST_IDS)
@pytest.mark.parametrize(
    "exc_type",
    [httpx2.ReadTimeout, httpx2.WriteTimeout, httpx2.ReadError, httpx2.WriteError, httpx2.RemoteProtocolError],
)
async def test_post_failing_after_it_may_have_left_is_outcome_unknown_and_sent_once(
    name: str, call: Call, exc_type: type[httpx2.RequestError]
) -> None:
    handler = Counting(_raising(exc_type))
    async with _client(handler) as client:
        with pytest.raises(OutcomeUnknownError) as info:
            await call(client)
    noun = name.removeprefix("create_")
    assert f"the {noun} may or may not have been created" in str(info.value)
    assert "nothing was retried" in str(info.value)
    assert isinstance(info.value.__cause__, exc_type)
    assert handler.count == 1


async def test_read_timeout_on_post_calls_is_outcome_unknown() -> None:
    async with _client(_raising(httpx2.ReadTimeout)) as client:
        with pytest.raises(OutcomeUnknownError, match="call may or may not have been created"):
            await create_call(client)


@pytest.mark.parametrize("name,call", POSTS, ids=POST_IDS)
@pytest.mark.parametrize(
    ("exc_type", "cls"),
    [
        (httpx2.ConnectError, ConnectionFailedError),
        (httpx2.ConnectTimeout, ConnectTimeoutError),
        (httpx2.PoolTimeout, ConnectTimeoutError),
    ],
)
async def test_post_failing_before_it_left_is_connection_failed_and_sent_once(
    name: str, call: Call, exc_type: type[httpx2.RequestError], cls: type[ConnectionFailedError]
) -> None:
    handler = Counting(_raising(exc_type))
    async with _client(handler) as client:
        with pytest.raises(ConnectionFailedError) as info:
            await call(client)
    assert type(info.value) is cls
    assert "never sent" in str(info.value)
    assert handler.count == 1


@pytest.mark.parametrize(
    ("exc_type", "cls"),
    [
        (httpx2.ConnectError, ConnectionFailedError),
        (httpx2.ConnectTimeout, ConnectTimeoutError),
        (httpx2.PoolTimeout, ConnectTimeoutError),
        (httpx2.ReadTimeout, RequestTimeoutError),
        (httpx2.WriteTimeout, RequestTimeoutError),
        (httpx2.ReadError, TransportError),
        (httpx2.RemoteProtocolError, TransportError),
    ],
)
async def test_get_transport_failures_translate_after_retries(
    exc_type: type[httpx2.RequestError], cls: type[TransportError]
) -> None:
    handler = Counting(_raising(exc_type))
    async with _client(handler) as client:
        with pytest.raises(TransportError) as info:
            await client.list_calls()
    assert type(info.value) is cls
    assert isinstance(info.value.__cause__, exc_type)
    assert handler.count == 3


async def test_non_transport_httpx2_error_is_translated_not_leaked() -> None:
    handler = Counting(_raising(httpx2.DecodingError))
    async with _client(handler) as client:
        with pytest.raises(TransportError) as info:
            await client.get_account()
    assert not isinstance(info.value, httpx2.HTTPError)
    assert handler.count == 1


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty"),
        (b"<html>ok</html>", "not valid JSON"),
        (b'{"user": {"id": "u1"}}', "credits"),
        (b'{"credits": "lots"}', "credits"),
        (b"[1, 2]", "array"),
    ],
    ids=["empty", "html", "missing-credits", "non-numeric-credits", "array"],
)
async def test_2xx_body_that_does_not_fit_is_response_validation_error(body: bytes, reason: str) -> None:
    async with _client(_answer(200, body)) as client:
        with pytest.raises(ResponseValidationError, match=reason):
            await client.get_account()


async def test_2xx_call_without_id_names_the_missing_field() -> None:
    async with _client(_answer(200, b'{"call": {"status": "queued"}}')) as client:
        with pytest.raises(ResponseValidationError, match=r"call\.id"):
            await client.get_call("c1")


async def test_unreadable_2xx_after_create_call_says_the_call_was_created() -> None:
    handler = Counting(_answer(201, b"not json"))
    async with _client(handler) as client:
        with pytest.raises(ResponseValidationError, match="the call was created"):
            await create_call(client)
    assert handler.count == 1


def _leak_scenarios() -> list[tuple[str, Handler, Call]]:
    echo_json = f'{{"error": {{"message": "bad key {KEY}", "code": "{KEY}"}}}}'.encode()
    echo_html = f"<html><body><p>Authorization: Bearer {KEY}</p></body></html>".encode()
    return [
        ("401-json-echo", _answer(401, echo_json), lambda c: c.get_account()),
        ("502-html-echo", _answer(502, echo_html), lambda c: c.get_account()),
        ("429-header-echo", _answer(429, b"", {"x-request-id": KEY, "retry-after": "999"}), lambda c: c.list_agents()),
        ("post-402-echo", _answer(402, echo_json), create_call),
        ("2xx-malformed-echo", _answer(200, f'{{"agent": {{"name": "{KEY}"}}}}'.encode()), lambda c: c.get_agent("a")),
        ("2xx-bad-type-echo", _answer(200, f'{{"credits": "{KEY}"}}'.encode()), lambda c: c.get_account()),
        ("get-connect-echo", _raising(httpx2.ConnectError, f"refused {KEY}"), lambda c: c.get_account()),
        ("get-timeout-echo", _raising(httpx2.ReadTimeout, f"slow {KEY}"), lambda c: c.get_account()),
        ("post-connect-echo", _raising(httpx2.ConnectError, f"refused {KEY}"), create_call),
        ("post-timeout-echo", _raising(httpx2.ReadTimeout, f"slow {KEY}"), create_call),
        ("post-drop-echo", _raising(httpx2.RemoteProtocolError, f"drop {KEY}"), create_contact),
        ("bad-limit", _answer(200, b"[]"), list_calls_with_the_key_as_limit),
        ("bad-id", _answer(200, b"{}"), lambda c: c.get_call("   ")),
    ]


LEAKS = _leak_scenarios()


@pytest.mark.parametrize(("name", "handler", "call"), LEAKS, ids=[s[0] for s in LEAKS])
async def test_the_api_key_never_appears_in_any_error_text(name: str, handler: Handler, call: Call) -> None:
    async with _client(handler) as client:
        with pytest.raises(OutboundCallsError) as info:
            await call(client)
        texts = [str(info.value), repr(info.value), repr(client), *map(str, vars(info.value).values())]
    assert not isinstance(info.value, httpx2.HTTPError)
    for text in texts:
        assert KEY not in text


async def test_rate_limit_error_carries_retry_after_when_not_retried() -> None:
    handler = Counting(_answer(429, b"", {"retry-after": "120"}))
    async with _client(handler) as client:
        with pytest.raises(RateLimitError) as info:
            await client.list_agents()
    assert info.value.retry_after == 120.0
    assert handler.count == 1
