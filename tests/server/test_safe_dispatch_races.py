"""Different requests racing for one number or one cap, through real MCP clients: each decision is made once.

Every test counts the POST /calls that reached the sandbox. Races are probabilistic, so each one
runs for several rounds, each on a fresh server and state directory.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client

from tests.harness import Rig, connected, make_rig
from tests.places import LedgerPlace
from tests.server.dispatch_kit import (
    ERAS,
    OTHER_US_NUMBER,
    US_NUMBER,
    Person,
    call_id_of,
    confirm,
    dispatch_args,
    gated_rig,
    preview_token,
)

pytestmark = pytest.mark.anyio

ROUNDS = 3
AT_ONCE = 8
# San Francisco numbers: 09:00 there at the harness's noon in New York.
SF_NUMBERS = [f"+1415555{n:04d}" for n in range(150, 170)]


async def all_at_once(count: int, work: Callable[[int], Coroutine[Any, Any, None]]) -> None:
    """Start `count` calls of work together and wait for every one."""
    async with anyio.create_task_group() as group:
        for index in range(count):
            group.start_soon(work, index)


def dialed_numbers(rig: Rig) -> list[str]:
    """The destination of every POST /calls that reached the sandbox, in order."""
    return [r.body["toNumber"] for r in rig.sandbox.requests if r.method == "POST" and r.path.endswith("/calls")]


def status_of(result: types.CallToolResult) -> str:
    """dispatch_call's status, or "error" for a tool error."""
    if result.is_error or result.structured_content is None:
        return "error"
    return str(result.structured_content["status"])


@pytest.mark.parametrize("mode", ERAS)
@pytest.mark.parametrize("confirm_mode", ["none", "token", "elicit"])
async def test_eight_identical_dispatches_at_once_ring_the_number_once(
    place: LedgerPlace, mode: str, confirm_mode: str
) -> None:
    for round_ in range(ROUNDS):
        caps: dict[str, Any] = (
            {"max_calls_per_day": 100, "max_credits_per_day": 100_000} if confirm_mode == "none" else {}
        )
        rig = make_rig(place / f"{confirm_mode}-{round_}", confirm=confirm_mode, **caps)
        args = dispatch_args(rig)
        results: list[types.CallToolResult] = []
        async with connected(rig, mode, elicitation_callback=Person("accept")) as client:
            if confirm_mode == "token":
                tokens: list[str] = []

                async def preview(_: int) -> None:
                    tokens.append(await preview_token(client, args))

                await all_at_once(AT_ONCE, preview)

                async def confirm_one(index: int) -> None:
                    results.append(await confirm(client, args, tokens[index]))

                await all_at_once(AT_ONCE, confirm_one)
            else:

                async def dispatch(_: int) -> None:
                    results.append(await client.call_tool("dispatch_call", args))

                await all_at_once(AT_ONCE, dispatch)
        assert dialed_numbers(rig) == [US_NUMBER], (confirm_mode, mode, round_)
        # Each of the others is refused by the cooldown, or (the same question asked more than once,
        # one consent) told the call that one yes already placed.
        dialed = {call_id_of(r) for r in results if status_of(r) == "dialed"}
        assert len(dialed) == 1
        refused = [r for r in results if status_of(r) != "dialed"]
        # A question asked after the first yes was used is a new one, and its yes is refused by the cooldown
        # (a request that shared that second question is then told so). A question the harness failed to
        # deliver under load is no consent, and says so; that is the product working, so it is allowed
        # here, and nothing else is.
        assert all(
            (status_of(r) == "error" and ("- cooldown:" in _text(r) or "refused by cooldown" in _text(r)))
            or (status_of(r) == "not_dialed" and "no answer is no consent" in _text(r))
            for r in refused
        ), [_text(r) for r in refused]
        if confirm_mode != "elicit":
            assert len(refused) == AT_ONCE - 1


@pytest.mark.parametrize("mode", ERAS)
async def test_one_token_confirmed_eight_times_at_once_dials_once_and_all_get_the_call(
    place: LedgerPlace, mode: str
) -> None:
    for round_ in range(ROUNDS):
        rig = make_rig(place / str(round_), redial_cooldown_minutes=0)
        args = dispatch_args(rig)
        results: list[types.CallToolResult] = []
        async with connected(rig, mode) as client:
            token = await preview_token(client, args)

            async def confirm_one(_: int) -> None:
                results.append(await confirm(client, args, token))

            await all_at_once(AT_ONCE, confirm_one)
        assert len({call_id_of(r) for r in results}) == 1
        assert rig.posts() == 1


@pytest.mark.parametrize("mode", ERAS)
async def test_the_daily_call_cap_holds_under_concurrent_confirmations(place: LedgerPlace, mode: str) -> None:
    for round_ in range(ROUNDS):
        rig = make_rig(place / str(round_), confirm="token", max_calls_per_day=2)
        numbers = SF_NUMBERS[:6]
        async with connected(rig, mode) as client:
            tokens = [await preview_token(client, dispatch_args(rig, n)) for n in numbers]
            results: list[types.CallToolResult] = []

            async def confirm_one(index: int) -> None:
                results.append(await confirm(client, dispatch_args(rig, numbers[index]), tokens[index]))

            await all_at_once(len(numbers), confirm_one)
        assert rig.posts() == 2, round_
        assert [status_of(r) for r in results].count("dialed") == 2
        texts = [
            r.content[0].text
            for r in results
            if status_of(r) == "error" and isinstance(r.content[0], types.TextContent)
        ]
        assert len(texts) == 4 and all("daily_calls" in t for t in texts)


@pytest.mark.parametrize("mode", ERAS)
async def test_the_daily_credit_cap_holds_under_concurrent_answers(place: LedgerPlace, mode: str) -> None:
    # A San Francisco call is estimated at 19.95 credits a minute, 99.75 for the cap's five minutes: three fit in 300.
    for round_ in range(ROUNDS):
        rig = make_rig(place / str(round_), confirm="elicit", max_credits_per_day=300)
        results: list[types.CallToolResult] = []
        async with connected(rig, mode, elicitation_callback=Person("accept")) as client:

            async def dispatch(index: int) -> None:
                results.append(await client.call_tool("dispatch_call", dispatch_args(rig, SF_NUMBERS[index])))

            await all_at_once(6, dispatch)
        assert rig.posts() == 3, round_
        assert [status_of(r) for r in results].count("dialed") == 3


@pytest.mark.parametrize("mode", ERAS)
@pytest.mark.parametrize("confirm_mode", ["none", "elicit"])
async def test_overlapping_batches_dial_each_number_once(place: LedgerPlace, mode: str, confirm_mode: str) -> None:
    first, second = SF_NUMBERS[:5], SF_NUMBERS[3:8]  # two numbers in both
    for round_ in range(ROUNDS):
        caps: dict[str, Any] = (
            {"max_calls_per_day": 100, "max_credits_per_day": 100_000} if confirm_mode == "none" else {}
        )
        rig = make_rig(place / f"{confirm_mode}-{round_}", confirm=confirm_mode, **caps)
        agent = rig.sandbox.seed_ids.deployed_agent_id
        async with connected(rig, mode, elicitation_callback=Person("accept")) as client:

            async def batch(index: int) -> None:
                numbers = (first, second)[index]
                result = await client.call_tool("dispatch_calls", {"agent_id": agent, "to_numbers": numbers})
                assert not result.is_error

            await all_at_once(2, batch)
        assert sorted(dialed_numbers(rig)) == sorted(set(first) | set(second)), round_


@pytest.mark.parametrize("mode", ERAS)
async def test_a_batch_overlapping_a_single_dispatch_dials_the_shared_number_once(
    place: LedgerPlace, mode: str
) -> None:
    numbers = [US_NUMBER, *SF_NUMBERS[:3]]
    for round_ in range(ROUNDS):
        rig = make_rig(place / str(round_), confirm="elicit")
        async with connected(rig, mode, elicitation_callback=Person("accept")) as client:

            async def dispatch(index: int) -> None:
                if index == 0:
                    await client.call_tool(
                        "dispatch_calls", {"agent_id": rig.sandbox.seed_ids.deployed_agent_id, "to_numbers": numbers}
                    )
                else:
                    await client.call_tool("dispatch_call", dispatch_args(rig))

            await all_at_once(3, dispatch)
        assert dialed_numbers(rig).count(US_NUMBER) == 1, round_
        assert sorted(dialed_numbers(rig)) == sorted(numbers)


@pytest.mark.parametrize("mode", ERAS)
async def test_a_cooldown_of_zero_still_never_dials_one_number_twice_at_once(place: LedgerPlace, mode: str) -> None:
    rig, gate = gated_rig(
        place,
        "POST",
        "/calls",
        confirm="none",
        redial_cooldown_minutes=0,
        max_calls_per_day=100,
        max_credits_per_day=100_000,
    )
    gate.armed = True
    results: list[types.CallToolResult] = []
    async with connected(rig, mode) as client, anyio.create_task_group() as group:

        async def dispatch() -> None:
            results.append(await client.call_tool("dispatch_call", dispatch_args(rig)))

        for _ in range(AT_ONCE):
            group.start_soon(dispatch)
        await gate.arrived.wait()  # the first dial is in flight, held at the vendor's door
        with anyio.fail_after(30):
            while len(results) < AT_ONCE - 1:
                await anyio.sleep(0)  # the other seven are being decided; nothing else to await
        gate.released.set()
    assert rig.posts() == 1
    assert [status_of(r) for r in results].count("dialed") == 1
    assert all("being dialed right now" in _text(r) for r in results if status_of(r) == "error")


def _text(result: types.CallToolResult) -> str:
    return " ".join(block.text for block in result.content if isinstance(block, types.TextContent))


async def _dispatch_all(client: Client, calls: list[dict[str, Any]]) -> list[types.CallToolResult]:
    results: list[types.CallToolResult] = []

    async def one(index: int) -> None:
        results.append(await client.call_tool("dispatch_call", calls[index]))

    await all_at_once(len(calls), one)
    return results


async def test_two_dispatches_to_different_numbers_at_once_both_dial(place: LedgerPlace) -> None:
    """The serialized decision refuses only what a rule refuses: unrelated dials both go through."""
    rig = make_rig(place, confirm="elicit")
    async with connected(rig, elicitation_callback=Person("accept")) as client:
        results = await _dispatch_all(client, [dispatch_args(rig), dispatch_args(rig, OTHER_US_NUMBER)])
    assert sorted(status_of(r) for r in results) == ["dialed", "dialed"], [_text(r) for r in results]
    assert sorted(dialed_numbers(rig)) == sorted([US_NUMBER, OTHER_US_NUMBER])
