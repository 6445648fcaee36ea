"""Resources end to end against the sandbox, in both eras: list, read, transcript text, and the link from get_call."""

from __future__ import annotations

import json
import re

import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError

from tests.harness import Rig, connected

pytestmark = pytest.mark.anyio

TURN_LINE = re.compile(r"\[\d{2}:\d{2}\] (agent|user): \S.*")
TEMPLATES = {
    "outboundcalls://calls/{call_id}",
    "outboundcalls://calls/{call_id}/transcript",
    "outboundcalls://campaigns/{campaign_id}",
    "outboundcalls://contact-lists/{contact_list_id}",
}


def _text(result: types.ReadResourceResult) -> str:
    (content,) = result.contents
    assert isinstance(content, types.TextResourceContents)
    return content.text


async def test_the_agents_and_account_are_listed_and_the_call_templates_too(rig: Rig, mode: str) -> None:
    async with connected(rig, mode) as client:
        listed = {str(r.uri): r for r in (await client.list_resources()).resources}
        templates = {t.uri_template: t for t in (await client.list_resource_templates()).resource_templates}
    assert {"outboundcalls://agents", "outboundcalls://account"} <= set(listed)
    assert listed["outboundcalls://agents"].mime_type == "application/json"
    assert set(templates) == TEMPLATES
    assert templates["outboundcalls://calls/{call_id}/transcript"].mime_type == "text/plain"


async def test_a_transcript_reads_as_one_line_per_turn_with_time_and_speaker(rig: Rig, mode: str) -> None:
    call_id = rig.sandbox.seed_ids.long_transcript_call_id
    async with connected(rig, mode) as client:
        text = _text(await client.read_resource(f"outboundcalls://calls/{call_id}/transcript"))
    lines = text.splitlines()
    turns = rig.sandbox.call_json(call_id)["transcript"]
    assert len(lines) == len(turns) == 200
    assert all(TURN_LINE.fullmatch(line) for line in lines)
    first = turns[0]
    minutes, seconds = divmod(int(first["timeInCallSecs"]), 60)
    assert lines[0] == f"[{minutes:02d}:{seconds:02d}] {first['role']}: {first['message']}"


async def test_an_unanswered_call_has_a_transcript_that_says_so(rig: Rig, mode: str) -> None:
    call_id = rig.sandbox.seed_ids.call_ids_by_status["no_answer"]
    async with connected(rig, mode) as client:
        text = _text(await client.read_resource(f"outboundcalls://calls/{call_id}/transcript"))
    assert text.startswith("(no transcript")


async def test_a_call_reads_as_its_full_detail_in_json(rig: Rig, mode: str) -> None:
    call_id = rig.sandbox.seed_ids.completed_call_id
    async with connected(rig, mode) as client:
        detail = json.loads(_text(await client.read_resource(f"outboundcalls://calls/{call_id}")))
    wire = rig.sandbox.call_json(call_id)
    assert detail["id"] == call_id and detail["status"] == "completed"
    assert detail["credits"] == wire["creditsCharged"] and detail["summary"] == wire["summary"]
    assert [t["text"] for t in detail["transcript"]] == [t["message"] for t in wire["transcript"]]


async def test_the_agents_and_the_account_read_from_the_live_account(rig: Rig, mode: str) -> None:
    async with connected(rig, mode) as client:
        agents = json.loads(_text(await client.read_resource("outboundcalls://agents")))["agents"]
        account = json.loads(_text(await client.read_resource("outboundcalls://account")))
    ids = rig.sandbox.seed_ids
    assert set(ids.deployed_agent_ids) | {ids.draft_agent_id, ids.paused_agent_id} == {a["id"] for a in agents}
    assert account["credits"] == rig.sandbox.credits and account["sandbox"] is True


async def test_a_campaign_and_a_contact_list_read_as_json(rig: Rig, mode: str) -> None:
    ids = rig.sandbox.seed_ids
    async with connected(rig, mode) as client:
        campaign = json.loads(_text(await client.read_resource(f"outboundcalls://campaigns/{ids.campaign_id}")))
        contacts = json.loads(_text(await client.read_resource(f"outboundcalls://contact-lists/{ids.contact_list_id}")))
    assert campaign["id"] == ids.campaign_id and campaign["calls_total"] == 40
    assert {c["id"] for c in contacts["contacts"]} == set(ids.contact_ids)


@pytest.mark.parametrize(
    "uri",
    [
        "outboundcalls://calls/clxdoesnotexist000000000/transcript",
        "outboundcalls://calls/{foreign}",
        "outboundcalls://calls/bad%20id",
        "outboundcalls://calls/..%2F..%2Fagents/transcript",
        "outboundcalls://nothing",
    ],
)
async def test_a_missing_foreign_or_malformed_call_is_an_invalid_params_error(rig: Rig, mode: str, uri: str) -> None:
    uri = uri.replace("{foreign}", rig.sandbox.seed_ids.foreign_call_id)
    before = len(rig.sandbox.requests)
    async with connected(rig, mode) as client:
        with pytest.raises(MCPError) as raised:
            await client.read_resource(uri)
    assert raised.value.code == types.INVALID_PARAMS
    if "%" in uri or "nothing" in uri:
        assert len(rig.sandbox.requests) == before  # refused before any request


async def test_get_call_links_the_full_transcript_when_it_cuts_and_the_link_reads_in_full(rig: Rig, mode: str) -> None:
    call_id = rig.sandbox.seed_ids.long_transcript_call_id
    async with connected(rig, mode) as client:
        cut = await client.call_tool("get_call", {"call_id": call_id, "max_transcript_chars": 500})
        whole = await client.call_tool("get_call", {"call_id": call_id})
        assert cut.structured_content is not None and whole.structured_content is not None
        link = cut.structured_content["transcript_uri"]
        text = _text(await client.read_resource(link))
    assert cut.structured_content["transcript_truncated"] is True
    assert link == f"outboundcalls://calls/{call_id}/transcript"
    assert "transcript_uri" not in whole.structured_content
    assert len(text.splitlines()) == cut.structured_content["transcript_turns"] == 200
