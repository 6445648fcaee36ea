"""The async OutboundCalls API client: one pooled httpx2 connection, one method per endpoint."""

from __future__ import annotations

import platform
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote

import httpx2
from pydantic import BaseModel, SecretStr

from outboundcalls.account import Account
from outboundcalls.agents import Agent
from outboundcalls.calls import CallDetail, CallSummary, NewCall
from outboundcalls.campaigns import Campaign
from outboundcalls.contacts import Contact, NewContact
from outboundcalls.errors import (
    ConnectionFailedError,
    ConnectTimeoutError,
    InvalidRequestError,
    OutcomeUnknownError,
    RequestTimeoutError,
    ResponseValidationError,
    TransportError,
    error_from_response,
    retry_after_of,
    scrub_secret,
)
from outboundcalls.retry import RETRYABLE_STATUSES, RetryPolicy
from outboundcalls.single_flight import SingleFlight
from outboundcalls.version import __version__
from outboundcalls.wire import parse_list, parse_one

__all__ = ["DEFAULT_BASE_URL", "OutboundCallsClient"]

DEFAULT_BASE_URL = "https://outboundcalls.ai/api/v1"

_AGENTS_MAX = 200
_CALLS_MAX = 200
_CONTACTS_MAX = 500
# Connecting and getting a pooled connection should be quick; a slow API answer is given longer.
_CONNECT_TIMEOUT_CAP = 5.0

ModelT = TypeVar("ModelT", bound=BaseModel)


USER_AGENT = f"outboundcalls-mcp/{__version__} httpx2/{httpx2.__version__} python/{platform.python_version()}"


def _check_limit(limit: int | None, maximum: int) -> int | None:
    """Refuse a limit outside 1..maximum before anything is sent."""
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise InvalidRequestError(f"limit must be a whole number from 1 to {maximum}, got {type(limit).__name__}")
    if not 1 <= limit <= maximum:
        raise InvalidRequestError(f"limit must be from 1 to {maximum}, got {limit}")
    return limit


def _segment(name: str, value: str) -> str:
    """An id as exactly one percent-encoded path segment."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequestError(f"{name} must be a non-empty string")
    encoded = quote(value, safe="")
    # "." and ".." survive quoting but would be resolved away as dot-segments by the URL parser.
    if set(encoded) == {"."}:
        encoded = encoded.replace(".", "%2E")
    return encoded


def _query(**params: str | int | None) -> dict[str, str | int]:
    """Query parameters with the ones not given left out."""
    return {key: value for key, value in params.items() if value is not None}


def _timeouts(timeout: float) -> httpx2.Timeout:
    """Explicit connect/read/write/pool timeouts from one overall figure."""
    if timeout <= 0:
        raise InvalidRequestError("timeout must be a positive number of seconds")
    quick = min(timeout, _CONNECT_TIMEOUT_CAP)
    return httpx2.Timeout(connect=quick, read=timeout, write=timeout, pool=quick)


# httpx2 keeps 20 idle connections by default: a server answering more concurrent reads than that
# (streamable HTTP, many sessions) closed and reopened connections on every call.
_LIMITS = httpx2.Limits(max_connections=100, max_keepalive_connections=100)


class OutboundCallsClient:
    """Async client for the OutboundCalls REST API; use with `async with` or call `aclose()`."""

    def __init__(
        self,
        api_key: str | SecretStr,
        *,
        base_url: str = DEFAULT_BASE_URL,
        transport: httpx2.AsyncBaseTransport | None = None,
        timeout: float = 15.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        key = api_key if isinstance(api_key, SecretStr) else SecretStr(api_key)
        raw = key.get_secret_value()
        if not isinstance(raw, str) or not raw.strip() or any(ch.isspace() for ch in raw):
            raise InvalidRequestError("api_key must be a non-empty string without whitespace")
        try:
            url = httpx2.URL(base_url)
        except (httpx2.InvalidURL, TypeError):
            raise InvalidRequestError("base_url is not a valid URL") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise InvalidRequestError("base_url must be an absolute http(s) URL")
        self._api_key = key
        self._base_url = str(url).rstrip("/")
        self._retry = retry if retry is not None else RetryPolicy()
        self._timeout = _timeouts(timeout)
        self._transport = transport
        self._pool: httpx2.AsyncClient | None = None
        self._closed = False
        # Identical concurrent GETs share one request (never across a write): see single_flight.py.
        self._reads: SingleFlight[tuple[str, tuple[tuple[str, str | int], ...]], bytes] = SingleFlight()

    @property
    def _http(self) -> httpx2.AsyncClient:
        """The pooled HTTP client, built on the first request."""
        # Not in __init__: building it loads the connection stack and the TLS trust store, which a
        # server spawned only to list its tools never needs.
        if self._pool is None:
            if self._closed:
                raise RuntimeError("Cannot send a request, as the client has been closed.")
            self._pool = httpx2.AsyncClient(
                base_url=self._base_url,
                transport=self._transport,
                timeout=self._timeout,
                headers={
                    "Authorization": f"Bearer {self._api_key.get_secret_value()}",
                    "User-Agent": USER_AGENT,
                    "Accept": "application/json",
                },
                follow_redirects=False,
                limits=_LIMITS,
                # Plain http (loopback only: the sandbox, tests, benchmarks) negotiates no TLS, and
                # redirects are not followed, so there is nothing to verify and no trust store to
                # load; https is always verified.
                verify=self._base_url.startswith("https://"),
            )
        return self._pool

    @property
    def base_url(self) -> str:
        """The API root every path is appended to."""
        return self._base_url

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self._base_url!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pooled connections (and the injected transport)."""
        self._closed = True
        if self._pool is not None:
            await self._pool.aclose()
        elif self._transport is not None:
            await self._transport.aclose()

    async def get_account(self) -> Account:
        """Your user info, credit balance and active subscription."""
        return parse_one(Account, await self._get("me"), "account")

    async def list_agents(self, *, status: str | None = None, limit: int | None = None) -> list[Agent]:
        """Agents, optionally filtered by status; limit 1..200."""
        params = _query(status=status, limit=_check_limit(limit, _AGENTS_MAX))
        return parse_list(Agent, await self._get("agents", params), "agents")

    async def get_agent(self, agent_id: str) -> Agent:
        """One agent by id."""
        return parse_one(Agent, await self._get(f"agents/{_segment('agent_id', agent_id)}"), "agent")

    async def list_contacts(self, *, contact_list_id: str | None = None, limit: int | None = None) -> list[Contact]:
        """Contacts, optionally in one contact list; limit 1..500."""
        params = _query(contactListId=contact_list_id, limit=_check_limit(limit, _CONTACTS_MAX))
        return parse_list(Contact, await self._get("contacts", params), "contacts")

    async def create_contact(self, new_contact: NewContact) -> Contact:
        """Create a contact; sent exactly once, never retried."""
        if not isinstance(new_contact, NewContact):
            raise InvalidRequestError("create_contact takes a NewContact")
        body = await self._post("contacts", new_contact.to_body(), "contact")
        return self._parse_created(Contact, body, "contact")

    async def list_calls(
        self,
        *,
        status: str | None = None,
        agent_id: str | None = None,
        campaign_id: str | None = None,
        limit: int | None = None,
    ) -> list[CallSummary]:
        """Calls, newest first, optionally filtered; limit 1..200."""
        params = _query(
            status=status,
            agentId=agent_id,
            campaignId=campaign_id,
            limit=_check_limit(limit, _CALLS_MAX),
        )
        return parse_list(CallSummary, await self._get("calls", params), "calls")

    async def get_call(self, call_id: str) -> CallDetail:
        """Full detail of one call, transcript included."""
        return parse_one(CallDetail, await self._get(f"calls/{_segment('call_id', call_id)}"), "call")

    async def create_call(self, new_call: NewCall) -> CallSummary:
        """Dispatch one outbound call (spends credits); sent exactly once, never retried."""
        if not isinstance(new_call, NewCall):
            raise InvalidRequestError("create_call takes a NewCall")
        body = await self._post("calls", new_call.to_body(), "call")
        return self._parse_created(CallSummary, body, "call")

    async def get_campaign(self, campaign_id: str) -> Campaign:
        """Progress of one campaign."""
        path = f"campaigns/{_segment('campaign_id', campaign_id)}"
        return parse_one(Campaign, await self._get(path), "campaign")

    def _parse_created(self, model: type[ModelT], body: bytes, noun: str) -> ModelT:
        """Parse a 2xx answer to a POST, saying plainly that the write did happen."""
        try:
            return parse_one(model, body, noun)
        except ResponseValidationError as exc:
            raise ResponseValidationError(
                f"the API accepted the request, so the {noun} was created, but {exc.message}"
            ) from exc

    async def _get(self, path: str, params: Mapping[str, str | int] | None = None) -> bytes:
        """The 2xx body of a GET, shared with identical GETs already in flight (retries included)."""
        key = (path, tuple(sorted(params.items())) if params else ())
        return await self._reads.run(key, lambda: self._fetch(path, params))

    async def _fetch(self, path: str, params: Mapping[str, str | int] | None) -> bytes:
        """GET with retries on connection errors, timeouts, 429 and 502/503/504; returns the 2xx body."""
        policy = self._retry
        waited = 0.0
        attempt = 0
        while True:
            attempt += 1
            retry_after: float | None = None
            cause: httpx2.HTTPError | None = None
            try:
                response = await self._http.get(path, params=params)
            except httpx2.HTTPError as exc:
                cause = exc
                failure: Exception = self._transport_failure(exc)
                if not isinstance(exc, httpx2.TransportError):
                    raise failure from exc
            else:
                if response.is_success:
                    return response.content
                failure = error_from_response(
                    response.status_code, response.headers, response.content, secret=self._secret
                )
                if response.status_code not in RETRYABLE_STATUSES:
                    raise failure
                retry_after = retry_after_of(response.headers)
            delay = policy.next_delay(attempt, waited, retry_after)
            if delay is None:
                raise failure from cause
            await policy.sleep(delay)
            waited += delay

    async def _post(self, path: str, body: dict[str, Any], noun: str) -> bytes:
        """POST exactly once; returns the 2xx body or raises saying whether anything happened."""
        # A read that left before this write began, or before it ended, may not see it; so no read
        # starting later joins it (dispatch, then list: the call is there), whatever the outcome.
        self._reads.new_generation()
        try:
            return await self._post_once(path, body, noun)
        finally:
            self._reads.new_generation()

    async def _post_once(self, path: str, body: dict[str, Any], noun: str) -> bytes:
        """Send the POST, translating every failure into whether the write may have happened."""
        try:
            response = await self._http.post(path, json=body)
        except httpx2.HTTPError as exc:
            raise self._transport_failure(exc, writing=noun) from exc
        if not response.is_success:
            raise error_from_response(response.status_code, response.headers, response.content, secret=self._secret)
        return response.content

    def _transport_failure(self, exc: httpx2.HTTPError, *, writing: str | None = None) -> TransportError:
        """An httpx2 failure in our tree, for the caller to chain; for a write, whether it may have happened."""
        detail = self._scrub(f"{type(exc).__name__}: {exc}")
        never_sent = isinstance(exc, httpx2.ConnectError | httpx2.ConnectTimeout | httpx2.PoolTimeout)
        if writing is not None and never_sent:
            cls = ConnectionFailedError if isinstance(exc, httpx2.ConnectError) else ConnectTimeoutError
            return cls(
                f"could not reach the API ({detail}); the request was never sent, "
                f"so no {writing} was created and it is safe to try again"
            )
        if writing is not None:
            return OutcomeUnknownError(
                f"the connection failed after the request was sent ({detail}); "
                f"the {writing} may or may not have been created and nothing was retried. "
                f"Check the {writing}s list before trying again"
            )
        if isinstance(exc, httpx2.ConnectTimeout | httpx2.PoolTimeout):
            return ConnectTimeoutError(f"timed out connecting to the API ({detail})")
        if isinstance(exc, httpx2.TimeoutException):
            return RequestTimeoutError(f"the API did not answer in time ({detail})")
        if isinstance(exc, httpx2.ConnectError):
            return ConnectionFailedError(f"could not reach the API ({detail})")
        return TransportError(f"the connection to the API failed ({detail})")

    @property
    def _secret(self) -> str:
        return self._api_key.get_secret_value()

    def _scrub(self, text: str) -> str:
        return scrub_secret(text, self._secret)
