"""Confirmation tokens under attack and under load: one token, at most one POST /calls, ever."""

from __future__ import annotations

import anyio
import mcp_types as types
import pytest
from mcp import Client

from outboundcalls_mcp.server.ledger import PolicyMismatchError
from outboundcalls_mcp.server.startup import find_startup_error
from tests.harness import connected, make_rig
from tests.places import LedgerPlace
from tests.server.dispatch_kit import (
    ERAS,
    OTHER_US_NUMBER,
    PREMIUM_NUMBER,
    Person,
    audit_of,
    call_id_of,
    confirm,
    dispatch_args,
    gated_rig,
    preview_token,
    text_of,
)

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("mode", ERAS)
async def test_a_preview_alone_never_posts_a_call(place: LedgerPlace, mode: str) -> None:
    rig = make_rig(place)
    async with connected(rig, mode) as client:
        await preview_token(client, dispatch_args(rig))
    assert rig.posts() == 0


@pytest.mark.parametrize("mode", ERAS)
async def test_a_replayed_token_returns_the_same_call_and_posts_once(place: LedgerPlace, mode: str) -> None:
    rig = make_rig(place)
    args = dispatch_args(rig)
    async with connected(rig, mode) as client:
        token = await preview_token(client, args)
        first = call_id_of(await confirm(client, args, token))
        replays = [await confirm(client, args, token) for _ in range(3)]
    assert [call_id_of(r) for r in replays] == [first] * 3
    assert all("not dialed again" in text_of(r) for r in replays)
    assert rig.posts() == 1


@pytest.mark.parametrize("mode", ERAS)
async def test_an_expired_token_confirms_nothing(place: LedgerPlace, mode: str) -> None:
    rig = make_rig(place)
    args = dispatch_args(rig)
    async with connected(rig, mode) as client:
        token = await preview_token(client, args)
        await rig.sandbox.advance(5 * 60)  # tokens last exactly 5 minutes
        result = await confirm(client, args, token)
    assert result.is_error and "expired" in text_of(result)
    assert rig.posts() == 0
    assert (await audit_of(rig))[-1].detail["claim"] == "expired"


@pytest.mark.parametrize("mode", ERAS)
async def test_a_token_just_inside_its_five_minutes_still_dials(place: LedgerPlace, mode: str) -> None:
    rig = make_rig(place)
    args = dispatch_args(rig)
    async with connected(rig, mode) as client:
        token = await preview_token(client, args)
        await rig.sandbox.advance(5 * 60 - 1)
        call_id_of(await confirm(client, args, token))
    assert rig.posts() == 1


@pytest.mark.parametrize("mode", ERAS)
async def test_a_tampered_token_confirms_nothing(place: LedgerPlace, mode: str) -> None:
    rig = make_rig(place)
    args = dispatch_args(rig)
    async with connected(rig, mode) as client:
        token = await preview_token(client, args)
        tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
        forged = await confirm(client, args, tampered)
        invented = await confirm(client, args, "x" * len(token))
    assert forged.is_error and "not one this server issued" in text_of(forged)
    assert invented.is_error
    assert rig.posts() == 0
    assert (await audit_of(rig))[-1].kind == "refusal"


@pytest.mark.parametrize("mode", ERAS)
async def test_a_token_for_other_arguments_confirms_nothing_and_stays_valid_for_its_own(
    place: LedgerPlace, mode: str
) -> None:
    rig = make_rig(place)
    args = dispatch_args(rig)
    async with connected(rig, mode) as client:
        token = await preview_token(client, args)
        for other in (
            dispatch_args(rig, OTHER_US_NUMBER),
            dispatch_args(rig, PREMIUM_NUMBER),
            {**args, "agent_id": rig.sandbox.seed_ids.deployed_agent_ids[1]},
            {**args, "phone_number_id": rig.sandbox.seed_ids.phone_number_id},
        ):
            refused = await confirm(client, other, token)
            assert refused.is_error and "issued for other arguments" in text_of(refused), other
        assert rig.posts() == 0
        call_id_of(await confirm(client, args, token))
    assert rig.posts() == 1


@pytest.mark.parametrize("mode", ERAS)
async def test_the_same_number_written_another_way_is_the_same_argument(place: LedgerPlace, mode: str) -> None:
    rig = make_rig(place)
    async with connected(rig, mode) as client:
        token = await preview_token(client, dispatch_args(rig, "+1 (415) 555-0134"))
        call_id_of(await confirm(client, dispatch_args(rig, "415.555.0134"), token))
    assert rig.posts() == 1


@pytest.mark.parametrize("mode", ERAS)
async def test_two_confirmations_of_one_token_at_once_place_one_call_and_both_get_it(
    place: LedgerPlace, mode: str
) -> None:
    rig = make_rig(place)
    args = dispatch_args(rig)
    results: list[types.CallToolResult] = []
    async with connected(rig, mode) as client:
        token = await preview_token(client, args)

        async def confirm_once() -> None:
            results.append(await confirm(client, args, token))

        async with anyio.create_task_group() as tg:
            tg.start_soon(confirm_once)
            tg.start_soon(confirm_once)
    assert len({call_id_of(r) for r in results}) == 1
    assert rig.posts() == 1


@pytest.mark.parametrize("mode", ERAS)
async def test_a_confirmation_arriving_while_the_first_is_still_dialing_waits_and_gets_its_call(
    place: LedgerPlace, mode: str
) -> None:
    rig, gate = gated_rig(place, "POST", "/calls")
    args = dispatch_args(rig)
    results: list[types.CallToolResult] = []
    async with connected(rig, mode) as client:
        token = await preview_token(client, args)
        gate.armed = True

        async def confirm_once() -> None:
            results.append(await confirm(client, args, token))

        async with anyio.create_task_group() as tg:
            tg.start_soon(confirm_once)
            await gate.arrived.wait()  # the first has claimed the token and its POST is in flight
            tg.start_soon(confirm_once)
            await anyio.wait_all_tasks_blocked()
            gate.released.set()
    assert len({call_id_of(r) for r in results}) == 1 and len(results) == 2
    assert rig.posts() == 1


@pytest.mark.parametrize("mode", ERAS)
async def test_a_confirmation_whose_rules_were_checked_after_the_other_dialed_returns_that_call(
    place: LedgerPlace, mode: str
) -> None:
    rig, gate = gated_rig(place, "GET", "/me")
    args = dispatch_args(rig)
    results: list[types.CallToolResult] = []
    async with connected(rig, mode) as first, connected(rig, mode) as second:  # two lifespans, two services
        token = await preview_token(first, args)  # `first` now knows the agent and balance; `second` does not
        gate.armed = True

        async def confirm_on(client: Client) -> None:
            results.append(await confirm(client, args, token))

        async with anyio.create_task_group() as tg:
            tg.start_soon(confirm_on, second)
            await gate.arrived.wait()  # `second` saw the token pending and is reading the balance
            await confirm_on(first)  # `first` dials meanwhile: the number's cooldown has begun
            gate.released.set()  # `second`'s rules now refuse the cooldown, but its token was just used
    assert len({call_id_of(r) for r in results}) == 1 and len(results) == 2
    assert rig.posts() == 1


@pytest.mark.parametrize("mode", ERAS)
async def test_a_token_survives_a_restart_between_preview_and_confirmation(place: LedgerPlace, mode: str) -> None:
    before = make_rig(place)
    args = dispatch_args(before)
    async with connected(before, mode) as client:
        token = await preview_token(client, args)
    after = make_rig(place, sandbox=before.sandbox)  # a new server process on the same state directory
    async with connected(after, mode) as client:
        call_id = call_id_of(await confirm(client, args, token))
        again = call_id_of(await confirm(client, args, token))
    assert again == call_id
    assert before.posts() == 1


async def test_two_servers_sharing_a_state_directory_confirm_one_token_into_one_call(place: LedgerPlace) -> None:
    first = make_rig(place)
    second = make_rig(place, sandbox=first.sandbox)
    args = dispatch_args(first)
    results: list[types.CallToolResult] = []
    async with connected(first, "legacy") as one, connected(second, "auto") as other:
        token = await preview_token(one, args)

        async def confirm_on(client: Client) -> None:
            results.append(await confirm(client, args, token))

        async with anyio.create_task_group() as tg:
            for client in (one, other, one, other):
                tg.start_soon(confirm_on, client)
    assert len({call_id_of(r) for r in results}) == 1
    assert first.posts() == 1


async def test_a_second_live_server_with_another_policy_on_the_same_state_directory_refuses_to_start(
    place: LedgerPlace,
) -> None:
    running = make_rig(place)
    changed = make_rig(place, sandbox=running.sandbox, max_calls_per_day=7, redial_cooldown_minutes=5)
    async with connected(running) as client:
        for mode in ERAS:
            with pytest.raises(BaseException) as raised:
                async with connected(changed, mode):
                    pass  # pragma: no cover - start-up must fail
            error = find_startup_error(raised.value)
            assert isinstance(error, PolicyMismatchError)
            assert set(error.changes) == {"OUTBOUNDCALLS_MAX_CALLS_PER_DAY", "OUTBOUNDCALLS_REDIAL_COOLDOWN_MINUTES"}
            assert "50 there, 7 here" in str(error)
        call_id_of(await confirm(client, dispatch_args(running), await preview_token(client, dispatch_args(running))))
    assert running.posts() == 1
    async with connected(changed) as client:  # once the other has stopped, the new policy may take over
        await preview_token(client, dispatch_args(changed, OTHER_US_NUMBER))


@pytest.mark.parametrize("mode", ERAS)
async def test_a_server_whose_lease_lapsed_while_another_policy_joined_refuses_to_dial(
    place: LedgerPlace, mode: str
) -> None:
    running = make_rig(place)
    changed = make_rig(place, sandbox=running.sandbox, max_calls_per_day=7)
    async with connected(running, mode) as client, connected(running, mode, elicitation_callback=Person()) as asking:
        await running.sandbox.advance(6 * 60)  # no heartbeat for longer than the 5-minute lease (a suspended laptop)
        async with connected(changed, mode) as other:  # so another policy may join the ledger
            preview = await client.call_tool("dispatch_call", dispatch_args(running))
            answered = await asking.call_tool("dispatch_call", dispatch_args(running))
            assert not (await other.call_tool("get_balance", {})).is_error
    for refused in (preview, answered):
        assert refused.is_error and "different policy" in text_of(refused)
        assert "OUTBOUNDCALLS_MAX_CALLS_PER_DAY: 7 there, 50 here" in text_of(refused)
    assert running.posts() == 0
