"""Each pre-flight rule through a real MCP client: a dispatch it lets through, and one it refuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from tests.harness import Rig, connected, make_rig
from tests.server.dispatch_kit import (
    ERAS,
    OTHER_US_NUMBER,
    US_NUMBER,
    audit_of,
    call_id_of,
    confirm,
    dispatch_args,
    preview_token,
    sandbox_at,
    text_of,
)

pytestmark = pytest.mark.anyio


async def dial(client: Client, args: dict[str, Any]) -> str:
    """Preview and confirm by token; the call id."""
    return call_id_of(await confirm(client, args, await preview_token(client, args)))


async def refused(client: Client, args: dict[str, Any]) -> str:
    """The refusal text of a dispatch that pre-flight stops at the preview."""
    result = await client.call_tool("dispatch_call", args)
    assert result.is_error, result.structured_content
    assert result.structured_content is None  # no preview, no token
    return text_of(result)


async def check(rig: Rig, mode: str, passes: dict[str, Any], fails: dict[str, Any], rule: str, *says: str) -> None:
    """One dispatch passes (one POST), the other is refused naming the rule (no POST)."""
    async with connected(rig, mode) as client:
        text = await refused(client, fails)
        assert rig.posts() == 0
        await dial(client, passes)
    assert rig.posts() == 1
    assert f"- {rule}:" in text, text
    for phrase in says:
        assert phrase in text, text
    refusals = [entry for entry in await audit_of(rig) if entry.kind == "refusal"]
    rules = refusals[-1].detail["rules"]
    assert isinstance(rules, list) and rule in rules, rules


@pytest.mark.parametrize("mode", ERAS)
async def test_validity(tmp_path: Path, mode: str) -> None:
    rig = make_rig(tmp_path)
    await check(rig, mode, dispatch_args(rig), dispatch_args(rig, "+1 415 555 01"), "validity", "not a dialable number")


@pytest.mark.parametrize("mode", ERAS)
@pytest.mark.parametrize("emergency", ["911", "112", "+1 911"])
async def test_emergency_numbers_are_never_called(tmp_path: Path, mode: str, emergency: str) -> None:
    rig = make_rig(tmp_path, allowed_number_types="FIXED_LINE,MOBILE,FIXED_LINE_OR_MOBILE,UNKNOWN,PREMIUM_RATE")
    await check(rig, mode, dispatch_args(rig), dispatch_args(rig, emergency), "emergency", "never called")


@pytest.mark.parametrize("mode", ERAS)
async def test_agent_must_exist_and_be_deployed(tmp_path: Path, mode: str) -> None:
    rig = make_rig(tmp_path)
    ids = rig.sandbox.seed_ids
    await check(
        rig, mode, dispatch_args(rig), {**dispatch_args(rig), "agent_id": ids.draft_agent_id}, "agent", "not deployed"
    )
    async with connected(rig, mode) as client:
        text = await refused(client, {**dispatch_args(rig, OTHER_US_NUMBER), "agent_id": ids.foreign_agent_id})
    assert "does not exist" in text
    assert rig.posts() == 1


@pytest.mark.parametrize("mode", ERAS)
async def test_balance_must_meet_the_vendor_minimum(tmp_path: Path, mode: str) -> None:
    rig = make_rig(tmp_path)
    rig.sandbox.credits = 24.5
    async with connected(rig, mode) as client:
        text = await refused(client, dispatch_args(rig))
    assert "- balance:" in text and "25-credit minimum" in text
    rig = make_rig(tmp_path / "topped-up")
    rig.sandbox.credits = 25
    async with connected(rig, mode) as client:
        await dial(client, dispatch_args(rig))
    assert rig.posts() == 1


@pytest.mark.parametrize("mode", ERAS)
async def test_number_type(tmp_path: Path, mode: str) -> None:
    rig = make_rig(tmp_path)
    await check(
        rig,
        mode,
        dispatch_args(rig),
        dispatch_args(rig, "+1 900 555 0100"),
        "number_type",
        "PREMIUM_RATE",
        "OUTBOUNDCALLS_ALLOWED_NUMBER_TYPES",
    )


@pytest.mark.parametrize("mode", ERAS)
async def test_number_type_follows_the_owners_setting(tmp_path: Path, mode: str) -> None:
    rig = make_rig(tmp_path, allowed_number_types="FIXED_LINE_OR_MOBILE")
    await check(rig, mode, dispatch_args(rig), dispatch_args(rig, "+1 800 234 5678"), "number_type", "TOLL_FREE")


@pytest.mark.parametrize("mode", ERAS)
async def test_country(tmp_path: Path, mode: str) -> None:
    rig = make_rig(tmp_path, allowed_countries="US,CA")
    await check(
        rig,
        mode,
        dispatch_args(rig),
        dispatch_args(rig, "+44 20 7183 8750"),
        "country",
        "limited to CA, US",
        "OUTBOUNDCALLS_ALLOWED_COUNTRIES",
    )


@pytest.mark.parametrize("mode", ERAS)
async def test_rate(tmp_path: Path, mode: str) -> None:
    # 17:00 UTC: London 17:00 (24.5 credits/min) and Paris 18:00 (28) are both inside calling hours.
    rig = make_rig(tmp_path, max_credits_per_minute=25)
    await check(
        rig,
        mode,
        dispatch_args(rig, "+44 20 7183 8750"),
        dispatch_args(rig, "+33 1 42 68 53 00"),
        "rate",
        "28 credits/min, over the cap of 25",
        "OUTBOUNDCALLS_MAX_CREDITS_PER_MINUTE",
    )


@pytest.mark.parametrize("mode", ERAS)
async def test_do_not_call(tmp_path: Path, mode: str) -> None:
    listed = tmp_path / "do-not-call.txt"
    listed.write_text("# opted out by phone, 2026-11-02\n(415) 555-0134\n\n+44 20 7183 8750  # London office\n")
    rig = make_rig(tmp_path, do_not_call_file=listed)
    await check(
        rig,
        mode,
        dispatch_args(rig, OTHER_US_NUMBER),
        dispatch_args(rig, "+1 415-555-0134"),
        "do_not_call",
        "+14155550134 is on the do-not-call list",
        "OUTBOUNDCALLS_DO_NOT_CALL_FILE",
    )


@pytest.mark.parametrize("mode", ERAS)
async def test_hours_refuse_a_destination_where_it_is_night(tmp_path: Path, mode: str) -> None:
    # 17:00 UTC is 09:00 in San Francisco and 02:00 in Tokyo.
    rig = make_rig(tmp_path)
    await check(
        rig,
        mode,
        dispatch_args(rig),
        dispatch_args(rig, "+81 3 1234 5678"),
        "hours",
        "02:00 in Asia/Tokyo, outside 08:00-21:00",
        "OUTBOUNDCALLS_CALLING_HOURS",
    )


@pytest.mark.parametrize("mode", ERAS)
async def test_hours_use_the_owners_window(tmp_path: Path, mode: str) -> None:
    rig = make_rig(tmp_path, calling_hours="10:00-17:00")  # 09:00 in San Francisco, 12:00 in New York
    await check(
        rig, mode, dispatch_args(rig, "+1 212 555 0134"), dispatch_args(rig), "hours", "09:00 in America/Los_Angeles"
    )


@pytest.mark.parametrize("mode", ERAS)
async def test_hours_check_every_zone_of_a_number_that_spans_two(tmp_path: Path, mode: str) -> None:
    # +1 208 555 0100 (Idaho) may be in Boise or Los Angeles time; at 04:30 UTC it is 21:30 and 20:30 there.
    rig = make_rig(tmp_path, sandbox=sandbox_at("2026-12-01T04:30:00+00:00"))
    async with connected(rig, mode) as client:
        text = await refused(client, dispatch_args(rig, "+1 208 555 0100"))
    assert "21:30 in America/Boise" in text and "Los_Angeles" not in text.split("- hours:")[1].split(".")[0]
    # An hour earlier both zones are inside: 20:30 and 19:30.
    rig = make_rig(tmp_path / "earlier", sandbox=sandbox_at("2026-12-01T03:30:00+00:00"))
    async with connected(rig, mode) as client:
        result = await client.call_tool("dispatch_call", dispatch_args(rig, "+1 208 555 0100"))
        assert result.structured_content is not None
        local = result.structured_content["preview"]["local_time"]
        assert "20:30 America/Boise" in local and "19:30 America/Los_Angeles" in local
        await dial(client, dispatch_args(rig, "+1 208 555 0100"))
    assert rig.posts() == 1


@pytest.mark.parametrize("mode", ERAS)
async def test_hours_of_a_number_without_an_area_use_a_named_zone(tmp_path: Path, mode: str) -> None:
    rig = make_rig(tmp_path)
    async with connected(rig, mode) as client:
        result = await client.call_tool("dispatch_call", dispatch_args(rig, "+1 800 234 5678"))
    assert result.structured_content is not None
    local = result.structured_content["preview"]["local_time"]
    assert local.startswith("Mon 12:00 America/New_York") and "no geographic area" in local
    assert rig.posts() == 0


@pytest.mark.parametrize("mode", ERAS)
async def test_the_daily_call_cap(tmp_path: Path, mode: str) -> None:
    rig = make_rig(tmp_path, max_calls_per_day=2)
    async with connected(rig, mode) as client:
        await dial(client, dispatch_args(rig))
        await dial(client, dispatch_args(rig, OTHER_US_NUMBER))
        text = await refused(client, dispatch_args(rig, "+1 415 555 0136"))
    assert "- daily_calls: 2 calls were dialed in the last 24 hours; the cap is 2" in text
    assert "OUTBOUNDCALLS_MAX_CALLS_PER_DAY" in text
    assert rig.posts() == 2


@pytest.mark.parametrize("mode", ERAS)
async def test_the_daily_credit_cap_counts_five_estimated_minutes_a_call(tmp_path: Path, mode: str) -> None:
    rig = make_rig(tmp_path, max_credits_per_day=150)  # one US call counts 5 x 19.95 = 99.75
    async with connected(rig, mode) as client:
        await dial(client, dispatch_args(rig))
        text = await refused(client, dispatch_args(rig, OTHER_US_NUMBER))
    assert "- daily_credits: 99.75 estimated credits in the last 24 hours plus 99.75" in text
    assert "OUTBOUNDCALLS_MAX_CREDITS_PER_DAY" in text
    assert rig.posts() == 1


@pytest.mark.parametrize("mode", ERAS)
async def test_the_caps_roll_over_a_24_hour_window(tmp_path: Path, mode: str) -> None:
    rig = make_rig(tmp_path, max_calls_per_day=1, calling_hours="00:00-24:00")
    async with connected(rig, mode) as client:
        await dial(client, dispatch_args(rig))
        await rig.sandbox.advance(23 * 3600)
        assert "daily_calls" in await refused(client, dispatch_args(rig, OTHER_US_NUMBER))
        await rig.sandbox.advance(3600)
        await dial(client, dispatch_args(rig, OTHER_US_NUMBER))
    assert rig.posts() == 2


@pytest.mark.parametrize("mode", ERAS)
async def test_the_caps_survive_a_restart(tmp_path: Path, mode: str) -> None:
    rig = make_rig(tmp_path, max_calls_per_day=1)
    async with connected(rig, mode) as client:
        await dial(client, dispatch_args(rig))
    restarted = make_rig(tmp_path, sandbox=rig.sandbox, max_calls_per_day=1)
    async with connected(restarted, mode) as client:
        assert "daily_calls" in await refused(client, dispatch_args(restarted, OTHER_US_NUMBER))
    assert rig.posts() == 1


@pytest.mark.parametrize("mode", ERAS)
async def test_the_redial_cooldown_across_agents(tmp_path: Path, mode: str) -> None:
    rig = make_rig(tmp_path)
    other_agent = {**dispatch_args(rig), "agent_id": rig.sandbox.seed_ids.deployed_agent_ids[1]}
    async with connected(rig, mode) as client:
        await dial(client, dispatch_args(rig))
        await rig.sandbox.advance(59 * 60)
        text = await refused(client, other_agent)
        await rig.sandbox.advance(60)
        await dial(client, other_agent)
    assert f"- cooldown: {US_NUMBER} was dialed 59 minutes ago; the cooldown is 60 minutes" in text
    assert "OUTBOUNDCALLS_REDIAL_COOLDOWN_MINUTES" in text
    assert rig.posts() == 2


@pytest.mark.parametrize("mode", ERAS)
async def test_a_refusal_at_confirmation_names_the_rule_and_leaves_the_token_unused(tmp_path: Path, mode: str) -> None:
    rig = make_rig(tmp_path, max_calls_per_day=1)
    async with connected(rig, mode) as client:
        token = await preview_token(client, dispatch_args(rig))
        await dial(client, dispatch_args(rig, OTHER_US_NUMBER))  # uses up the day's one call
        result = await confirm(client, dispatch_args(rig), token)
    assert result.is_error and "daily_calls" in text_of(result)
    assert "token was not used and stays valid" in text_of(result)
    assert rig.posts() == 1
    refusal = [entry for entry in await audit_of(rig) if entry.kind == "refusal"][-1]
    assert refusal.detail["rules"] == ["daily_calls"] and refusal.detail["stage"] == "confirmation"


@pytest.mark.parametrize("mode", ERAS)
async def test_every_refusing_rule_is_named_most_fundamental_first(tmp_path: Path, mode: str) -> None:
    rig = make_rig(tmp_path, allowed_countries="GB", max_credits_per_minute=10)
    async with connected(rig, mode) as client:
        text = await refused(client, dispatch_args(rig, "+1 900 555 0100"))
    order = [line.split(":")[0] for line in text.splitlines() if line.startswith("- ")]
    assert order == ["- number_type", "- country", "- rate"]
    assert rig.posts() == 0
