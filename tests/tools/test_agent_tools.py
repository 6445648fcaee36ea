"""list_agents and get_agent end to end against the sandbox, in both eras."""

from __future__ import annotations

import pytest

from outboundcalls.sandbox import Fault
from tests.harness import Rig, connected, first_text

pytestmark = pytest.mark.anyio


async def test_list_agents_returns_every_agent_with_id_name_and_status_only(rig: Rig, mode: str) -> None:
    async with connected(rig, mode) as client:
        result = await client.call_tool("list_agents", {})
    assert not result.is_error and result.structured_content is not None
    agents = result.structured_content["agents"]
    ids = rig.sandbox.seed_ids
    assert [a["id"] for a in agents[:3]] == list(ids.deployed_agent_ids)
    assert {a["id"] for a in agents} >= {ids.draft_agent_id, ids.paused_agent_id}
    assert ids.foreign_agent_id not in {a["id"] for a in agents}
    assert agents[0] == {"id": ids.deployed_agent_id, "name": "Ava — appointment reminders", "status": "deployed"}
    assert all(set(a) == {"id", "name", "status"} for a in agents)


async def test_list_agents_passes_the_status_filter_and_the_limit_upstream(rig: Rig, mode: str) -> None:
    async with connected(rig, mode) as client:
        result = await client.call_tool("list_agents", {"status": "deployed", "limit": 2})
    assert result.structured_content is not None
    assert [a["status"] for a in result.structured_content["agents"]] == ["deployed", "deployed"]
    assert rig.sandbox.requests[-1].query == {"status": "deployed", "limit": "2"}


async def test_list_agents_sends_no_status_filter_when_none_is_given(rig: Rig, mode: str) -> None:
    async with connected(rig, mode) as client:
        await client.call_tool("list_agents", {})
    assert "status" not in rig.sandbox.requests[-1].query


async def test_list_agents_over_200_is_refused_by_the_schema_naming_the_maximum_and_nothing_is_sent(
    rig: Rig, mode: str
) -> None:
    async with connected(rig, mode) as client:
        result = await client.call_tool("list_agents", {"limit": 201})
    assert result.is_error
    assert "less than or equal to 200" in first_text(result)
    assert rig.sandbox.requests == []


async def test_get_agent_returns_the_agent_in_detail(rig: Rig, mode: str) -> None:
    agent_id = rig.sandbox.seed_ids.deployed_agent_id
    async with connected(rig, mode) as client:
        result = await client.call_tool("get_agent", {"agent_id": agent_id})
    assert result.structured_content == {
        "id": agent_id,
        "name": "Ava — appointment reminders",
        "status": "deployed",
        "language": "en",
        "created_at": "2026-09-01T17:00:00Z",
    }


async def test_get_agent_of_another_account_is_a_404_tool_error_naming_the_id(rig: Rig, mode: str) -> None:
    foreign = rig.sandbox.seed_ids.foreign_agent_id
    async with connected(rig, mode) as client:
        result = await client.call_tool("get_agent", {"agent_id": foreign})
    assert result.is_error
    text = first_text(result)
    assert f"agent_id '{foreign}'" in text and "404" in text and "list_" in text


async def test_get_agent_with_an_id_that_could_change_the_path_is_refused_before_sending(rig: Rig, mode: str) -> None:
    async with connected(rig, mode) as client:
        result = await client.call_tool("get_agent", {"agent_id": "../me"})
    assert result.is_error and "agent_id" in first_text(result)
    assert rig.sandbox.requests == []


async def test_a_refused_key_is_a_tool_error_telling_the_owner_to_set_a_valid_one(rig: Rig, mode: str) -> None:
    rig.sandbox.faults.add(Fault(kind="status", status=401))
    async with connected(rig, mode) as client:
        result = await client.call_tool("list_agents", {})
    assert result.is_error
    text = first_text(result)
    assert "refused the API key" in text and "OUTBOUNDCALLS_API_KEY" in text
