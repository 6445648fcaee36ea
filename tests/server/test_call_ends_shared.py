"""Replicas on one PostgreSQL: a call's end learned by any wakes the waits and tells the subscribers of every one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from typing import Final

import anyio
import psycopg
import pytest
from mcp.server.subscriptions import InMemorySubscriptionBus

from outboundcalls.calls import CallDetail
from outboundcalls_mcp.server.call_ends_postgres import PostgresCallEnds
from outboundcalls_mcp.server.call_events import CallEvents
from tests.places import LedgerPlace

pytestmark = pytest.mark.anyio

# Never reached unless something hangs; the waits below are far longer, so only a notice can end them in time.
BOUND: Final = 10
WAIT: Final = 600.0
ENDED: Final = CallDetail(id="call_shared_1", status="completed", credits_charged=12.5)


@asynccontextmanager
async def replica(place: LedgerPlace) -> AsyncIterator[tuple[CallEvents, list[str]]]:
    """One replica's call events on the place's schema, listening, and the call ids its listeners were told of."""
    assert place.database_url is not None and place.schema is not None
    store = PostgresCallEnds(place.database_url, place.schema, "test")
    events = CallEvents(store=store, bus=InMemorySubscriptionBus())
    told: list[str] = []

    async def tell(call: CallDetail) -> None:
        told.append(call.id)

    events.add_listener(tell)
    async with AsyncExitStack() as stack:
        await events.open(stack)
        with anyio.fail_after(BOUND):
            await store.listening.wait()
        yield events, told


async def waited(events: CallEvents, call_id: str, found: list[dict[str, CallDetail]]) -> None:
    found.append(await events.wait([call_id], WAIT))


async def until_waiting(events: CallEvents, call_id: str) -> None:
    """Until the waiter is registered (a task started in this process: a few loop turns)."""
    while call_id not in events._waiters:
        await anyio.sleep(0)


@pytest.mark.parametrize("learned_by", ["webhook", "tool"])
async def test_a_call_end_learned_by_one_replica_wakes_the_wait_and_the_subscribers_of_another(
    pg_place: LedgerPlace, learned_by: str
) -> None:
    async with replica(pg_place) as (first, _), replica(pg_place) as (second, told):
        found: list[dict[str, CallDetail]] = []
        with anyio.fail_after(BOUND):
            async with anyio.create_task_group() as group:
                group.start_soon(waited, second, ENDED.id, found)
                await until_waiting(second, ENDED.id)
                if learned_by == "webhook":
                    await first.received(ENDED, event="call.ended", at=datetime.now(UTC))
                else:
                    await first.call_ended(ENDED)
    assert [set(f) for f in found] == [{ENDED.id}]
    assert found[0][ENDED.id].credits_charged == 12.5
    assert told == [ENDED.id]


async def test_a_replica_that_starts_waiting_after_the_end_finds_it_stored(pg_place: LedgerPlace) -> None:
    async with replica(pg_place) as (first, _):
        await first.call_ended(ENDED)
    async with replica(pg_place) as (later, _):
        with anyio.fail_after(BOUND):
            assert set(await later.wait([ENDED.id], WAIT)) == {ENDED.id}


async def test_a_listener_cut_off_reconnects_by_itself_and_catches_up_on_what_it_missed(pg_place: LedgerPlace) -> None:
    assert pg_place.database_url is not None and pg_place.schema is not None
    async with replica(pg_place) as (first, _), replica(pg_place) as (second, told):
        found: list[dict[str, CallDetail]] = []
        store = second.store
        assert isinstance(store, PostgresCallEnds)
        with anyio.fail_after(BOUND):
            async with anyio.create_task_group() as group:
                group.start_soon(waited, second, ENDED.id, found)
                await until_waiting(second, ENDED.id)
                # Cut every LISTEN connection on this schema's channel, then announce while they are away.
                with psycopg.connect(pg_place.database_url, autocommit=True) as admin:
                    cut = admin.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE %s",
                        (f'LISTEN "{store.channel}"%',),
                    ).fetchall()
                assert len(cut) == 2
                await first.received(ENDED, event=None, at=datetime.now(UTC))
        assert [set(f) for f in found] == [{ENDED.id}]
        assert told == [ENDED.id]
