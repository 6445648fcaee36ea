"""list_contacts and add_contact end to end against the sandbox, in both eras."""

from __future__ import annotations

from typing import Any

import pytest

from outboundcalls.sandbox import Fault
from tests.harness import Rig, connected

pytestmark = pytest.mark.anyio


def _text(result: Any) -> str:
    return str(result.content[0].text)


async def test_list_contacts_returns_the_contacts_of_one_list(rig: Rig, mode: str) -> None:
    ids = rig.sandbox.seed_ids
    async with connected(rig, mode) as client:
        result = await client.call_tool("list_contacts", {"contact_list_id": ids.contact_list_id, "limit": 3})
    assert not result.is_error and result.structured_content is not None
    contacts = result.structured_content["contacts"]
    assert [c["id"] for c in contacts] == list(ids.contact_ids[:3])
    assert contacts[0] == {
        "id": ids.contact_id,
        "contact_list_id": ids.contact_list_id,
        "phone": "+12125550100",
        "name": "Jane Doe",
        "company": "Acme Corp",
        "tags": ["patient"],
        "custom_fields": {"preferredTime": "afternoon"},
        "created_at": "2026-10-31T17:00:00Z",
    }
    assert rig.sandbox.requests[-1].query == {"contactListId": ids.contact_list_id, "limit": "3"}


async def test_list_contacts_accepts_500_and_refuses_501_naming_the_maximum_without_sending(
    rig: Rig, mode: str
) -> None:
    async with connected(rig, mode) as client:
        full = await client.call_tool("list_contacts", {"limit": 500})
        sent = len(rig.sandbox.requests)
        over = await client.call_tool("list_contacts", {"limit": 501})
    assert not full.is_error and rig.sandbox.requests[-1].query == {"limit": "500"}
    assert over.is_error and "less than or equal to 500" in _text(over)
    assert len(rig.sandbox.requests) == sent


@pytest.mark.parametrize(
    "written", ["+1 (415) 555-0134", "415-555-0134", "(415) 555 0134", "+14155550134", "1-415-555-0134"]
)
async def test_add_contact_stores_a_phone_written_in_any_common_form_as_e164(rig: Rig, mode: str, written: str) -> None:
    list_id = rig.sandbox.seed_ids.contact_list_id
    async with connected(rig, mode) as client:
        result = await client.call_tool("add_contact", {"contact_list_id": list_id, "phone": written})
    assert not result.is_error and result.structured_content is not None
    assert result.structured_content["phone"] == "+14155550134"
    assert rig.sandbox.requests[-1].body == {"contactListId": list_id, "phone": "+14155550134"}


async def test_add_contact_reads_national_numbers_in_the_configured_default_region(tmp_path: Any, mode: str) -> None:
    from tests.harness import make_rig

    rig = make_rig(tmp_path, default_region="GB")
    async with connected(rig, mode) as client:
        result = await client.call_tool(
            "add_contact", {"contact_list_id": rig.sandbox.seed_ids.contact_list_id, "phone": "020 7946 0018"}
        )
    assert result.structured_content is not None and result.structured_content["phone"] == "+442079460018"


async def test_add_contact_sends_only_the_fields_given_never_null(rig: Rig, mode: str) -> None:
    list_id = rig.sandbox.seed_ids.contact_list_id
    args = {
        "contact_list_id": list_id,
        "phone": "+1 415 555 0134",
        "name": "Ada Lovelace",
        "tags": ["vip"],
        "custom_fields": {"plan": "gold", "seats": 3},
    }
    async with connected(rig, mode) as client:
        result = await client.call_tool("add_contact", args)
    assert rig.sandbox.requests[-1].body == {
        "contactListId": list_id,
        "phone": "+14155550134",
        "name": "Ada Lovelace",
        "tags": ["vip"],
        "customFields": {"plan": "gold", "seats": 3},
    }
    view = result.structured_content
    assert view is not None and (view["name"], view["tags"], view["custom_fields"]) == (
        "Ada Lovelace",
        ["vip"],
        {"plan": "gold", "seats": 3},
    )
    assert "email" not in view and "company" not in view


@pytest.mark.parametrize("written", ["12345", "555-01", "not a number", "911"])
async def test_add_contact_with_an_invalid_phone_is_a_tool_error_naming_it_and_nothing_is_sent(
    rig: Rig, mode: str, written: str
) -> None:
    async with connected(rig, mode) as client:
        result = await client.call_tool(
            "add_contact", {"contact_list_id": rig.sandbox.seed_ids.contact_list_id, "phone": written}
        )
    assert result.is_error
    text = _text(result)
    assert "phone:" in text and repr(written) in text and "E.164" in text and "Nothing was sent" in text
    assert rig.sandbox.requests == []


async def test_add_contact_to_another_accounts_list_is_a_404_naming_the_list(rig: Rig, mode: str) -> None:
    foreign = rig.sandbox.seed_ids.foreign_contact_list_id
    async with connected(rig, mode) as client:
        result = await client.call_tool("add_contact", {"contact_list_id": foreign, "phone": "+14155550134"})
    assert result.is_error and f"contact_list_id '{foreign}'" in _text(result) and "404" in _text(result)
    assert rig.sandbox.count("POST", "/contacts") == 1


async def test_add_contact_is_sent_once_even_when_the_service_fails(rig: Rig, mode: str) -> None:
    rig.sandbox.faults.add(Fault(kind="status", status=502, method="POST", path="/contacts"))
    async with connected(rig, mode) as client:
        result = await client.call_tool(
            "add_contact", {"contact_list_id": rig.sandbox.seed_ids.contact_list_id, "phone": "+14155550134"}
        )
    assert result.is_error and "502" in _text(result) and "Try again" in _text(result)
    assert rig.sandbox.count("POST", "/contacts") == 1
