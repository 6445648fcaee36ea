"""Three HTTP replicas of the installed console script on one PostgreSQL schema: every guarantee holds across them.

Clients are spread over the replicas with no balancer between; the sandbox counts every POST /calls.
Races are probabilistic, so each race runs for several rounds on the same replicas.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

import anyio
import anyio.to_thread
import httpx2
import mcp_types as types
import psycopg
import pytest
from mcp import Client

from outboundcalls.sandbox import Fault
from outboundcalls.sandbox.clock import RealClock
from tests.places import LedgerPlace
from tests.server.dispatch_kit import Person, confirm, preview_token, text_of
from tests.server.pg_cluster import server_binaries, throwaway_cluster
from tests.server.process_kit import (
    SF_NUMBERS,
    LedgerFile,
    SharedSandbox,
    answer,
    ask,
    call_ids_reported,
    sandbox_on_a_socket,
    status_of,
)
from tests.server.replica_kit import REQUEST_STATE_KEY, clients_of, replicas

pytestmark = pytest.mark.anyio

REPLICAS: Final = 3
ROUNDS: Final = 3
TEST_SECONDS: Final = 240  # a bound on a whole test: never reached unless a process hangs
UNATTENDED: Final[dict[str, str | int | float]] = {
    "confirm": "none",
    "max_calls_per_day": 50,
    "max_credits_per_day": 1_000_000,
}


async def on_all(
    clients: list[Client], call: Callable[[Client], Awaitable[types.CallToolResult]]
) -> list[types.CallToolResult]:
    """The same call sent through every client at once; their results."""
    results: list[types.CallToolResult] = []

    async def one(client: Client) -> None:
        results.append(await call(client))

    async with anyio.create_task_group() as group:
        for client in clients:
            group.start_soon(one, client)
    return results


def args_of(shared: SharedSandbox, number: str) -> dict[str, Any]:
    return {"agent_id": shared.agent_id, "to_number": number}


async def until_posted(shared: SharedSandbox, count: int) -> None:
    """Until the replicas have sent this many POST /calls (the caller's fail_after bounds the wait)."""
    while shared.posts() < count:
        await anyio.sleep(0.01)  # polling the replicas' progress at the sandbox


def dialing_left(place: LedgerPlace) -> list[dict[str, Any]]:
    return [i for i in LedgerFile.read(place).intents if i["state"] == "dialing"]


async def test_one_token_confirmed_on_three_replicas_at_once_dials_once(tmp_path: Path, pg_place: LedgerPlace) -> None:
    numbers = SF_NUMBERS[:ROUNDS]
    with anyio.fail_after(TEST_SECONDS):
        async with sandbox_on_a_socket() as shared:
            env = shared.env(tmp_path, pg_place, confirm="token")
            async with replicas(env, tmp_path, REPLICAS) as running, clients_of(running) as clients:
                for round_, number in enumerate(numbers):
                    args = args_of(shared, number)
                    token = await preview_token(clients[round_ % REPLICAS], args)
                    results = await on_all(clients, lambda client: confirm(client, args, token))
                    assert [status_of(r) for r in results].count("dialed") == REPLICAS, [text_of(r) for r in results]
                    assert len(call_ids_reported(results)) == 1, round_
    assert shared.posted_numbers() == list(numbers)
    assert dialing_left(pg_place) == []


async def test_one_modern_answer_sent_through_three_replicas_at_once_dials_once(
    tmp_path: Path, pg_place: LedgerPlace
) -> None:
    numbers = SF_NUMBERS[ROUNDS : 2 * ROUNDS]
    with anyio.fail_after(TEST_SECONDS):
        async with sandbox_on_a_socket() as shared:
            env = shared.env(tmp_path, pg_place, confirm="elicit", request_state_key=REQUEST_STATE_KEY)
            async with replicas(env, tmp_path, REPLICAS) as running, \
                    clients_of(running, "auto", elicitation_callback=Person()) as clients:  # fmt: skip
                for round_, number in enumerate(numbers):
                    args = args_of(shared, number)
                    asked = await ask(clients[round_ % REPLICAS], "dispatch_call", args)
                    assert isinstance(asked, types.InputRequiredResult)
                    results = await on_all(clients, lambda client: answer(client, "dispatch_call", args, asked))
                    assert len(call_ids_reported(results)) == 1, [text_of(r) for r in results]
    assert shared.posted_numbers() == list(numbers)


async def test_a_cooldown_raced_across_replicas_dials_once(tmp_path: Path, pg_place: LedgerPlace) -> None:
    numbers = SF_NUMBERS[2 * ROUNDS : 3 * ROUNDS]
    with anyio.fail_after(TEST_SECONDS):
        async with sandbox_on_a_socket() as shared:
            async with replicas(shared.env(tmp_path, pg_place, **UNATTENDED), tmp_path, REPLICAS) as running, \
                    clients_of(running) as clients:  # fmt: skip
                for number in numbers:
                    args = args_of(shared, number)
                    results = await on_all(clients + clients, lambda client: client.call_tool("dispatch_call", args))
                    refused = [r for r in results if status_of(r) != "dialed"]
                    assert len(refused) == 2 * REPLICAS - 1
                    assert all("- cooldown:" in text_of(r) for r in refused), [text_of(r) for r in refused]
    assert shared.posted_numbers() == list(numbers)


async def test_the_last_unit_of_a_cap_raced_across_replicas_dials_once(tmp_path: Path, pg_place: LedgerPlace) -> None:
    numbers = iter(f"+1415555{n:04d}" for n in range(300, 400))  # a range no other test dials
    with anyio.fail_after(TEST_SECONDS):
        async with sandbox_on_a_socket() as shared:
            for round_ in range(ROUNDS):
                # A cap of two, one used: the race is for the last unit; a fresh ledger (and replicas) each round.
                env = shared.env(tmp_path, pg_place / f"round{round_}", **{**UNATTENDED, "max_calls_per_day": 2})
                async with replicas(env, tmp_path, REPLICAS) as running, clients_of(running) as clients:
                    first = await clients[0].call_tool("dispatch_call", args_of(shared, next(numbers)))
                    assert status_of(first) == "dialed", text_of(first)
                    for expected in (1, 0):
                        results = await on_all(
                            clients + clients,
                            lambda client: client.call_tool("dispatch_call", args_of(shared, next(numbers))),
                        )
                        dialed = [r for r in results if status_of(r) == "dialed"]
                        assert len(dialed) == expected, (round_, [text_of(r) for r in results])
                        assert all("- daily_calls:" in text_of(r) for r in results if r not in dialed)
    assert shared.posts() == 2 * ROUNDS


async def test_a_replica_killed_mid_dial_is_settled_by_another_and_the_number_is_never_dialed_twice(
    tmp_path: Path, pg_place: LedgerPlace
) -> None:
    number = SF_NUMBERS[50]
    with anyio.fail_after(TEST_SECONDS):
        # On the wall clock, as the replicas are: reconciliation matches the call by when it was created.
        async with sandbox_on_a_socket(clock=RealClock()) as shared:
            async with replicas(shared.env(tmp_path, pg_place, **UNATTENDED), tmp_path, REPLICAS) as running:
                victim, survivor = running[0], running[1]
                # The vendor creates the call, then holds its answer: the victim is mid-dial when it dies.
                shared.sandbox.faults.add(Fault(kind="latency", delay=10.0, method="POST", path="/calls"))
                async with anyio.create_task_group() as group:

                    async def dial_and_die() -> None:
                        async with victim.client() as client:
                            await client.call_tool("dispatch_call", args_of(shared, number))

                    group.start_soon(dial_and_die)
                    while not shared.created_call_ids():
                        await anyio.sleep(0.05)  # polling the sandbox for the victim's progress, bounded above
                    victim.kill()
                    group.cancel_scope.cancel()
                (created,) = shared.created_call_ids()
                # Another replica finds the victim gone, marks its claim unknown and finds the call: two
                # steps with the API asked between them, so "unknown" alone is not settled yet. The API's
                # list is held back, so that the poll below sees the claim unknown, as a busy machine did.
                shared.sandbox.faults.add(Fault(kind="latency", delay=1.0, method="GET", path="/calls"))
                while True:
                    settled = [i for i in LedgerFile.read(pg_place).intents if i["to_number"] == number]
                    if settled and settled[0]["state"] not in ("dialing", "unknown"):
                        break
                    await anyio.sleep(0.2)  # polling the survivors' progress, bounded above
                async with survivor.client() as client:
                    again = await client.call_tool("dispatch_call", args_of(shared, number))
    assert [(i["state"], i["call_id"]) for i in settled] == [("dialed", created)]
    assert status_of(again) == "error" and "- cooldown:" in text_of(again)
    assert shared.posted_numbers() == [number]


def terminate_replica_connections(place: LedgerPlace) -> int:
    """pg_terminate_backend every connection the replicas on this schema hold (their pools and listeners); how many."""
    assert place.database_url is not None and place.schema is not None
    with psycopg.connect(place.database_url, autocommit=True) as admin:
        holders = admin.execute(f'SELECT holder_id FROM "{place.schema}".policy_holders').fetchall()
        names = [f"outboundcalls-mcp {holder}" for (holder,) in holders]
        killed = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = ANY(%s) OR query LIKE %s",
            (names, f'LISTEN "outboundcalls_call_ends_{place.schema}"%'),
        ).fetchall()
    return len(killed)


async def test_connections_cut_mid_run_lose_nothing_and_dial_nothing_twice(
    tmp_path: Path, pg_place: LedgerPlace
) -> None:
    numbers = list(SF_NUMBERS[10:22])
    with anyio.fail_after(TEST_SECONDS):
        async with sandbox_on_a_socket() as shared:
            async with replicas(shared.env(tmp_path, pg_place, **UNATTENDED), tmp_path, REPLICAS) as running, \
                    clients_of(running) as clients:  # fmt: skip
                results: list[types.CallToolResult] = []

                async def dial_each(index: int, number: str) -> None:
                    client = clients[index % REPLICAS]
                    # Each number is dispatched twice (a model repeating itself): the second must be refused.
                    results.append(await client.call_tool("dispatch_call", args_of(shared, number)))
                    results.append(
                        await clients[(index + 1) % REPLICAS].call_tool("dispatch_call", args_of(shared, number))
                    )

                cuts: list[int] = []
                async with anyio.create_task_group() as group:
                    for index, number in enumerate(numbers):
                        group.start_soon(dial_each, index, number)
                    # Up to three cuts while dispatches are under way, each after a dial made since the last one
                    # (the replicas had reconnected by then); none once every dispatch has its answer.
                    for _ in range(3):
                        mark = shared.posts()
                        while shared.posts() == mark and len(results) < 2 * len(numbers):
                            await anyio.sleep(0.01)  # polling the replicas' progress at the sandbox
                        if len(results) == 2 * len(numbers):
                            break
                        cuts.append(terminate_replica_connections(pg_place))
                assert cuts and cuts[0] > 0, cuts  # the database did go away under them
                # Afterwards every replica dials again by itself: the pools re-made their connections.
                after = await on_all(
                    clients,
                    lambda client: client.call_tool(
                        "dispatch_call", args_of(shared, SF_NUMBERS[40 + clients.index(client)])
                    ),
                )
    assert [status_of(r) for r in after] == ["dialed"] * REPLICAS
    check_nothing_lost_nor_twice(shared, pg_place, results)


def check_nothing_lost_nor_twice(
    shared: SharedSandbox, place: LedgerPlace, results: list[types.CallToolResult]
) -> None:
    """No number dialed twice, no claim left dialing, each created call one dialed intent, each reported one of them."""
    posted = shared.posted_numbers()
    assert len(posted) == len(set(posted)), posted
    intents = LedgerFile.read(place).intents
    assert [i for i in intents if i["state"] == "dialing"] == []
    dialed = {i["call_id"] for i in intents if i["state"] == "dialed"}
    assert dialed == shared.created_call_ids()
    assert call_ids_reported(results) <= dialed
    for result in results:
        if status_of(result) == "error":
            assert "- cooldown:" in text_of(result) or "cannot be reached" in text_of(result), text_of(result)


@pytest.mark.skipif(
    server_binaries() is None, reason="no PostgreSQL server binaries (initdb, pg_ctl) to make a cluster with"
)
async def test_a_full_database_restart_mid_run_loses_nothing_and_dials_nothing_twice(tmp_path: Path) -> None:
    numbers = list(SF_NUMBERS[12:24])
    with throwaway_cluster() as cluster, anyio.fail_after(TEST_SECONDS):
        place = LedgerPlace("postgres", tmp_path, database_url=cluster.url, schema="outboundcalls")
        async with sandbox_on_a_socket() as shared:
            async with replicas(shared.env(tmp_path, place, **UNATTENDED), tmp_path, REPLICAS) as running, \
                    clients_of(running) as clients:  # fmt: skip
                results: list[types.CallToolResult] = []

                async def dial_each(index: int, number: str) -> None:
                    for attempt in range(2):  # the second is a repeat: it must never dial
                        client = clients[(index + attempt) % REPLICAS]
                        results.append(await client.call_tool("dispatch_call", args_of(shared, number)))

                async with anyio.create_task_group() as group:
                    for index, number in enumerate(numbers):
                        group.start_soon(dial_each, index, number)
                    await until_posted(shared, 1)  # the server goes while dispatches are under way
                    await anyio.to_thread.run_sync(cluster.stop)
                    await anyio.to_thread.run_sync(cluster.start)
                after = await on_all(
                    clients,
                    lambda client: client.call_tool(
                        "dispatch_call", args_of(shared, SF_NUMBERS[44 + clients.index(client)])
                    ),
                )
                ready = []
                for replica in running:
                    async with httpx2.AsyncClient(base_url=replica.url) as http:
                        ready.append((await http.get("/readyz")).status_code)
        assert [status_of(r) for r in after] == ["dialed"] * REPLICAS, [text_of(r) for r in after]
        assert ready == [200] * REPLICAS
        check_nothing_lost_nor_twice(shared, place, results)  # read while the cluster still runs
