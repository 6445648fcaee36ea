"""get_balance, the server's modes (no key, read-only, sandbox) and its instructions, in both eras."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from outboundcalls.sandbox import ManualClock, Sandbox
from outboundcalls_mcp.server.app import build_server
from outboundcalls_mcp.server.settings import Settings
from outboundcalls_mcp.tools import READ_TOOLS, WRITE_TOOLS
from tests.harness import NOON_NEW_YORK, Rig, connected, first_text, make_rig, make_settings

pytestmark = pytest.mark.anyio

ALL_TOOLS = {*READ_TOOLS, *WRITE_TOOLS}
# Arguments that pass every input schema, so that what answers is the tool itself.
VALID_ARGS: dict[str, dict[str, Any]] = {
    "get_balance": {},
    "list_calls": {},
    "get_call": {"call_id": "call_1"},
    "wait_for_call": {"call_id": "call_1"},
    "wait_for_calls": {"call_ids": ["call_1"]},
    "list_agents": {},
    "get_agent": {"agent_id": "agent_1"},
    "list_contacts": {},
    "get_campaign": {"campaign_id": "campaign_1"},
    "add_contact": {"contact_list_id": "list_1", "phone": "+14155550134"},
    "dispatch_call": {"agent_id": "agent_1", "to_number": "+14155550134"},
    "dispatch_calls": {"agent_id": "agent_1", "to_numbers": ["+14155550134"]},
}


async def test_get_balance_reports_the_sandbox_account_and_that_it_can_dispatch(rig: Rig, mode: str) -> None:
    async with connected(rig, mode) as client:
        result = await client.call_tool("get_balance", {})
    assert not result.is_error
    assert result.structured_content == {
        "credits": 1000.0,
        "can_dispatch": True,
        "minimum_credits": 25.0,
        "email": "demo@sandbox.outboundcalls.test",
        "plan": "growth",
        "subscription_status": "active",
        "renews_at": "2026-12-18T17:00:00Z",
        "sandbox": True,
    }


async def test_get_balance_below_25_credits_says_no_call_can_be_dispatched(rig: Rig, mode: str) -> None:
    rig.sandbox.credits = 24.5
    async with connected(rig, mode) as client:
        result = await client.call_tool("get_balance", {})
    assert result.structured_content is not None
    assert (result.structured_content["credits"], result.structured_content["can_dispatch"]) == (24.5, False)


async def test_get_balance_against_the_real_api_does_not_claim_to_be_the_sandbox(tmp_path: Path, mode: str) -> None:
    # The sandbox stands in for the real API here; only the setting says which one the server thinks it is.
    sandbox = Sandbox(clock=ManualClock(datetime.fromisoformat(NOON_NEW_YORK)))
    server = build_server(make_settings(tmp_path, sandbox=False), transport=sandbox.transport())
    async with Client(server, mode=mode) as client:
        result = await client.call_tool("get_balance", {})
        assert client.instructions is not None and "SANDBOX" not in client.instructions
    assert result.structured_content is not None and result.structured_content["sandbox"] is False


async def test_sandbox_mode_says_so_in_the_instructions(rig: Rig, mode: str) -> None:
    async with connected(rig, mode) as client:
        instructions = client.instructions
    assert instructions is not None
    assert "SANDBOX MODE" in instructions and "no real calls" in instructions
    for step in ("list_agents", "dispatch_call", "explicit yes", "wait_for_call", "get_call", "untrusted"):
        assert step in instructions


@pytest.mark.parametrize("tool", sorted(ALL_TOOLS))
async def test_without_a_key_every_tool_says_how_to_set_one_or_use_the_sandbox(
    tmp_path: Path, mode: str, tool: str
) -> None:
    server = build_server(Settings(state_dir=tmp_path))
    async with Client(server, mode=mode) as client:
        assert {t.name for t in (await client.list_tools()).tools} == ALL_TOOLS
        result = await client.call_tool(tool, VALID_ARGS[tool])
    assert result.is_error
    text = first_text(result)
    assert "OUTBOUNDCALLS_API_KEY" in text and "--sandbox" in text


async def test_read_only_mode_registers_no_tool_that_dials_or_writes(tmp_path: Path, mode: str) -> None:
    rig = make_rig(tmp_path, read_only=True)
    async with connected(rig, mode) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        refused = await client.call_tool("dispatch_call", VALID_ARGS["dispatch_call"])
        assert client.instructions is not None and "READ-ONLY" in client.instructions
    assert names == set(READ_TOOLS)
    assert refused.is_error and first_text(refused) == "Unknown tool: dispatch_call"
    assert rig.posts() == 0
