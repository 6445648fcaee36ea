"""Identical concurrent reads share one upstream GET, never across a write, and nothing is kept after it lands."""

from __future__ import annotations

import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import anyio
import anyio.abc
import httpx2
import pytest

from outboundcalls import (
    Account,
    CallSummary,
    NewCall,
    NotFoundError,
    OutboundCallsClient,
    OutboundCallsError,
    RetryPolicy,
    TransportError,
    UpstreamError,
)
from outboundcalls.sandbox import Fault, Sandbox
from tests.outboundcalls.recorded_sleep import Sleeps

pytestmark = pytest.mark.anyio

KEY = "oc_live_" + "Sf1t" * 8
US_NUMBER = "+14155551212"
READERS = 8
# Only turns a hang (a waiter never woken) into a failure; nothing is timed.
HANG_GUARD_SECONDS = 10


class Doors(httpx2.AsyncBaseTransport):
    """Holds each request at its method's door until the test opens it, so concurrent calls surely overlap."""

    def __init__(self, inner: httpx2.AsyncBaseTransport, *, answer_reads_first: bool = False) -> None:
        self._inner = inner
        # Answered first, a read's answer is fixed before the test moves on, and only its delivery waits.
        self._answer_reads_first = answer_reads_first
        self._doors: dict[str, anyio.Event] = {}
        self._news: anyio.Event | None = None
        self.arrivals: list[str] = []

    def _door(self, method: str) -> anyio.Event:
        if method not in self._doors:
            self._doors[method] = anyio.Event()
        return self._doors[method]

    def open(self, method: str) -> None:
        """Let every held and later request with this method through."""
        self._door(method).set()

    async def arrived(self, count: int) -> None:
        """Wait until `count` requests have reached the doors."""
        while len(self.arrivals) < count:
            self._news = anyio.Event()
            await self._news.wait()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.arrivals.append(request.method)
        if self._news is not None:
            self._news.set()
        if request.method == "GET" and self._answer_reads_first:
            response = await self._inner.handle_async_request(request)
            await self._door("GET").wait()
            return response
        await self._door(request.method).wait()
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


@pytest.fixture
def sandbox() -> Sandbox:
    return Sandbox(api_key=KEY, seed=0)


def _client(sandbox: Sandbox, sleeps: Sleeps, transport: httpx2.AsyncBaseTransport) -> OutboundCallsClient:
    return OutboundCallsClient(
        KEY, base_url=sandbox.base_url, transport=transport, retry=RetryPolicy(sleep=sleeps, random=lambda: 1.0)
    )


@pytest.fixture
def doors(sandbox: Sandbox) -> Doors:
    return Doors(sandbox.transport())


@pytest.fixture
async def api(sandbox: Sandbox, sleeps: Sleeps, doors: Doors) -> AsyncIterator[OutboundCallsClient]:
    async with _client(sandbox, sleeps, doors) as client:
        yield client


async def _call(
    call: Callable[[], Awaitable[Any]],
    outcomes: list[Any],
    scope: anyio.CancelScope | None = None,
    *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Run one call, keeping its result or client error; started() first, so the call is made before start returns."""
    task_status.started()
    with scope or anyio.CancelScope():
        try:
            outcomes.append(await call())
        except OutboundCallsError as exc:
            outcomes.append(exc)


@asynccontextmanager
async def _together() -> AsyncIterator[anyio.abc.TaskGroup]:
    """A task group whose tasks a test starts one by one (each reaches its first wait before the next)."""
    with anyio.fail_after(HANG_GUARD_SECONDS):
        async with anyio.create_task_group() as group:
            yield group


async def _read_concurrently(call: Callable[[], Awaitable[Any]], doors: Doors, n: int = READERS) -> list[Any]:
    """Start n identical calls while the first one's request is held, then let it through."""
    outcomes: list[Any] = []
    async with _together() as group:
        for _ in range(n):
            await group.start(_call, call, outcomes)
        doors.open("GET")
    return outcomes


async def test_identical_concurrent_reads_share_one_upstream_get(
    api: OutboundCallsClient, sandbox: Sandbox, doors: Doors
) -> None:
    accounts = await _read_concurrently(api.get_account, doors)
    assert sandbox.count("GET", "/me") == 1
    assert len(accounts) == READERS
    assert all(isinstance(a, Account) and a == accounts[0] for a in accounts)
    assert accounts[0].credits == sandbox.credits
    # Each caller parsed the shared body itself: no caller can change another's result.
    assert len({id(a) for a in accounts}) == READERS


async def test_concurrent_reads_with_different_params_send_separate_requests(
    api: OutboundCallsClient, sandbox: Sandbox, doors: Doors
) -> None:
    outcomes: list[Any] = []
    async with _together() as group:
        for limit in (5, 7, 5, 7):
            await group.start(_call, partial(api.list_calls, limit=limit), outcomes)
        await group.start(_call, partial(api.list_calls, limit=5, status="completed"), outcomes)
        await group.start(_call, api.get_account, outcomes)
        doors.open("GET")
    queries = sorted(tuple(sorted(r.query.items())) for r in sandbox.requests if r.path == "/calls")
    assert queries == [(("limit", "5"),), (("limit", "5"), ("status", "completed")), (("limit", "7"),)]
    assert sandbox.count("GET", "/me") == 1
    assert sorted(len(o) for o in outcomes if isinstance(o, list)) == [5, 5, 5, 7, 7]


async def test_sequential_identical_reads_each_send_their_own_request(
    api: OutboundCallsClient, sandbox: Sandbox, doors: Doors
) -> None:
    doors.open("GET")
    first = await api.get_account()
    sandbox.credits = first.credits - 100
    second = await api.get_account()
    await api.get_account()
    assert sandbox.count("GET", "/me") == 3
    assert second.credits == first.credits - 100


async def test_a_read_started_after_a_write_began_never_joins_an_earlier_flight(
    sandbox: Sandbox, sleeps: Sleeps
) -> None:
    doors = Doors(sandbox.transport(), answer_reads_first=True)
    outcomes: list[Any] = []
    new_call = NewCall(agent_id=sandbox.seed_ids.deployed_agent_id, to_number=US_NUMBER)
    async with _client(sandbox, sleeps, doors) as api, _together() as group:
        await group.start(_call, api.list_calls, outcomes)
        await group.start(_call, partial(api.create_call, new_call), outcomes)
        await group.start(_call, api.list_calls, outcomes)
        # Every caller now waits: at a door with its own request, or on a flight it joined.
        await anyio.wait_all_tasks_blocked()
        assert doors.arrivals == ["GET", "POST", "GET"]
        doors.open("GET")
        doors.open("POST")
    assert sandbox.count("GET", "/calls") == 2
    assert sorted(type(o).__name__ for o in outcomes) == ["CallSummary", "list", "list"]


async def test_dispatch_then_list_sees_the_call_though_an_older_list_is_still_in_flight(
    sandbox: Sandbox, sleeps: Sleeps
) -> None:
    doors = Doors(sandbox.transport(), answer_reads_first=True)
    new_call = NewCall(agent_id=sandbox.seed_ids.deployed_agent_id, to_number=US_NUMBER)
    older: list[Any] = []
    seen: list[Any] = []

    async def dispatch_then_list(api: OutboundCallsClient) -> tuple[CallSummary, list[CallSummary]]:
        call = await api.create_call(new_call)
        return call, await api.list_calls(limit=5)

    async with _client(sandbox, sleeps, doors) as api, _together() as group:
        await group.start(_call, partial(dispatch_then_list, api), seen)
        # Started while the write is in the air, this list is answered before the call exists.
        await group.start(_call, partial(api.list_calls, limit=5), older)
        await anyio.wait_all_tasks_blocked()
        doors.open("POST")
        # The dispatcher now lists: with its own request, or (wrongly) on the older list's flight.
        await anyio.wait_all_tasks_blocked()
        doors.open("GET")
    ((call, listed),) = seen
    assert call.id not in [c.id for c in older[0]]
    assert call.id in [c.id for c in listed]
    assert sandbox.count("GET", "/calls") == 2


async def test_the_retries_of_a_shared_read_are_shared_too(
    api: OutboundCallsClient, sandbox: Sandbox, doors: Doors, sleeps: Sleeps
) -> None:
    sandbox.faults.add(Fault(kind="status", status=502, method="GET", path="/me", times=1))
    accounts = await _read_concurrently(api.get_account, doors)
    assert sandbox.count("GET", "/me") == 2
    assert sleeps.delays == [0.25]
    assert len(accounts) == READERS
    assert all(isinstance(a, Account) and a.credits == sandbox.credits for a in accounts)


def _assert_shared_failure(errors: list[Any], expected: type[OutboundCallsError]) -> None:
    """Every caller raised its own error of the same type, message and attributes, without the key."""
    assert len(errors) == READERS
    assert all(type(e) is expected for e in errors)
    assert len({id(e) for e in errors}) == READERS
    assert len({(str(e), repr(e), e.message) for e in errors}) == 1
    assert len({tuple(sorted((k, repr(v)) for k, v in vars(e).items())) for e in errors}) == 1
    for error in errors:
        assert KEY not in "".join(traceback.format_exception(error))


@pytest.mark.parametrize(
    ("status", "expected", "requests"),
    [(500, UpstreamError, 1), (502, UpstreamError, 3), (404, NotFoundError, 1)],
    ids=["500-not-retried", "502-after-every-retry", "404"],
)
async def test_a_failed_read_reaches_every_waiter_as_its_own_copy_of_the_error(
    api: OutboundCallsClient,
    sandbox: Sandbox,
    doors: Doors,
    status: int,
    expected: type[OutboundCallsError],
    requests: int,
) -> None:
    sandbox.faults.add(Fault(kind="status", status=status, method="GET", path="/me", times=None))
    errors = await _read_concurrently(api.get_account, doors)
    _assert_shared_failure(errors, expected)
    assert errors[0].status == status
    assert sandbox.count("GET", "/me") == requests


async def test_a_lost_connection_reaches_every_waiter_with_its_cause(
    api: OutboundCallsClient, sandbox: Sandbox, doors: Doors
) -> None:
    sandbox.faults.add(Fault(kind="drop", method="GET", path="/me", times=None))
    errors = await _read_concurrently(api.get_account, doors)
    _assert_shared_failure(errors, TransportError)
    assert all(isinstance(e.__cause__, httpx2.RemoteProtocolError) for e in errors)
    assert sandbox.count("GET", "/me") == 3


async def test_an_unknown_id_is_not_found_for_every_waiter(
    api: OutboundCallsClient, sandbox: Sandbox, doors: Doors
) -> None:
    errors = await _read_concurrently(partial(api.get_call, "call_does_not_exist"), doors)
    _assert_shared_failure(errors, NotFoundError)
    assert sandbox.count("GET", "/calls/call_does_not_exist") == 1


async def test_a_cancelled_leader_leaves_its_waiters_one_fresh_request(
    api: OutboundCallsClient, sandbox: Sandbox, doors: Doors
) -> None:
    leader = anyio.CancelScope()
    leader_outcome: list[Any] = []
    accounts: list[Any] = []
    async with _together() as group:
        await group.start(_call, api.get_account, leader_outcome, leader)
        for _ in range(READERS - 1):
            await group.start(_call, api.get_account, accounts)
        await doors.arrived(1)
        leader.cancel()
        # One waiter leads a fresh request; the others join it instead of hanging or sending their own.
        await doors.arrived(2)
        await anyio.wait_all_tasks_blocked()
        doors.open("GET")
    assert leader.cancelled_caught
    assert leader_outcome == []
    assert doors.arrivals == ["GET", "GET"]
    assert sandbox.count("GET", "/me") == 1
    assert len(accounts) == READERS - 1
    assert all(isinstance(a, Account) and a.credits == sandbox.credits for a in accounts)


async def test_a_cancelled_waiter_leaves_the_leader_and_the_others_their_answer(
    api: OutboundCallsClient, sandbox: Sandbox, doors: Doors
) -> None:
    waiter = anyio.CancelScope()
    waiter_outcome: list[Any] = []
    accounts: list[Any] = []
    async with _together() as group:
        await group.start(_call, api.get_account, accounts)
        await group.start(_call, api.get_account, waiter_outcome, waiter)
        for _ in range(READERS - 2):
            await group.start(_call, api.get_account, accounts)
        waiter.cancel()
        await anyio.wait_all_tasks_blocked()
        doors.open("GET")
    assert waiter.cancelled_caught
    assert waiter_outcome == []
    assert sandbox.count("GET", "/me") == 1
    assert len(accounts) == READERS - 1
    assert all(isinstance(a, Account) for a in accounts)


async def test_reads_are_shared_within_one_client_only(sandbox: Sandbox, sleeps: Sleeps, doors: Doors) -> None:
    accounts: list[Any] = []
    first, second = _client(sandbox, sleeps, doors), _client(sandbox, sleeps, doors)
    async with first, second, _together() as group:
        for client in (first, second, first, second):
            await group.start(_call, client.get_account, accounts)
        doors.open("GET")
    assert sandbox.count("GET", "/me") == 2
    assert len(accounts) == 4


async def test_identical_concurrent_writes_are_each_sent_once(
    api: OutboundCallsClient, sandbox: Sandbox, doors: Doors
) -> None:
    new_call = NewCall(agent_id=sandbox.seed_ids.deployed_agent_id, to_number=US_NUMBER)
    calls: list[Any] = []
    async with _together() as group:
        for _ in range(3):
            await group.start(_call, partial(api.create_call, new_call), calls)
        doors.open("POST")
    assert sandbox.count("POST", "/calls") == 3
    assert sandbox.dispatched == 3
    assert len({c.id for c in calls}) == 3
