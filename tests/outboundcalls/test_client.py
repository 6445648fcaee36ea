"""OutboundCallsClient over a MockTransport: what it sends, what it parses, and what it refuses to send."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import httpx2
import pytest
from pydantic import SecretStr

from outboundcalls import (
    DEFAULT_BASE_URL,
    Account,
    Agent,
    CallDetail,
    CallSummary,
    Campaign,
    Contact,
    InvalidRequestError,
    NewCall,
    NewContact,
    OutboundCallsClient,
    RetryPolicy,
)
from outboundcalls.version import __version__

pytestmark = pytest.mark.anyio

KEY = "oc_live_" + "Zq9x" * 8
CALL = {"id": "clxcall", "agentId": "clxagent", "toNumber": "+14155551212", "status": "queued"}


class Recorder:
    """A MockTransport handler that records requests and answers with one canned body."""

    def __init__(self, payload: Any = None, status: int = 200) -> None:
        self.payload = payload
        self.status = status
        self.requests: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        return httpx2.Response(self.status, json=self.payload)

    @property
    def raw_paths(self) -> list[bytes]:
        return [r.url.raw_path for r in self.requests]


async def _noop_sleep(_: float) -> None:
    return None


def _client(handler: Callable[[httpx2.Request], httpx2.Response], **kwargs: Any) -> OutboundCallsClient:
    return OutboundCallsClient(
        KEY, transport=httpx2.MockTransport(handler), retry=RetryPolicy(sleep=_noop_sleep), **kwargs
    )


Call = Callable[[OutboundCallsClient], Awaitable[Any]]

ENDPOINTS: list[tuple[str, Call, Any, str, bytes, type]] = [
    ("get_account", lambda c: c.get_account(), {"credits": 40}, "GET", b"/api/v1/me", Account),
    ("get_agent", lambda c: c.get_agent("clxagent"), {"id": "clxagent"}, "GET", b"/api/v1/agents/clxagent", Agent),
    ("get_call", lambda c: c.get_call("clxcall"), CALL, "GET", b"/api/v1/calls/clxcall", CallDetail),
    ("get_campaign", lambda c: c.get_campaign("k1"), {"id": "k1"}, "GET", b"/api/v1/campaigns/k1", Campaign),
    (
        "create_call",
        lambda c: c.create_call(NewCall(agent_id="clxagent", to_number="+14155551212")),
        CALL,
        "POST",
        b"/api/v1/calls",
        CallSummary,
    ),
    (
        "create_contact",
        lambda c: c.create_contact(NewContact(contact_list_id="l1", phone="+14155551212")),
        {"id": "ct1"},
        "POST",
        b"/api/v1/contacts",
        Contact,
    ),
]
LISTS: list[tuple[str, Call, str, bytes, type]] = [
    ("list_agents", lambda c: c.list_agents(), "agents", b"/api/v1/agents", Agent),
    ("list_contacts", lambda c: c.list_contacts(), "contacts", b"/api/v1/contacts", Contact),
    ("list_calls", lambda c: c.list_calls(), "calls", b"/api/v1/calls", CallSummary),
]


@pytest.mark.parametrize(
    ("name", "call", "payload", "method", "path", "model"), ENDPOINTS, ids=[e[0] for e in ENDPOINTS]
)
async def test_each_single_resource_method_hits_its_endpoint_and_returns_its_model(
    name: str, call: Call, payload: Any, method: str, path: bytes, model: type
) -> None:
    recorder = Recorder(payload)
    async with _client(recorder) as client:
        result = await call(client)
    assert isinstance(result, model)
    assert [(r.method, r.url.raw_path) for r in recorder.requests] == [(method, path)]


@pytest.mark.parametrize(("name", "call", "plural", "path", "model"), LISTS, ids=[e[0] for e in LISTS])
@pytest.mark.parametrize("envelope", ["bare", "plural", "data", "items"])
async def test_each_list_method_accepts_every_envelope(
    name: str, call: Call, plural: str, path: bytes, model: type, envelope: str
) -> None:
    items = [CALL, {**CALL, "id": "clx2"}]
    payload = items if envelope == "bare" else {plural if envelope == "plural" else envelope: items}
    recorder = Recorder(payload)
    async with _client(recorder) as client:
        result = await call(client)
    assert [type(r) for r in result] == [model, model]
    assert [r.id for r in result] == ["clxcall", "clx2"]
    assert recorder.raw_paths == [path]


@pytest.mark.parametrize("status", [200, 201])
async def test_create_call_accepts_200_or_201_wrapped_or_bare(status: int) -> None:
    async with _client(Recorder({"call": CALL}, status=status)) as client:
        call = await client.create_call(NewCall(agent_id="clxagent", to_number="+14155551212"))
    assert call.id == "clxcall"


async def test_every_request_carries_bearer_key_user_agent_and_json_accept() -> None:
    recorder = Recorder({"credits": 1})
    async with _client(recorder) as client:
        await client.get_account()
    headers = recorder.requests[0].headers
    assert headers["authorization"] == f"Bearer {KEY}"
    assert headers["accept"] == "application/json"
    assert re.fullmatch(
        rf"outboundcalls-mcp/{re.escape(__version__)} httpx2/\S+ python/3\.\d+\.\S+", headers["user-agent"]
    )


async def test_secret_str_key_is_sent_the_same_way() -> None:
    recorder = Recorder({"credits": 1})
    async with OutboundCallsClient(SecretStr(KEY), transport=httpx2.MockTransport(recorder)) as client:
        await client.get_account()
    assert recorder.requests[0].headers["authorization"] == f"Bearer {KEY}"


async def test_timeouts_are_explicit_for_every_phase() -> None:
    recorder = Recorder({"credits": 1})
    async with _client(recorder, timeout=20.0) as client:
        await client.get_account()
    assert recorder.requests[0].extensions["timeout"] == {"connect": 5.0, "read": 20.0, "write": 20.0, "pool": 5.0}


async def test_custom_base_url_is_used_for_every_path() -> None:
    recorder = Recorder({"credits": 1})
    async with _client(recorder, base_url="http://127.0.0.1:8765/api/v1/") as client:
        await client.get_account()
    assert str(recorder.requests[0].url) == "http://127.0.0.1:8765/api/v1/me"


def test_default_base_url_is_the_vendors() -> None:
    assert DEFAULT_BASE_URL == "https://outboundcalls.ai/api/v1"
    assert OutboundCallsClient(KEY).base_url == DEFAULT_BASE_URL


def test_repr_shows_the_base_url_and_never_the_key() -> None:
    client = OutboundCallsClient(SecretStr(KEY))
    assert repr(client) == "OutboundCallsClient(base_url='https://outboundcalls.ai/api/v1')"
    assert KEY not in str(client) and KEY not in repr(vars(client))


@pytest.mark.parametrize("key", ["", "   ", "oc_live_ abc", SecretStr("")])
def test_empty_or_spaced_key_is_refused_without_echoing_it(key: str | SecretStr) -> None:
    with pytest.raises(InvalidRequestError) as info:
        OutboundCallsClient(key)
    assert "oc_live_ abc" not in str(info.value)


@pytest.mark.parametrize("base_url", ["ftp://example.com", "not a url", "/api/v1"])
def test_non_http_base_url_is_refused(base_url: str) -> None:
    with pytest.raises(InvalidRequestError):
        OutboundCallsClient(KEY, base_url=base_url)


def test_non_positive_timeout_is_refused() -> None:
    with pytest.raises(InvalidRequestError):
        OutboundCallsClient(KEY, timeout=0)


async def test_list_without_filters_sends_no_query_at_all() -> None:
    recorder = Recorder({"calls": []})
    async with _client(recorder) as client:
        await client.list_calls(status=None, agent_id=None, campaign_id=None, limit=None)
    assert recorder.raw_paths == [b"/api/v1/calls"]


async def test_list_calls_sends_given_filters_with_wire_names() -> None:
    recorder = Recorder({"calls": []})
    async with _client(recorder) as client:
        await client.list_calls(status="completed", agent_id="a&b", campaign_id="k1", limit=200)
    assert recorder.raw_paths == [b"/api/v1/calls?status=completed&agentId=a%26b&campaignId=k1&limit=200"]


async def test_list_contacts_sends_contact_list_id_and_limit_up_to_500() -> None:
    recorder = Recorder({"contacts": []})
    async with _client(recorder) as client:
        await client.list_contacts(contact_list_id="l1", limit=500)
    assert recorder.raw_paths == [b"/api/v1/contacts?contactListId=l1&limit=500"]


async def test_list_agents_sends_only_the_filters_given() -> None:
    recorder = Recorder({"agents": []})
    async with _client(recorder) as client:
        await client.list_agents(status="deployed")
    assert recorder.raw_paths == [b"/api/v1/agents?status=deployed"]


LIMITED: list[tuple[str, Callable[[OutboundCallsClient, Any], Awaitable[Any]], int]] = [
    ("list_agents", lambda c, n: c.list_agents(limit=n), 200),
    ("list_calls", lambda c, n: c.list_calls(limit=n), 200),
    ("list_contacts", lambda c, n: c.list_contacts(limit=n), 500),
]


@pytest.mark.parametrize(("name", "call", "maximum"), LIMITED, ids=[x[0] for x in LIMITED])
@pytest.mark.parametrize("offset", ["over", "zero", "negative", "float", "bool", "string"])
async def test_limit_out_of_range_is_refused_and_never_sent(
    name: str, call: Callable[[OutboundCallsClient, Any], Awaitable[Any]], maximum: int, offset: str
) -> None:
    bad = {"over": maximum + 1, "zero": 0, "negative": -1, "float": 10.0, "bool": True, "string": "10"}[offset]
    recorder = Recorder([])
    async with _client(recorder) as client:
        with pytest.raises(InvalidRequestError, match="limit"):
            await call(client, bad)
    assert recorder.requests == []


ID_METHODS: list[tuple[str, Callable[[OutboundCallsClient, str], Awaitable[Any]], bytes]] = [
    ("get_agent", lambda c, i: c.get_agent(i), b"/api/v1/agents/"),
    ("get_call", lambda c, i: c.get_call(i), b"/api/v1/calls/"),
    ("get_campaign", lambda c, i: c.get_campaign(i), b"/api/v1/campaigns/"),
]
HOSTILE_IDS = [
    ("../me", b"..%2Fme"),
    ("a?b=c", b"a%3Fb%3Dc"),
    ("x#y", b"x%23y"),
    ("a/b", b"a%2Fb"),
    ("..", b"%2E%2E"),
    (".", b"%2E"),
    ("%2F", b"%252F"),
    ("a b", b"a%20b"),
    ("caf\u00e9", b"caf%C3%A9"),
    ("clx.v2", b"clx.v2"),
]


@pytest.mark.parametrize(("name", "call", "prefix"), ID_METHODS, ids=[x[0] for x in ID_METHODS])
@pytest.mark.parametrize(("raw_id", "segment"), HOSTILE_IDS, ids=[x[0] for x in HOSTILE_IDS])
async def test_id_is_sent_as_exactly_one_encoded_path_segment(
    name: str, call: Callable[[OutboundCallsClient, str], Awaitable[Any]], prefix: bytes, raw_id: str, segment: bytes
) -> None:
    recorder = Recorder({"id": raw_id, "status": "queued"})
    async with _client(recorder) as client:
        await call(client, raw_id)
    assert recorder.raw_paths == [prefix + segment]
    assert recorder.requests[0].url.query == b""


@pytest.mark.parametrize(("name", "call", "prefix"), ID_METHODS, ids=[x[0] for x in ID_METHODS])
@pytest.mark.parametrize("raw_id", ["", "   ", "\t\n"])
async def test_empty_id_is_refused_and_never_sent(
    name: str, call: Callable[[OutboundCallsClient, str], Awaitable[Any]], prefix: bytes, raw_id: str
) -> None:
    recorder = Recorder({"id": "x"})
    async with _client(recorder) as client:
        with pytest.raises(InvalidRequestError):
            await call(client, raw_id)
    assert recorder.requests == []


async def test_create_call_sends_only_the_fields_given_as_json() -> None:
    recorder = Recorder(CALL, status=201)
    async with _client(recorder) as client:
        await client.create_call(NewCall(agent_id="clxagent", to_number="+14155551212"))
    request = recorder.requests[0]
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {"agentId": "clxagent", "toNumber": "+14155551212"}


async def test_create_call_sends_optional_fields_when_given() -> None:
    recorder = Recorder(CALL, status=201)
    async with _client(recorder) as client:
        await client.create_call(NewCall(agent_id="a", to_number="+1", phone_number_id="p", contact_id="c"))
    assert json.loads(recorder.requests[0].content) == {
        "agentId": "a",
        "toNumber": "+1",
        "phoneNumberId": "p",
        "contactId": "c",
    }


async def test_create_contact_sends_only_the_fields_given_as_json() -> None:
    recorder = Recorder({"contact": {"id": "ct1", "tags": ["lead"]}}, status=201)
    async with _client(recorder) as client:
        contact = await client.create_contact(NewContact(contact_list_id="l1", phone="+1415", tags=["lead"]))
    assert json.loads(recorder.requests[0].content) == {"contactListId": "l1", "phone": "+1415", "tags": ["lead"]}
    assert contact.tags == ["lead"]


@pytest.mark.parametrize(
    "call",
    [lambda c: c.create_call({"agentId": "a", "toNumber": "+1"}), lambda c: c.create_contact({"phone": "+1"})],
    ids=["create_call", "create_contact"],
)
async def test_create_methods_refuse_a_plain_dict_and_send_nothing(call: Call) -> None:
    recorder = Recorder({})
    async with _client(recorder) as client:
        with pytest.raises(InvalidRequestError):
            await call(client)
    assert recorder.requests == []


class ClosingTransport(httpx2.AsyncBaseTransport):
    """Records whether the client closed it."""

    def __init__(self) -> None:
        self.closed = False

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, json={"credits": 1})

    async def aclose(self) -> None:
        self.closed = True


async def test_leaving_async_with_closes_the_pool() -> None:
    transport = ClosingTransport()
    async with OutboundCallsClient(KEY, transport=transport) as client:
        await client.get_account()
    assert transport.closed


async def test_aclose_closes_the_pool() -> None:
    transport = ClosingTransport()
    client = OutboundCallsClient(KEY, transport=transport)
    await client.aclose()
    assert transport.closed
