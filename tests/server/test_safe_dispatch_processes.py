"""Server processes on one state directory: one call per consent, per number and per unit of a cap, whichever process
confirms; and no two processes with different confirm modes on one directory."""

from __future__ import annotations

import functools
import os
import shutil
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters

from outboundcalls.sandbox import SANDBOX_API_KEY, Sandbox
from outboundcalls.sandbox.standalone import create_server, serve
from outboundcalls_mcp.server.app import build_server
from outboundcalls_mcp.server.settings import Settings
from tests.places import LedgerPlace
from tests.server.dispatch_kit import ERAS, US_NUMBER, Person, call_id_of, confirm, preview_token, text_of
from tests.server.process_kit import (
    PROCESS_SECONDS,
    SF_NUMBERS,
    LedgerFile,
    SharedSandbox,
    answer,
    ask,
    console_server,
    data_of,
    running,
    sandbox_on_a_socket,
    start_alone,
    status_of,
)

pytestmark = pytest.mark.anyio


async def test_a_token_confirmed_at_once_by_two_os_processes_places_one_call(tmp_path: Path) -> None:
    sandbox = Sandbox()
    http = create_server(sandbox, host="127.0.0.1", port=0, log_level="critical", shutdown_grace_seconds=0)
    ready: list[str] = []
    async with anyio.create_task_group() as group:
        group.start_soon(functools.partial(serve, sandbox, http, on_ready=ready.append))
        with anyio.fail_after(10):
            while not ready:
                await anyio.sleep(0)
        # Both processes run on the wall clock here, so the hours must not depend on when the test runs.
        env = {
            "OUTBOUNDCALLS_API_KEY": SANDBOX_API_KEY,
            "OUTBOUNDCALLS_BASE_URL": ready[0],
            "OUTBOUNDCALLS_STATE_DIR": str(tmp_path / "state"),
            "OUTBOUNDCALLS_CALLING_HOURS": "00:00-24:00",
        }
        here = build_server(
            Settings.model_validate({name.removeprefix("OUTBOUNDCALLS_").lower(): value for name, value in env.items()})
        )
        script = shutil.which("outboundcalls-mcp", path=str(Path(sys.executable).parent))
        assert script is not None
        other = StdioServerParameters(
            command=script,
            args=[],
            cwd=str(tmp_path),
            env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)} | env,
        )
        args = {"agent_id": sandbox.seed_ids.deployed_agent_id, "to_number": US_NUMBER}
        results: list[types.CallToolResult] = []
        async with Client(here, mode="legacy") as mine, Client(other, mode="legacy") as theirs:
            token = await preview_token(mine, args)

            async def confirm_on(client: Client) -> None:
                results.append(await confirm(client, args, token))

            with anyio.fail_after(60):
                async with anyio.create_task_group() as confirmations:
                    confirmations.start_soon(confirm_on, theirs)
                    confirmations.start_soon(confirm_on, mine)
        http.should_exit = True
    assert len(results) == 2
    assert len({call_id_of(result) for result in results}) == 1
    assert (sandbox.count("POST", "/calls"), sandbox.dispatched) == (1, 1)


# Two console-script processes on one state directory, each spawned as a host spawns it; the races
# are probabilistic, so each runs for several rounds (reusing the processes where the rules allow).
ROUNDS = 5
CAP = 3
TEST_SECONDS = 180  # a bound on a whole test: never reached unless a process hangs


async def at_once(*calls: Callable[[], Awaitable[types.CallToolResult]]) -> list[types.CallToolResult]:
    """Start every call together; their results in the order given."""
    results: list[types.CallToolResult | None] = [None] * len(calls)

    async def run(index: int) -> None:
        results[index] = await calls[index]()

    with anyio.fail_after(PROCESS_SECONDS):
        async with anyio.create_task_group() as group:
            for index in range(len(calls)):
                group.start_soon(run, index)
    done = [result for result in results if result is not None]
    assert len(done) == len(calls)
    return done


def dispatch_of(shared: SharedSandbox, number: str) -> dict[str, Any]:
    return {"agent_id": shared.agent_id, "to_number": number}


async def test_two_processes_each_previewing_one_number_and_confirming_at_once_place_one_call(
    tmp_path: Path, place: LedgerPlace
) -> None:
    numbers = SF_NUMBERS[:ROUNDS]
    with anyio.fail_after(TEST_SECONDS):
        async with sandbox_on_a_socket() as shared:
            server = console_server(shared.env(tmp_path, place / "state", confirm="token"), tmp_path)
            async with running(server, server) as (first, second):
                for round_, number in enumerate(numbers):
                    args = dispatch_of(shared, number)
                    before = shared.posts()
                    # Each process shows its own preview (both ready: nothing dialed yet) with its own token.
                    previews = await at_once(
                        lambda: first.call_tool("dispatch_call", args), lambda: second.call_tool("dispatch_call", args)
                    )
                    tokens = [data_of(p)["preview"]["confirmation_token"] for p in previews]
                    assert tokens[0] != tokens[1]
                    results = await at_once(
                        lambda: confirm(first, args, tokens[0]), lambda: confirm(second, args, tokens[1])
                    )
                    assert shared.posts() - before == 1, (round_, [text_of(r) for r in results])
                    assert [status_of(r) for r in results].count("dialed") == 1, round_
                    (loser,) = [r for r in results if status_of(r) != "dialed"]
                    assert status_of(loser) == "error" and "- cooldown:" in text_of(loser), text_of(loser)
    assert shared.posted_numbers() == list(numbers)
    ledger = LedgerFile.read(place / "state")
    assert len(ledger.consents) == 2 * ROUNDS
    assert sorted(i["to_number"] for i in ledger.intents if i["state"] != "refused") == sorted(numbers)


async def test_two_processes_racing_for_the_last_unit_of_the_daily_cap_place_one_call(
    tmp_path: Path, place: LedgerPlace
) -> None:
    with anyio.fail_after(TEST_SECONDS):
        async with sandbox_on_a_socket() as shared:
            for round_ in range(ROUNDS):
                # A cap counts per state directory over 24 h: each round has its own, CAP - 1 used, one unit left.
                numbers = SF_NUMBERS[round_ * (CAP + 1) : (round_ + 1) * (CAP + 1)]
                used, contested = numbers[: CAP - 1], numbers[CAP - 1 :]
                env = shared.env(tmp_path, place / f"state-{round_}", confirm="token", max_calls_per_day=CAP)
                server = console_server(env, tmp_path)
                async with running(server, server) as processes:
                    for index, number in enumerate(used):
                        client = processes[index % 2]  # both processes count towards the one cap
                        call_id_of(
                            await confirm(
                                client,
                                dispatch_of(shared, number),
                                await preview_token(client, dispatch_of(shared, number)),
                            )
                        )
                    before = shared.posts()
                    # Different numbers, one each: both previews are ready while one unit is left.
                    tokens = [
                        await preview_token(p, dispatch_of(shared, n))
                        for p, n in zip(processes, contested, strict=True)
                    ]
                    results = await at_once(
                        *(
                            functools.partial(confirm, p, dispatch_of(shared, n), t)
                            for p, n, t in zip(processes, contested, tokens, strict=True)
                        )
                    )
                assert shared.posts() - before == 1, (round_, [text_of(r) for r in results])
                assert [status_of(r) for r in results].count("dialed") == 1, round_
                (loser,) = [r for r in results if status_of(r) != "dialed"]
                assert status_of(loser) == "error" and "- daily_calls:" in text_of(loser), text_of(loser)
                assert len(shared.posted_numbers()) == CAP * (round_ + 1)
                assert shared.posted_numbers()[-1] in contested
                claimed = [i for i in LedgerFile.read(place / f"state-{round_}").intents if i["state"] != "refused"]
                assert len(claimed) == CAP, claimed


@pytest.mark.parametrize("mode", ERAS)
async def test_two_elicit_mode_processes_dispatching_one_number_at_once_place_one_call(
    tmp_path: Path, place: LedgerPlace, mode: str
) -> None:
    numbers = SF_NUMBERS[:ROUNDS]
    with anyio.fail_after(TEST_SECONDS):
        async with sandbox_on_a_socket() as shared:
            server = console_server(shared.env(tmp_path, place / "state", confirm="elicit"), tmp_path)
            contacts = shared.sandbox.seed_ids.contact_ids
            async with running(server, server, mode=mode, elicitation_callback=Person()) as (first, second):
                for round_, number in enumerate(numbers):
                    # Even rounds: the same arguments (one question, shared). Odd rounds: the same number for two
                    # contacts, so two questions, and only the decision on the number itself can stop the second call.
                    if round_ % 2 == 0:
                        args = [dispatch_of(shared, number)] * 2
                    else:
                        args = [dispatch_of(shared, number) | {"contact_id": contacts[i]} for i in (0, 1)]
                    before = shared.posts()
                    if mode == "legacy":
                        # Each process asks its person over the live back-channel; both say yes.
                        results = await at_once(
                            lambda: first.call_tool("dispatch_call", args[0]),
                            lambda: second.call_tool("dispatch_call", args[1]),
                        )
                    else:
                        # 2026-07-28: both questions are out before either answer is sent, then both answers at once.
                        asked = [await ask(c, "dispatch_call", a) for c, a in zip((first, second), args, strict=True)]
                        assert all(isinstance(a, types.InputRequiredResult) for a in asked), asked
                        pending = [a for a in asked if isinstance(a, types.InputRequiredResult)]
                        rounds = [
                            functools.partial(answer, c, "dispatch_call", a, q)
                            for c, a, q in zip((first, second), args, pending, strict=True)
                        ]
                        results = await at_once(*rounds)
                    assert shared.posts() - before == 1, (round_, [text_of(r) for r in results])
                    dialed = [r for r in results if status_of(r) == "dialed"]
                    # The other one is told the call the first yes placed (one question, asked of both), or is refused.
                    assert len({call_id_of(r) for r in dialed}) == 1, round_
                    refused = [r for r in results if r not in dialed]
                    assert all(status_of(r) == "error" and "- cooldown:" in text_of(r) for r in refused), round_
    assert shared.posted_numbers() == list(numbers)
    if mode == "auto":
        ledger = LedgerFile.read(place / "state")
        questions = Counter(c["destinations"][0]["to_number"] for c in ledger.consents)
        # Identical questions open at once are one question, across processes; different arguments are two.
        assert questions == {n: 1 if i % 2 == 0 else 2 for i, n in enumerate(numbers)}
        assert len(ledger.of_kind("question")) == len(ledger.of_kind("answer")) == len(ledger.consents)


async def test_servers_with_different_confirm_modes_never_share_one_state_directory(
    tmp_path: Path, place: LedgerPlace
) -> None:
    state = place / "state"
    with anyio.fail_after(TEST_SECONDS):
        async with sandbox_on_a_socket() as shared:
            token_env = shared.env(tmp_path, state, confirm="token")
            elicit_env = shared.env(tmp_path, state, confirm="elicit")
            none_env = shared.env(tmp_path, state, confirm="none", max_calls_per_day=10, max_credits_per_day=1000)
            args = dispatch_of(shared, US_NUMBER)
            async with running(console_server(token_env, tmp_path)) as (token_server,):
                token = await preview_token(token_server, args)
                status, stderr = await start_alone(elicit_env, tmp_path)
                assert status == 2, stderr
                assert "configuration error" in stderr
                assert "OUTBOUNDCALLS_CONFIRM: token there, elicit here" in stderr
            # The token server has left (its lease with it): an elicit server may take the directory, and the
            # live token the other one minted there dials nothing here.
            elicit_server = console_server(elicit_env, tmp_path)
            async with running(elicit_server, elicitation_callback=Person()) as (elicit_client,):
                refused = await confirm(elicit_client, args, token)
                assert refused.is_error, text_of(refused)
                assert "confirmation_token is not accepted here" in text_of(refused)
                assert "OUTBOUNDCALLS_CONFIRM=elicit" in text_of(refused)
                # Nor may a server that dials without asking join next to it.
                status, stderr = await start_alone(none_env, tmp_path)
                assert status == 2, stderr
                assert "configuration error" in stderr
                assert "OUTBOUNDCALLS_CONFIRM: elicit there, none here" in stderr
    assert shared.posts() == 0
    ledger = LedgerFile.read(state)
    assert [c["state"] for c in ledger.consents] == ["open"] and ledger.intents == []
