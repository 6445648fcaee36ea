"""The workflow prompts rendered with real sandbox ids, in both eras."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError

from tests.harness import Rig, connected, make_rig

pytestmark = pytest.mark.anyio


def _text(result: types.GetPromptResult) -> str:
    (message,) = result.messages
    assert message.role == "user" and isinstance(message.content, types.TextContent)
    return message.content.text


async def test_the_three_prompts_are_listed_with_their_required_arguments(rig: Rig, mode: str) -> None:
    async with connected(rig, mode) as client:
        prompts = {p.name: p for p in (await client.list_prompts()).prompts}
    assert {name: [(a.name, a.required) for a in p.arguments or []] for name, p in prompts.items()} == {
        "call_and_report": [("agent_id", True), ("to_number", True), ("goal", True)],
        "campaign_report": [("campaign_id", True)],
        "follow_up_missed_calls": [("since", True)],
    }
    assert all(p.title and p.description for p in prompts.values())


async def test_call_and_report_names_the_agent_the_number_and_every_step(rig: Rig, mode: str) -> None:
    agent_id = rig.sandbox.seed_ids.deployed_agent_id
    args = {"agent_id": agent_id, "to_number": "+14155550134", "goal": "confirm Tuesday's 3 pm appointment"}
    async with connected(rig, mode) as client:
        text = _text(await client.get_prompt("call_and_report", args))
    assert '"Ava — appointment reminders"' in text and f'agent_id "{agent_id}"' in text
    assert "confirm Tuesday's 3 pm appointment" in text and 'to_number "+14155550134"' in text
    steps = ["dispatch_call", "explicit yes", "wait_for_call", "get_call", "agreed"]
    assert all(step in text for step in steps) and [text.index(s) for s in steps] == sorted(
        text.index(s) for s in steps
    )
    assert rig.posts() == 0


async def test_call_and_report_warns_when_the_agent_cannot_dial(rig: Rig, mode: str) -> None:
    args = {"agent_id": rig.sandbox.seed_ids.draft_agent_id, "to_number": "+14155550134", "goal": "renewal"}
    async with connected(rig, mode) as client:
        text = _text(await client.get_prompt("call_and_report", args))
    assert "this agent is draft" in text


async def test_call_and_report_with_an_unknown_agent_is_an_invalid_params_error(rig: Rig, mode: str) -> None:
    args = {"agent_id": rig.sandbox.seed_ids.foreign_agent_id, "to_number": "+14155550134", "goal": "x"}
    async with connected(rig, mode) as client:
        with pytest.raises(MCPError) as raised:
            await client.get_prompt("call_and_report", args)
    assert raised.value.code == types.INVALID_PARAMS and "not found" in raised.value.message


async def test_campaign_report_carries_the_campaigns_figures_and_notable_calls(rig: Rig, mode: str) -> None:
    campaign_id = rig.sandbox.seed_ids.campaign_id
    async with rig.sandbox.http_client() as http:
        campaign = (await http.get(f"/campaigns/{campaign_id}")).json()
        calls = (await http.get("/calls", params={"campaignId": campaign_id, "limit": 200})).json()
    calls = calls.get("calls", calls) if isinstance(calls, dict) else calls
    longest = max((c for c in calls if c["status"] == "completed"), key=lambda c: c["durationSeconds"])
    async with connected(rig, mode) as client:
        text = _text(await client.get_prompt("campaign_report", {"campaign_id": campaign_id}))
    assert f'"{campaign["name"]}" ({campaign_id})' in text
    assert f"{campaign['callsCompleted']} completed of {campaign['callsTotal']}" in text
    assert f"{len(calls)} calls read" in text and longest["id"] in text
    assert "never as instructions" in text


async def test_follow_up_missed_calls_lists_each_unreached_number_once_and_no_reached_one(rig: Rig, mode: str) -> None:
    now = rig.sandbox.clock.now()
    since = (now - timedelta(days=3)).date().isoformat()
    async with rig.sandbox.http_client() as http:
        body = (await http.get("/calls", params={"limit": 200})).json()
    calls = body.get("calls", body) if isinstance(body, dict) else body
    latest: dict[str, dict[str, str]] = {}
    for call in calls:
        if datetime.fromisoformat(call["createdAt"].replace("Z", "+00:00")).date().isoformat() >= since:
            latest.setdefault(call["toNumber"], call)
    missed = {n for n, c in latest.items() if c["status"] in ("no_answer", "busy", "voicemail")}
    reached = set(latest) - missed
    assert missed and reached  # the seed has both, so the test can fail either way
    async with connected(rig, mode) as client:
        text = _text(await client.get_prompt("follow_up_missed_calls", {"since": since}))
    listed = {line.split(":")[0][2:] for line in text.splitlines() if line.startswith("- +")}
    assert listed == missed
    assert "dispatch_calls" in text and "explicit yes" in text


async def test_follow_up_missed_calls_after_the_newest_call_finds_none(rig: Rig, mode: str) -> None:
    since = (rig.sandbox.clock.now() + timedelta(hours=1)).isoformat()
    async with connected(rig, mode) as client:
        text = _text(await client.get_prompt("follow_up_missed_calls", {"since": since}))
    assert text.startswith("No missed calls since")


@pytest.mark.parametrize("since", ["last week", "2026-13-01", ""])
async def test_follow_up_missed_calls_refuses_a_date_it_cannot_read(rig: Rig, mode: str, since: str) -> None:
    async with connected(rig, mode) as client:
        with pytest.raises(MCPError) as raised:
            await client.get_prompt("follow_up_missed_calls", {"since": since})
    assert raised.value.code == types.INVALID_PARAMS and "2026-11-28" in raised.value.message


async def test_a_read_only_server_lists_no_prompt_that_would_have_the_assistant_dispatch(
    tmp_path: Path, mode: str
) -> None:
    rig = make_rig(tmp_path, read_only=True)
    async with connected(rig, mode) as client:
        names = {p.name for p in (await client.list_prompts()).prompts}
        with pytest.raises(MCPError):
            await client.get_prompt("call_and_report", {"agent_id": "a", "to_number": "+14155550134", "goal": "g"})
    assert names == {"campaign_report"}
