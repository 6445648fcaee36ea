"""Completions of id arguments from the live (sandbox) account, cached briefly, in both eras."""

from __future__ import annotations

import mcp_types as types
import pytest

from outboundcalls.sandbox import Fault
from tests.harness import Rig, connected

pytestmark = pytest.mark.anyio

CALL_AND_REPORT = types.PromptReference(type="ref/prompt", name="call_and_report")
CAMPAIGN_REPORT = types.PromptReference(type="ref/prompt", name="campaign_report")
CALL = types.ResourceTemplateReference(type="ref/resource", uri="outboundcalls://calls/{call_id}/transcript")
CONTACT_LIST = types.ResourceTemplateReference(
    type="ref/resource", uri="outboundcalls://contact-lists/{contact_list_id}"
)
CAMPAIGN = types.ResourceTemplateReference(type="ref/resource", uri="outboundcalls://campaigns/{campaign_id}")


async def test_the_server_advertises_completions(rig: Rig, mode: str) -> None:
    async with connected(rig, mode) as client:
        assert client.server_capabilities is not None and client.server_capabilities.completions is not None


async def test_agent_ids_complete_with_deployed_agents_first(rig: Rig, mode: str) -> None:
    ids = rig.sandbox.seed_ids
    async with connected(rig, mode) as client:
        done = (await client.complete(CALL_AND_REPORT, {"name": "agent_id", "value": ""})).completion
    assert set(done.values[:3]) == set(ids.deployed_agent_ids)
    assert set(done.values[3:]) == {ids.draft_agent_id, ids.paused_agent_id}
    assert ids.foreign_agent_id not in done.values and done.total == 5 and done.has_more is False


async def test_a_typed_prefix_narrows_the_ids(rig: Rig, mode: str) -> None:
    agent_id = rig.sandbox.seed_ids.deployed_agent_id
    async with connected(rig, mode) as client:
        done = (await client.complete(CALL_AND_REPORT, {"name": "agent_id", "value": agent_id[:8].upper()})).completion
    assert agent_id in done.values and all(v.lower().startswith(agent_id[:8].lower()) for v in done.values)


async def test_call_campaign_and_contact_list_ids_complete_from_the_account(rig: Rig, mode: str) -> None:
    ids = rig.sandbox.seed_ids
    async with connected(rig, mode) as client:
        calls = (await client.complete(CALL, {"name": "call_id", "value": ""})).completion
        campaigns = (await client.complete(CAMPAIGN_REPORT, {"name": "campaign_id", "value": ""})).completion
        by_template = (await client.complete(CAMPAIGN, {"name": "campaign_id", "value": ""})).completion
        lists = (await client.complete(CONTACT_LIST, {"name": "contact_list_id", "value": ""})).completion
    assert len(calls.values) == 100 and calls.total == 200 and calls.has_more is True
    assert calls.values[1] == ids.completed_call_id and ids.foreign_call_id not in calls.values
    assert campaigns.values == by_template.values == [ids.campaign_id]
    assert lists.values == [ids.contact_list_id]


async def test_ids_are_read_once_per_half_minute(rig: Rig, mode: str) -> None:
    async with connected(rig, mode) as client:
        for _ in range(3):
            await client.complete(CALL_AND_REPORT, {"name": "agent_id", "value": ""})
        await rig.sandbox.advance(29)
        await client.complete(CALL_AND_REPORT, {"name": "agent_id", "value": "c"})
        read_within = rig.sandbox.count("GET", "/agents")
        await rig.sandbox.advance(2)
        await client.complete(CALL_AND_REPORT, {"name": "agent_id", "value": ""})
    assert read_within == 1 and rig.sandbox.count("GET", "/agents") == 2


async def test_other_arguments_and_upstream_failures_offer_nothing(rig: Rig, mode: str) -> None:
    rig.sandbox.faults.add(Fault(kind="status", status=502, path="/agents", times=None))
    async with connected(rig, mode) as client:
        goal = (await client.complete(CALL_AND_REPORT, {"name": "goal", "value": "con"})).completion
        failed = (await client.complete(CALL_AND_REPORT, {"name": "agent_id", "value": ""})).completion
    assert goal.values == [] and failed.values == []
