"""When POST /calls goes wrong: failed is recorded, unknown is reconciled and never retried."""

from __future__ import annotations

from typing import Any

import mcp_types as types
import pytest
from mcp import Client

from outboundcalls.sandbox import Fault
from outboundcalls_mcp.server.ledger import BoundArgs
from outboundcalls_mcp.server.ledger_place import open_ledger
from tests.harness import Rig, connected, make_rig
from tests.places import LedgerPlace
from tests.server.dispatch_kit import (
    ERAS,
    US_NUMBER,
    audit_of,
    call_id_of,
    confirm,
    dispatch_args,
    preview_token,
    text_of,
)
from tests.server.ledger_kit import Clock, allow, dial, new_token, single_consent, token_use

pytestmark = pytest.mark.anyio


def post_fails(rig: Rig, **fault: Any) -> None:
    """Arm one fault on the next POST /calls."""
    rig.sandbox.faults.add(Fault(method="POST", path="/calls", **fault))


def lookups(rig: Rig) -> int:
    """How many GET /calls the server made (reconciliation looks the call up there)."""
    return rig.sandbox.count("GET", "/calls")


async def confirmed(client: Client, rig: Rig, number: str = US_NUMBER) -> types.CallToolResult:
    """Preview and confirm by token; the raw result."""
    args = dispatch_args(rig, number)
    return await confirm(client, args, await preview_token(client, args))


def created_call(rig: Rig) -> str:
    """The id of the one call the sandbox created during the test."""
    (call_id,) = [c.id for c in rig.sandbox.state.calls.values() if c.to_number == US_NUMBER]
    return call_id


async def outcome_details(rig: Rig) -> list[dict[str, object]]:
    return [dict(entry.detail) for entry in await audit_of(rig) if entry.kind in ("outcome", "reconcile")]


@pytest.mark.parametrize("mode", ERAS)
async def test_a_402_is_a_failed_dial_that_holds_nothing(place: LedgerPlace, mode: str) -> None:
    rig = make_rig(place)
    post_fails(rig, kind="status", status=402)
    async with connected(rig, mode) as client:
        result = await confirmed(client, rig)
        assert (
            result.is_error
            and "Insufficient credits (402)" in text_of(result)
            and "Nothing was dialed" in text_of(result)
        )
        assert (rig.posts(), rig.sandbox.dispatched) == (1, 0)
        call_id_of(await confirmed(client, rig))  # failed is not a dial: no cooldown, no hold
    assert (rig.posts(), rig.sandbox.dispatched) == (2, 1)
    assert (await outcome_details(rig))[0]["status"] == 402


@pytest.mark.parametrize("mode", ERAS)
async def test_a_502_without_a_call_is_looked_up_once_then_recorded_as_failed(place: LedgerPlace, mode: str) -> None:
    rig = make_rig(place)
    post_fails(rig, kind="status", status=502)
    async with connected(rig, mode) as client:
        result = await confirmed(client, rig)
    assert result.is_error and "502" in text_of(result) and "not placed" in text_of(result)
    assert (rig.posts(), rig.sandbox.dispatched, lookups(rig)) == (1, 0, 1)
    assert (await outcome_details(rig))[0] == {
        "kind": "failed",
        "status": 502,
        "message": "Upstream telephony provider error",
    }


@pytest.mark.parametrize("mode", ERAS)
async def test_a_502_when_the_call_was_created_anyway_reports_that_call(place: LedgerPlace, mode: str) -> None:
    rig = make_rig(place)
    post_fails(rig, kind="status", status=502, after_processing=True)
    async with connected(rig, mode) as client:
        result = await confirmed(client, rig)
        again = await client.call_tool("dispatch_call", dispatch_args(rig))  # a dial: the cooldown has started
    call_id = call_id_of(result)
    assert "502, but the call was created" in text_of(result)
    assert (rig.posts(), rig.sandbox.dispatched) == (1, 1)
    assert rig.sandbox.call_json(call_id)["toNumber"] == US_NUMBER
    assert again.is_error and "- cooldown:" in text_of(again)
    assert (await outcome_details(rig))[0] == {"kind": "dialed", "call_id": call_id}


@pytest.mark.parametrize("mode", ERAS)
async def test_a_timeout_before_sending_posts_nothing_and_holds_nothing(place: LedgerPlace, mode: str) -> None:
    rig = make_rig(place)
    post_fails(rig, kind="timeout_before_send")
    async with connected(rig, mode) as client:
        result = await confirmed(client, rig)
        assert result.is_error and "not placed" in text_of(result)
        assert rig.posts() == 0
        call_id_of(await confirmed(client, rig))
    assert (rig.posts(), rig.sandbox.dispatched) == (1, 1)


@pytest.mark.parametrize("mode", ERAS)
async def test_a_timeout_after_the_call_was_created_is_reconciled_to_that_call(place: LedgerPlace, mode: str) -> None:
    rig = make_rig(place)
    post_fails(rig, kind="hang", after_processing=True)
    async with connected(rig, mode) as client:
        args = dispatch_args(rig)
        token = await preview_token(client, args)
        result = await confirm(client, args, token)
        replay = await confirm(client, args, token)
    call_id = call_id_of(result)
    assert "answer was lost, but the call was found" in text_of(result)
    assert call_id_of(replay) == call_id
    assert (rig.posts(), rig.sandbox.dispatched, lookups(rig)) == (1, 1, 1)
    details = await outcome_details(rig)
    assert details[0]["kind"] == "unknown" and details[1] == {"found": True, "call_id": call_id}


@pytest.mark.parametrize("mode", ERAS)
async def test_a_timeout_when_no_call_was_created_holds_the_number_and_never_retries(
    place: LedgerPlace, mode: str
) -> None:
    rig = make_rig(place)
    post_fails(rig, kind="hang")
    async with connected(rig, mode) as client:
        args = dispatch_args(rig)
        token = await preview_token(client, args)
        result = await confirm(client, args, token)
        replay = await confirm(client, args, token)
        held = await client.call_tool("dispatch_call", args)
        assert (rig.posts(), rig.sandbox.dispatched) == (1, 0)
        await rig.sandbox.advance(60 * 60)  # the hold ends with the cooldown
        call_id_of(await confirmed(client, rig))
    assert not result.is_error and result.structured_content is not None
    assert result.structured_content["status"] == "outcome_unknown"
    assert "Nothing was retried" in text_of(result) and "held" in text_of(result)
    assert replay.structured_content is not None and replay.structured_content["status"] == "outcome_unknown"
    assert held.is_error and "- unknown_outcome_hold:" in text_of(held) and "- cooldown:" in text_of(held)
    assert (rig.posts(), rig.sandbox.dispatched) == (2, 1)


@pytest.mark.parametrize("mode", ERAS)
async def test_a_held_number_is_looked_up_again_and_freed_of_its_hold_once_the_call_is_found(
    place: LedgerPlace, mode: str
) -> None:
    rig = make_rig(place)
    post_fails(rig, kind="drop", after_processing=True)  # the call is created, the answer is lost
    rig.sandbox.faults.add(Fault(kind="status", status=400, method="GET", path="/calls", times=None))
    async with connected(rig, mode) as client:
        args = dispatch_args(rig)
        token = await preview_token(client, args)
        unknown = await confirm(client, args, token)
        assert unknown.structured_content is not None and unknown.structured_content["status"] == "outcome_unknown"
        rig.sandbox.faults.clear()
        again = await client.call_tool("dispatch_call", args)
        replay = await confirm(client, args, token)
    assert again.is_error and "- cooldown:" in text_of(again) and "unknown_outcome_hold" not in text_of(again)
    assert call_id_of(replay) == created_call(rig)
    assert (rig.posts(), rig.sandbox.dispatched) == (1, 1)


@pytest.mark.parametrize("mode", ERAS)
async def test_start_up_reconciles_an_unknown_outcome_by_its_intent(place: LedgerPlace, mode: str) -> None:
    rig = make_rig(place)
    post_fails(rig, kind="drop", after_processing=True)
    rig.sandbox.faults.add(Fault(kind="status", status=400, method="GET", path="/calls", times=None))
    async with connected(rig, mode) as client:
        args = dispatch_args(rig)
        token = await preview_token(client, args)
        assert (await confirm(client, args, token)).structured_content["status"] == "outcome_unknown"
    rig.sandbox.faults.clear()
    restarted = make_rig(place, sandbox=rig.sandbox)
    async with connected(restarted, mode) as client:
        reconciled = [e for e in await audit_of(rig) if e.kind == "reconcile"]
        replay = await confirm(client, args, token)
    assert reconciled[-1].detail == {"found": True, "call_id": created_call(rig)}
    assert call_id_of(replay) == created_call(rig)
    assert (rig.posts(), rig.sandbox.dispatched) == (1, 1)


async def test_start_up_settles_a_claim_left_dialing_by_a_stopped_process(place: LedgerPlace) -> None:
    rig = make_rig(place)
    now = rig.sandbox.clock.now()
    ledger = await open_ledger(rig.settings)
    found_args = BoundArgs(agent_id=rig.sandbox.seed_ids.deployed_agent_id, to_number=US_NUMBER)
    lost_args = BoundArgs(agent_id=rig.sandbox.seed_ids.deployed_agent_id, to_number="+14155550136")
    tokens = []
    for args in (found_args, lost_args):
        # A preview shown, then its token confirmed: the dial is claimed, as the stopped process left it.
        token = new_token()
        consent = await single_consent(ledger, args, token=token, now=now)
        decision = await ledger.decide(
            dial(args, consent=consent, use=token_use(consent, args)), allow, clock=Clock(now)
        )
        assert decision.claimed and decision.intent is not None and decision.intent.state == "dialing"
        tokens.append(token)
    await ledger.aclose()  # the process stops here, after its POST for the first intent only
    async with rig.sandbox.http_client() as http:
        await http.post("/calls", json={"agentId": found_args.agent_id, "toNumber": US_NUMBER})
    await rig.sandbox.advance(11 * 60)
    async with connected(rig) as client:
        found = await confirm(client, dispatch_args(rig), tokens[0])
        lost = await confirm(client, dispatch_args(rig, "+14155550136"), tokens[1])
        held = await client.call_tool("dispatch_call", dispatch_args(rig, "+14155550136"))
    assert call_id_of(found) == created_call(rig)
    assert lost.structured_content is not None and lost.structured_content["status"] == "outcome_unknown"
    assert held.is_error and "unknown_outcome_hold" in text_of(held)
    assert (rig.posts(), rig.sandbox.dispatched) == (1, 1)


@pytest.mark.parametrize("mode", ERAS)
async def test_reconciliation_never_claims_a_call_another_dispatch_already_recorded(
    place: LedgerPlace, mode: str
) -> None:
    rig = make_rig(place, redial_cooldown_minutes=0)  # the owner allows calling a number back at once
    async with connected(rig, mode) as client:
        earlier = call_id_of(await confirmed(client, rig))
        post_fails(rig, kind="hang")  # the second request leaves and no call is created
        result = await confirmed(client, rig)
    assert result.structured_content is not None and result.structured_content["status"] == "outcome_unknown"
    assert earlier not in text_of(result)
    assert (await outcome_details(rig))[-1] == {"found": False, "call_id": None}
    assert (rig.posts(), rig.sandbox.dispatched) == (2, 1)
