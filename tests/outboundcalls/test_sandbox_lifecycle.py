"""A dispatched call's life on the manual clock: statuses, outcome, conversation and charge."""

from __future__ import annotations

from datetime import UTC, datetime

import anyio
import httpx2
import pytest

from outboundcalls.pricing import credits_for_call
from outboundcalls.sandbox import ManualClock, RealClock, Sandbox
from outboundcalls.sandbox.lifecycle import LiveOutcome

pytestmark = pytest.mark.anyio

US = "+14155551212"
GB = "+442079460123"


async def dial(http: httpx2.AsyncClient, sandbox: Sandbox, to_number: str = US, **extra: str) -> str:
    body = {"agentId": sandbox.seed_ids.deployed_agent_id, "toNumber": to_number, **extra}
    response = await http.post("/calls", json=body)
    assert response.status_code == 201, response.text
    call_id: str = response.json()["id"]
    return call_id


async def test_a_completed_call_walks_every_status_and_is_charged_on_completion() -> None:
    sandbox = Sandbox(credits=500)
    sandbox.script_next_call(outcome="completed", duration_seconds=95, ring_seconds=4)
    async with sandbox.http_client() as http:
        call_id = await dial(http, sandbox)
        seen = []
        for step in (0, 1.9, 0.1, 3.9, 0.1, 94.8, 0.2):
            await sandbox.advance(step)
            call = (await http.get(f"/calls/{call_id}")).json()
            seen.append(call["status"])
            if call["status"] != "completed":
                assert call["creditsCharged"] is None and sandbox.credits == 500
        assert seen == ["queued", "queued", "ringing", "ringing", "in_progress", "in_progress", "completed"]
        assert call["startedAt"] == "2025-06-02T09:00:06.000Z"
        assert call["endedAt"] == "2025-06-02T09:01:41.000Z"
        assert call["durationSeconds"] == 95
        assert call["creditsCharged"] == credits_for_call("US", 95)
        assert (await http.get("/me")).json()["credits"] == round(500 - credits_for_call("US", 95), 2)


async def test_the_charge_follows_the_destination_country() -> None:
    sandbox = Sandbox()
    sandbox.script_next_call(duration_seconds=60)
    async with sandbox.http_client() as http:
        call_id = await dial(http, sandbox, GB)
        await sandbox.advance(120)
        assert (await http.get(f"/calls/{call_id}")).json()["creditsCharged"] == credits_for_call("GB", 60)


async def test_a_completed_call_talks_with_the_named_contact() -> None:
    sandbox = Sandbox()
    contact = sandbox.state.contacts[sandbox.seed_ids.contact_id]
    async with sandbox.http_client() as http:
        sandbox.script_next_call()
        with_contact = await dial(http, sandbox, contact.phone, contactId=contact.id)
        sandbox.script_next_call()
        anonymous = await dial(http, sandbox)
        await sandbox.advance(60)
        named = (await http.get(f"/calls/{with_contact}")).json()
        unnamed = (await http.get(f"/calls/{anonymous}")).json()
    first_name = (contact.name or "").split(" ")[0]
    assert first_name in named["transcript"][0]["message"] and "Ava" in named["transcript"][0]["message"]
    assert "there" in unnamed["transcript"][0]["message"]
    for call in (named, unnamed):
        assert {turn["role"] for turn in call["transcript"]} == {"agent", "user"}
        assert call["summary"] and call["sentiment"] and call["extractedData"] and call["recordingUrl"]


@pytest.mark.parametrize("outcome", ["no_answer", "busy", "failed"])
async def test_an_unanswered_call_ends_without_charge_or_transcript(outcome: LiveOutcome) -> None:
    sandbox = Sandbox()
    sandbox.script_next_call(outcome=outcome)
    async with sandbox.http_client() as http:
        call_id = await dial(http, sandbox)
        await sandbox.advance(30)
        call = (await http.get(f"/calls/{call_id}")).json()
    assert call["status"] == outcome
    assert (call["creditsCharged"], call["durationSeconds"], call["transcript"]) == (0, 0, [])
    assert call["startedAt"] is None and call["endedAt"] is not None and call["recordingUrl"] is None
    assert sandbox.credits == 1000


async def test_a_voicemail_is_charged_for_the_message_left() -> None:
    sandbox = Sandbox()
    sandbox.script_next_call(outcome="voicemail", duration_seconds=30)
    async with sandbox.http_client() as http:
        call_id = await dial(http, sandbox)
        await sandbox.advance(60)
        call = (await http.get(f"/calls/{call_id}")).json()
    assert call["status"] == "voicemail"
    assert call["creditsCharged"] == credits_for_call("US", 30)
    assert [turn["role"] for turn in call["transcript"]] == ["agent"]


async def test_scripts_apply_to_the_next_calls_in_order() -> None:
    sandbox = Sandbox()
    sandbox.script_next_call(outcome="busy")
    sandbox.script_next_call(outcome="voicemail")
    async with sandbox.http_client() as http:
        first, second = await dial(http, sandbox), await dial(http, sandbox)
        await sandbox.advance(60)
        statuses = [(await http.get(f"/calls/{cid}")).json()["status"] for cid in (first, second)]
    assert statuses == ["busy", "voicemail"]


async def run_unscripted(seed: int, count: int) -> list[tuple[str, str, float]]:
    sandbox = Sandbox(seed=seed)
    async with sandbox.http_client() as http:
        ids = [await dial(http, sandbox) for _ in range(count)]
        await sandbox.advance(20)
        calls = [(await http.get(f"/calls/{cid}")).json() for cid in ids]
    return [(call["id"], call["status"], call["durationSeconds"]) for call in calls]


async def test_unscripted_calls_are_deterministic_for_a_seed_and_end_within_20_seconds() -> None:
    first = await run_unscripted(7, 12)
    assert first == await run_unscripted(7, 12)
    assert first != await run_unscripted(8, 12)
    assert {status for _, status, _ in first} <= {"completed", "voicemail", "no_answer", "busy", "failed"}
    assert len({status for _, status, _ in first}) > 1


async def test_the_402_appears_once_charges_take_the_balance_under_25() -> None:
    sandbox = Sandbox(credits=50)
    async with sandbox.http_client() as http:
        sandbox.script_next_call(duration_seconds=95)
        await dial(http, sandbox)
        await sandbox.advance(2)
        assert (
            await http.post("/calls", json={"agentId": sandbox.seed_ids.deployed_agent_id, "toNumber": US})
        ).status_code == 201
        await sandbox.advance(120)
        assert sandbox.credits < 25
        refused = await http.post("/calls", json={"agentId": sandbox.seed_ids.deployed_agent_id, "toNumber": US})
    assert refused.status_code == 402
    assert sandbox.dispatched == 2


async def test_a_charge_never_takes_the_balance_below_zero() -> None:
    sandbox = Sandbox(credits=30)
    sandbox.script_next_call(duration_seconds=600)
    async with sandbox.http_client() as http:
        call_id = await dial(http, sandbox)
        await sandbox.advance(700)
        call = (await http.get(f"/calls/{call_id}")).json()
    assert call["creditsCharged"] == 30
    assert sandbox.credits == 0


async def test_a_request_brings_calls_up_to_the_clock_without_a_tick() -> None:
    clock = ManualClock()
    sandbox = Sandbox(clock=clock)
    sandbox.script_next_call(duration_seconds=10)
    async with sandbox.http_client() as http:
        call_id = await dial(http, sandbox)
        clock.advance(60)
        assert (await http.get(f"/calls/{call_id}")).json()["status"] == "completed"
    assert sandbox.credits < 1000


async def test_calls_end_in_order_so_charges_are_deterministic() -> None:
    sandbox = Sandbox(credits=40)
    async with sandbox.http_client() as http:
        sandbox.script_next_call(duration_seconds=120)
        long_call = await dial(http, sandbox)
        sandbox.script_next_call(duration_seconds=30)
        short_call = await dial(http, sandbox)
        await sandbox.advance(300)
        long_charge = (await http.get(f"/calls/{long_call}")).json()["creditsCharged"]
        short_charge = (await http.get(f"/calls/{short_call}")).json()["creditsCharged"]
    assert short_charge == credits_for_call("US", 30)
    assert long_charge == round(40 - short_charge, 2)


async def test_running_ticks_in_the_background_until_it_exits() -> None:
    clock = ManualClock()
    sandbox = Sandbox(clock=clock)
    sandbox.script_next_call(duration_seconds=10)
    async with sandbox.http_client() as http:
        call_id = await dial(http, sandbox)
    async with sandbox.running(interval=0):
        clock.advance(60)
        with anyio.fail_after(5):
            while sandbox.state.calls[call_id].status != "completed":
                await anyio.sleep(0)
    assert sandbox.credits < 1000


def test_the_real_clock_is_utc_aware_and_the_manual_clock_only_moves_forward() -> None:
    assert RealClock().now().tzinfo is not None
    clock = ManualClock(datetime(2030, 1, 1, tzinfo=UTC))
    assert clock.advance(1.5) == datetime(2030, 1, 1, 0, 0, 1, 500000, tzinfo=UTC)
    with pytest.raises(ValueError):
        clock.advance(-1)
    with pytest.raises(ValueError):
        ManualClock(datetime(2030, 1, 1))


async def test_advance_needs_a_manual_clock() -> None:
    with pytest.raises(TypeError):
        await Sandbox(clock=RealClock()).advance(1)


def test_seeded_history_is_anchored_to_the_clock_and_deterministic_per_seed() -> None:
    first, again, other = Sandbox(seed=1), Sandbox(seed=1), Sandbox(seed=2)
    assert first.seed_ids == again.seed_ids
    assert first.seed_ids.deployed_agent_id != other.seed_ids.deployed_agent_id
    start = first.clock.now()
    assert all(call.created_at < start for call in first.state.calls.values())
    assert len(first.state.calls) >= 200


@pytest.mark.parametrize("bad", [{"outcome": "exploded"}, {"duration_seconds": -1}, {"ring_seconds": -2}])
def test_an_impossible_script_is_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Sandbox().script_next_call(**bad)  # type: ignore[arg-type]  # impossible scripts on purpose
