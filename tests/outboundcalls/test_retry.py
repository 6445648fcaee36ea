"""RetryPolicy arithmetic: full-jitter backoff, attempt cap, Retry-After capped by the wait budget."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from outboundcalls import (
    APIStatusError,
    ConnectionFailedError,
    NewCall,
    NewContact,
    OutboundCallsClient,
    OutboundCallsError,
    RateLimitError,
    RequestTimeoutError,
    UpstreamError,
)
from outboundcalls.retry import RETRYABLE_STATUSES, RetryPolicy
from tests.outboundcalls.recorded_sleep import Sleeps

pytestmark = pytest.mark.anyio


def _policy(rand: float = 1.0, **kwargs: Any) -> RetryPolicy:
    return RetryPolicy(random=lambda: rand, **kwargs)


def test_defaults_are_three_attempts_within_five_seconds() -> None:
    policy = RetryPolicy()
    assert (policy.max_attempts, policy.base_delay, policy.max_delay, policy.max_total_wait) == (3, 0.25, 2.0, 5.0)


def test_backoff_doubles_per_attempt_at_full_jitter_ceiling() -> None:
    policy = _policy()
    assert [policy.backoff(n) for n in (1, 2, 3)] == [0.25, 0.5, 1.0]


def test_backoff_is_capped_at_max_delay() -> None:
    assert _policy().backoff(10) == 2.0


def test_full_jitter_scales_the_ceiling_by_the_random_draw() -> None:
    assert _policy(rand=0.5).backoff(2) == 0.25
    assert _policy(rand=0.0).backoff(3) == 0.0


def test_no_delay_after_the_last_attempt() -> None:
    assert _policy().next_delay(3, waited=0.0) is None


def test_backoff_is_cut_to_what_remains_of_the_budget() -> None:
    assert _policy(max_total_wait=1.0).next_delay(2, waited=0.75) == 0.25


def test_retry_after_is_honoured_when_it_fits_the_budget() -> None:
    assert _policy().next_delay(1, waited=1.0, retry_after=4.0) == 4.0


def test_retry_after_beyond_the_budget_gives_up() -> None:
    assert _policy().next_delay(1, waited=1.0, retry_after=4.5) is None


def test_retryable_statuses_are_rate_limit_and_gateway_errors() -> None:
    assert RETRYABLE_STATUSES == {429, 502, 503, 504}


@pytest.mark.parametrize("kwargs", [{"max_attempts": 0}, {"base_delay": -1.0}, {"max_total_wait": -0.1}])
def test_nonsense_policies_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)


# Through the client: retries happen for reads only, and every wait goes through the injected sleep.

KEY = "oc_live_" + "Zq9x" * 8
Step = httpx2.Response | type[httpx2.RequestError]


class Script:
    """A MockTransport handler that plays responses (or raises exceptions) in order."""

    def __init__(self, *steps: Step) -> None:
        self.steps = list(steps)
        self.requests: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        step = self.steps[min(len(self.requests), len(self.steps)) - 1]
        if isinstance(step, httpx2.Response):
            return step
        raise step("scripted failure", request=request)


def _client(script: Script, sleeps: Sleeps, **policy: Any) -> OutboundCallsClient:
    retry = RetryPolicy(sleep=sleeps, random=lambda: 1.0, **policy)
    return OutboundCallsClient(KEY, transport=httpx2.MockTransport(script), retry=retry)


OK = httpx2.Response(200, json={"credits": 30})


def _status(code: int, retry_after: str | None = None) -> httpx2.Response:
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    return httpx2.Response(code, json={"error": "try later"}, headers=headers)


@pytest.mark.parametrize("code", [429, 502, 503, 504])
async def test_get_is_retried_on_a_retryable_status_then_succeeds(code: int) -> None:
    script, sleeps = Script(_status(code), OK), Sleeps()
    async with _client(script, sleeps) as client:
        account = await client.get_account()
    assert account.credits == 30.0
    assert len(script.requests) == 2
    assert sleeps.delays == [0.25]


async def test_a_503_on_a_get_is_retried_then_succeeds() -> None:
    script, sleeps = Script(_status(503), httpx2.Response(200, json={"calls": []})), Sleeps()
    async with _client(script, sleeps) as client:
        assert await client.list_calls() == []
    assert [r.method for r in script.requests] == ["GET", "GET"]


async def test_retries_stop_at_three_attempts_with_exponential_backoff() -> None:
    script, sleeps = Script(_status(502)), Sleeps()
    async with _client(script, sleeps) as client:
        with pytest.raises(UpstreamError):
            await client.get_account()
    assert len(script.requests) == 3
    assert sleeps.delays == [0.25, 0.5]


async def test_a_policy_of_one_attempt_never_retries() -> None:
    script, sleeps = Script(_status(503)), Sleeps()
    async with _client(script, sleeps, max_attempts=1) as client:
        with pytest.raises(UpstreamError):
            await client.get_account()
    assert (len(script.requests), sleeps.delays) == (1, [])


@pytest.mark.parametrize("exc_type", [httpx2.ConnectError, httpx2.ReadTimeout, httpx2.ReadError])
async def test_get_is_retried_after_a_transport_failure_then_succeeds(exc_type: type[httpx2.RequestError]) -> None:
    script, sleeps = Script(exc_type, exc_type, OK), Sleeps()
    async with _client(script, sleeps) as client:
        await client.get_account()
    assert len(script.requests) == 3
    assert sleeps.delays == [0.25, 0.5]


async def test_get_timeouts_after_the_retries_are_request_timeouts() -> None:
    script, sleeps = Script(httpx2.ReadTimeout), Sleeps()
    async with _client(script, sleeps) as client:
        with pytest.raises(RequestTimeoutError):
            await client.get_call("c1")
    assert len(script.requests) == 3


async def test_get_connection_errors_after_the_retries_are_connection_failures() -> None:
    script, sleeps = Script(httpx2.ConnectError), Sleeps()
    async with _client(script, sleeps) as client:
        with pytest.raises(ConnectionFailedError):
            await client.list_agents()
    assert len(script.requests) == 3


async def test_retry_after_seconds_is_honoured_exactly() -> None:
    script, sleeps = Script(_status(429, "1.5"), OK), Sleeps()
    async with _client(script, sleeps) as client:
        await client.get_account()
    assert sleeps.delays == [1.5]


async def test_retry_after_on_503_is_honoured_too() -> None:
    script, sleeps = Script(_status(503, "2"), OK), Sleeps()
    async with _client(script, sleeps) as client:
        await client.get_account()
    assert sleeps.delays == [2.0]


async def test_retry_after_beyond_the_budget_raises_at_once_without_waiting() -> None:
    script, sleeps = Script(_status(429, "60"), OK), Sleeps()
    async with _client(script, sleeps) as client:
        with pytest.raises(RateLimitError) as info:
            await client.get_account()
    assert info.value.retry_after == 60.0
    assert (len(script.requests), sleeps.delays) == (1, [])


async def test_retry_after_waits_count_against_the_total_budget() -> None:
    script, sleeps = Script(_status(429, "3"), _status(429, "3"), OK), Sleeps()
    async with _client(script, sleeps) as client:
        with pytest.raises(RateLimitError):
            await client.get_account()
    assert (len(script.requests), sleeps.delays) == (2, [3.0])


@pytest.mark.parametrize("code", [400, 401, 402, 404])
async def test_client_errors_on_get_are_not_retried(code: int) -> None:
    script, sleeps = Script(_status(code)), Sleeps()
    async with _client(script, sleeps) as client:
        with pytest.raises(APIStatusError):
            await client.get_account()
    assert (len(script.requests), sleeps.delays) == (1, [])


@pytest.mark.parametrize(
    "step", [_status(502), _status(503), _status(429, "0"), httpx2.ReadTimeout, httpx2.ConnectError]
)
async def test_post_calls_is_sent_exactly_once_whatever_happens(step: Step) -> None:
    script, sleeps = Script(step, httpx2.Response(201, json={"id": "c", "status": "queued"})), Sleeps()
    async with _client(script, sleeps) as client:
        with pytest.raises(OutboundCallsError):
            await client.create_call(NewCall(agent_id="a", to_number="+14155551212"))
    assert (len(script.requests), sleeps.delays) == (1, [])


@pytest.mark.parametrize("step", [_status(503), httpx2.WriteTimeout, httpx2.PoolTimeout])
async def test_post_contacts_is_sent_exactly_once_whatever_happens(step: Step) -> None:
    script, sleeps = Script(step, httpx2.Response(201, json={"id": "ct"})), Sleeps()
    async with _client(script, sleeps) as client:
        with pytest.raises(OutboundCallsError):
            await client.create_contact(NewContact(contact_list_id="l1", phone="+14155551212"))
    assert (len(script.requests), sleeps.delays) == (1, [])
