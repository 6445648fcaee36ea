"""list_calls, get_call and wait_for_call end to end against the sandbox, in both eras."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client

from outboundcalls.calls import TERMINAL_STATUSES
from outboundcalls.sandbox import Fault
from outboundcalls_mcp.server.app import build_server
from tests.harness import Rig, connected, make_settings

pytestmark = pytest.mark.anyio

CALL_ITEM_KEYS = {"id", "status", "to", "agent_id", "created_at", "duration_s", "credits"}


async def _place_call(rig: Rig, **script: Any) -> str:
    """A live call created straight on the sandbox, so these tests need no consent flow."""
    rig.sandbox.script_next_call(**script)
    async with rig.sandbox.http_client() as http:
        response = await http.post(
            "/calls", json={"agentId": rig.sandbox.seed_ids.deployed_agent_id, "toNumber": "+14155550134"}
        )
    return str(response.json()["id"])


def _text(result: Any) -> str:
    return str(result.content[0].text)


async def test_list_calls_returns_compact_summaries_newest_first_without_transcripts(rig: Rig, mode: str) -> None:
    async with connected(rig, mode) as client:
        result = await client.call_tool("list_calls", {})
    assert not result.is_error and result.structured_content is not None
    calls = result.structured_content["calls"]
    assert len(calls) == 20  # the default limit
    assert all(set(c) <= CALL_ITEM_KEYS for c in calls)
    created = [c["created_at"] for c in calls]
    assert created == sorted(created, reverse=True)
    assert calls[1]["id"] == rig.sandbox.seed_ids.completed_call_id
    assert rig.sandbox.requests[-1].query == {"limit": "20"}


async def test_list_calls_sends_only_the_filters_given(rig: Rig, mode: str) -> None:
    agent_id = rig.sandbox.seed_ids.deployed_agent_ids[2]
    async with connected(rig, mode) as client:
        result = await client.call_tool("list_calls", {"status": "completed", "agent_id": agent_id, "limit": 5})
    assert result.structured_content is not None
    calls = result.structured_content["calls"]
    assert len(calls) == 5 and {(c["status"], c["agent_id"]) for c in calls} == {("completed", agent_id)}
    assert rig.sandbox.requests[-1].query == {"status": "completed", "agentId": agent_id, "limit": "5"}


async def test_list_calls_accepts_200_and_refuses_201_naming_the_maximum_without_sending(rig: Rig, mode: str) -> None:
    async with connected(rig, mode) as client:
        full = await client.call_tool("list_calls", {"limit": 200})
        sent = len(rig.sandbox.requests)
        over = await client.call_tool("list_calls", {"limit": 201})
    assert full.structured_content is not None and len(full.structured_content["calls"]) == 200
    assert over.is_error and "less than or equal to 200" in _text(over)
    assert len(rig.sandbox.requests) == sent


async def test_get_call_returns_the_full_detail_with_the_transcript_as_turns(rig: Rig, mode: str) -> None:
    call_id = rig.sandbox.seed_ids.completed_call_id
    vendor = rig.sandbox.call_json(call_id)
    async with connected(rig, mode) as client:
        result = await client.call_tool("get_call", {"call_id": call_id})
    view = result.structured_content
    assert not result.is_error and view is not None
    assert (view["id"], view["status"], view["duration_s"], view["credits"]) == (
        call_id,
        "completed",
        vendor["durationSeconds"],
        vendor["creditsCharged"],
    )
    assert view["summary"] == vendor["summary"] and view["sentiment"] == vendor["sentiment"]
    assert view["extracted_data"] == vendor["extractedData"] and view["recording_url"] == vendor["recordingUrl"]
    assert view["started_at"] and view["ended_at"]
    turns = view["transcript"]
    assert view["transcript_turns"] == len(turns) == len(vendor["transcript"])
    assert turns[0] == {
        "role": vendor["transcript"][0]["role"],
        "text": vendor["transcript"][0]["message"],
        "t": vendor["transcript"][0]["timeInCallSecs"],
    }
    assert "transcript_truncated" not in view


async def test_get_call_description_says_the_transcript_is_untrusted_data(rig: Rig, mode: str) -> None:
    async with connected(rig, mode) as client:
        (tool,) = [t for t in (await client.list_tools()).tools if t.name == "get_call"]
    assert tool.description is not None and "untrusted" in tool.description


async def test_get_call_without_the_transcript_still_says_how_many_turns_it_has(rig: Rig, mode: str) -> None:
    call_id = rig.sandbox.seed_ids.long_transcript_call_id
    async with connected(rig, mode) as client:
        result = await client.call_tool("get_call", {"call_id": call_id, "include_transcript": False})
    assert result.structured_content is not None
    assert "transcript" not in result.structured_content
    assert result.structured_content["transcript_turns"] == 200


async def test_get_call_cuts_a_long_transcript_at_a_turn_boundary_under_max_chars(rig: Rig, mode: str) -> None:
    call_id = rig.sandbox.seed_ids.long_transcript_call_id
    async with connected(rig, mode) as client:
        result = await client.call_tool("get_call", {"call_id": call_id, "max_transcript_chars": 500})
    view = result.structured_content
    assert view is not None and view["transcript_truncated"] is True
    kept = view["transcript"]
    assert 0 < len(kept) < view["transcript_turns"] == 200
    assert sum(len(turn["text"]) for turn in kept) <= 500
    first = rig.sandbox.call_json(call_id)["transcript"][: len(kept)]
    assert [turn["text"] for turn in kept] == [turn["message"] for turn in first]


async def test_get_call_refuses_a_max_transcript_chars_below_100(rig: Rig, mode: str) -> None:
    async with connected(rig, mode) as client:
        result = await client.call_tool("get_call", {"call_id": "call_1", "max_transcript_chars": 10})
    assert result.is_error and "max_transcript_chars" in _text(result)
    assert rig.sandbox.requests == []


class StringTranscripts(httpx2.AsyncBaseTransport):
    """The sandbox, except that GET /calls/{id} sends the transcript as one string, as some back ends do."""

    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self.inner.handle_async_request(request)
        if request.method != "GET" or "/calls/" not in request.url.path:
            return response
        body = json.loads(await response.aread())
        body["transcript"] = " ".join(turn["message"] for turn in body["transcript"])
        return httpx2.Response(response.status_code, json=body)


async def test_a_plain_string_transcript_becomes_one_turn(tmp_path: Path, rig: Rig, mode: str) -> None:
    call_id = rig.sandbox.seed_ids.completed_call_id
    server = build_server(make_settings(tmp_path), transport=StringTranscripts(rig.sandbox.transport()))
    async with Client(server, mode=mode) as client:
        result = await client.call_tool("get_call", {"call_id": call_id})
    assert result.structured_content is not None
    (turn,) = result.structured_content["transcript"]
    assert turn["role"] == "unknown" and "t" not in turn
    assert turn["text"].startswith(rig.sandbox.call_json(call_id)["transcript"][0]["message"])


async def test_get_call_of_another_account_is_a_404_tool_error_naming_the_id(rig: Rig, mode: str) -> None:
    foreign = rig.sandbox.seed_ids.foreign_call_id
    async with connected(rig, mode) as client:
        result = await client.call_tool("get_call", {"call_id": foreign})
    assert result.is_error and f"call_id '{foreign}'" in _text(result) and "404" in _text(result)


async def test_wait_for_call_reports_progress_until_the_call_ends(rig: Rig, mode: str) -> None:
    call_id = await _place_call(rig, outcome="completed", duration_seconds=12, ring_seconds=4)
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async with connected(rig, mode) as client:
        result = await client.call_tool("wait_for_call", {"call_id": call_id}, progress_callback=on_progress)
    assert not result.is_error and result.structured_content is not None
    assert result.structured_content["timed_out"] is False
    call = result.structured_content["call"]
    assert call["id"] == call_id and call["status"] == "completed" and call["duration_s"] == 12
    assert "transcript" not in call
    assert len(seen) >= 3
    assert [p for p, _, _ in seen] == sorted(p for p, _, _ in seen)
    assert {total for _, total, _ in seen} == {60}
    statuses = [message.split(": ")[1] for _, _, message in seen if message]
    assert statuses[0] in ("queued", "ringing") and "in_progress" in statuses and statuses[-1] == "completed"


async def test_wait_for_call_times_out_with_the_last_state_and_timed_out_true_not_an_error(rig: Rig, mode: str) -> None:
    call_id = await _place_call(rig, outcome="completed", duration_seconds=300)
    async with connected(rig, mode) as client:
        result = await client.call_tool("wait_for_call", {"call_id": call_id, "timeout_seconds": 10})
    assert not result.is_error and result.structured_content is not None
    assert result.structured_content["timed_out"] is True
    assert result.structured_content["waited_s"] >= 10
    assert result.structured_content["call"]["status"] not in TERMINAL_STATUSES


async def test_wait_for_call_over_600_seconds_is_refused_by_the_schema(rig: Rig, mode: str) -> None:
    async with connected(rig, mode) as client:
        result = await client.call_tool("wait_for_call", {"call_id": "call_1", "timeout_seconds": 601})
    assert result.is_error and "less than or equal to 600" in _text(result)
    assert rig.sandbox.requests == []


async def test_wait_for_call_on_an_upstream_failure_is_a_tool_error(rig: Rig, mode: str) -> None:
    call_id = rig.sandbox.seed_ids.completed_call_id
    rig.sandbox.faults.add(Fault(kind="status", status=401))
    async with connected(rig, mode) as client:
        result = await client.call_tool("wait_for_call", {"call_id": call_id})
    assert result.is_error and "refused the API key" in _text(result)
