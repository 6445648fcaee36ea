"""The tools' views read from the API's models: the API's names mapped, vendor extras never read, whole turns kept."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from outboundcalls.agents import Agent
from outboundcalls.calls import CallDetail, CallSummary
from outboundcalls.contacts import Contact
from outboundcalls_mcp.tools.agents import AgentInfo, AgentItem, agent_detail, agent_items
from outboundcalls_mcp.tools.calls import CallItem, Turn, call_item, call_items, call_view
from outboundcalls_mcp.tools.contacts import ContactInfo, contact_info, contact_infos

WIRE_CALL = {
    "id": "c1",
    "status": "completed",
    "toNumber": "+14155550100",
    "agentId": "a1",
    "createdAt": "2026-12-06T09:30:00Z",
    "durationSeconds": 48,
    "creditsCharged": 15.96,
    # A vendor's extra fields under the tool's own names: kept on the API model, never shown as ours.
    "to": "+19995550000",
    "credits": 1000,
    "duration_s": 1,
}


def test_a_call_item_takes_the_apis_fields_under_the_tools_names_and_ignores_lookalike_extras() -> None:
    item = call_item(CallSummary.model_validate(WIRE_CALL))
    assert item.model_dump() == {
        "id": "c1",
        "status": "completed",
        "to": "+14155550100",
        "agent_id": "a1",
        "created_at": datetime(2026, 12, 6, 9, 30, tzinfo=UTC),
        "duration_s": 48.0,
        "credits": 15.96,
    }
    assert isinstance(item, CallItem)


def test_call_items_reads_a_whole_list_in_order_and_agrees_with_call_item() -> None:
    calls = [CallSummary.model_validate({**WIRE_CALL, "id": f"c{n}", "toNumber": None}) for n in range(5)]
    items = call_items(calls)
    assert [i.id for i in items] == [f"c{n}" for n in range(5)]
    assert [i.model_dump() for i in items] == [call_item(c).model_dump() for c in calls]
    assert all(i.to is None for i in items)
    assert call_items([]) == []


def _detail(*messages: str) -> CallDetail:
    turns = [
        {"role": "agent" if n % 2 == 0 else "user", "message": m, "timeInCallSecs": n * 2.5, "text": "extra"}
        for n, m in enumerate(messages)
    ]
    return CallDetail.model_validate({**WIRE_CALL, "transcript": turns, "summary": "ok"})


def test_the_view_maps_each_turn_and_counts_them() -> None:
    view = call_view(_detail("Hello", "Hi"), include_transcript=True, max_chars=None)
    assert view.transcript is not None
    assert [t.model_dump() for t in view.transcript] == [
        {"role": "agent", "text": "Hello", "t": 0.0},
        {"role": "user", "text": "Hi", "t": 2.5},
    ]
    assert all(isinstance(t, Turn) for t in view.transcript)
    assert (view.transcript_turns, view.transcript_truncated, view.to, view.summary) == (2, None, "+14155550100", "ok")


@pytest.mark.parametrize(
    ("max_chars", "kept", "truncated"),
    [(None, 3, None), (15, 3, None), (14, 2, True), (10, 2, True), (9, 1, True), (4, 0, True)],
)
def test_the_transcript_is_cut_at_a_turn_boundary(max_chars: int | None, kept: int, truncated: bool | None) -> None:
    view = call_view(_detail("Hello", "Hi th", "ere!!"), include_transcript=True, max_chars=max_chars)
    assert view.transcript is not None
    assert [t.text for t in view.transcript] == ["Hello", "Hi th", "ere!!"][:kept]
    assert view.transcript_truncated is truncated
    assert view.transcript_turns == 3


def test_without_the_transcript_only_its_length_is_given() -> None:
    view = call_view(_detail("Hello", "Hi"), include_transcript=False, max_chars=None)
    assert (view.transcript, view.transcript_truncated, view.transcript_turns) == (None, None, 2)


def _contact(n: int, **extra: object) -> Contact:
    return Contact.model_validate(
        {
            "id": f"k{n}",
            "contactListId": "l1",
            "phone": "+14155550100",
            "name": "Ann",
            "createdAt": "2026-12-01T10:00:00Z",
            "tags": ["vip"] if n % 2 else [],
            "customFields": {"n": n} if n % 3 else None,
            **extra,
        }
    )


def test_a_contact_view_leaves_empty_collections_out_and_reads_no_extras() -> None:
    info = contact_info(_contact(0, emailAddress="x@y.z", phone_e164="+19995550000"))
    assert isinstance(info, ContactInfo)
    assert info.model_dump(exclude_none=True) == {
        "id": "k0",
        "contact_list_id": "l1",
        "phone": "+14155550100",
        "name": "Ann",
        "created_at": datetime(2026, 12, 1, 10, tzinfo=UTC),
    }
    assert contact_info(_contact(1)).model_dump(exclude_none=True)["tags"] == ["vip"]


def test_contact_infos_reads_a_whole_list_in_order_and_agrees_with_contact_info() -> None:
    contacts = [_contact(n) for n in range(7)]
    assert [c.model_dump() for c in contact_infos(contacts)] == [contact_info(c).model_dump() for c in contacts]
    assert [c.id for c in contact_infos(contacts)] == [f"k{n}" for n in range(7)]


def test_agent_views_compact_in_lists_and_full_alone() -> None:
    agent = Agent.model_validate(
        {
            "id": "a1",
            "name": "Ava",
            "status": "deployed",
            "language": "en",
            "createdAt": "2026-12-01T10:00:00Z",
            "elevenLabsAgentId": "el1",
        }
    )
    [item] = agent_items([agent])
    assert isinstance(item, AgentItem) and item.model_dump() == {"id": "a1", "name": "Ava", "status": "deployed"}
    full = agent_detail(agent)
    assert isinstance(full, AgentInfo)
    assert full.model_dump() == {
        "id": "a1",
        "name": "Ava",
        "status": "deployed",
        "language": "en",
        "created_at": datetime(2026, 12, 1, 10, tzinfo=UTC),
    }
