"""get_campaign end to end against the sandbox, in both eras."""

from __future__ import annotations

import pytest

from outboundcalls.sandbox import Fault
from tests.harness import Rig, connected, first_text

pytestmark = pytest.mark.anyio


async def test_get_campaign_reports_progress_spend_and_success_rate(rig: Rig, mode: str) -> None:
    campaign_id = rig.sandbox.seed_ids.campaign_id
    async with connected(rig, mode) as client:
        result = await client.call_tool("get_campaign", {"campaign_id": campaign_id})
    assert not result.is_error
    assert result.structured_content == {
        "id": campaign_id,
        "name": "Spring check-up reminders",
        "status": "running",
        "calls_total": 40,
        "completed": 30,
        "successful": 18,
        "failed": 12,
        "credits_used": 1540.64,
        "success_rate": 0.6,
    }


async def test_get_campaign_of_another_account_is_a_404_naming_the_id(rig: Rig, mode: str) -> None:
    foreign = rig.sandbox.seed_ids.foreign_campaign_id
    async with connected(rig, mode) as client:
        result = await client.call_tool("get_campaign", {"campaign_id": foreign})
    assert result.is_error
    text = first_text(result)
    assert f"campaign_id '{foreign}'" in text and "404" in text


async def test_get_campaign_with_a_refused_key_says_to_set_a_valid_one(rig: Rig, mode: str) -> None:
    rig.sandbox.faults.add(Fault(kind="status", status=401))
    async with connected(rig, mode) as client:
        result = await client.call_tool("get_campaign", {"campaign_id": rig.sandbox.seed_ids.campaign_id})
    assert result.is_error
    assert "refused the API key" in first_text(result)
