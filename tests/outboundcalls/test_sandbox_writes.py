"""The sandbox's write endpoints: creating contacts and dispatching calls, and every refusal."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest

from outboundcalls.sandbox import SANDBOX_API_KEY, SANDBOX_BASE_URL, Sandbox

pytestmark = pytest.mark.anyio


@pytest.fixture
def sandbox() -> Sandbox:
    return Sandbox()


@pytest.fixture
async def http(sandbox: Sandbox) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=sandbox.app),
        base_url=SANDBOX_BASE_URL,
        headers={"Authorization": f"Bearer {SANDBOX_API_KEY}"},
    ) as client:
        yield client


async def test_a_created_contact_is_answered_201_and_then_listed(http: httpx2.AsyncClient, sandbox: Sandbox) -> None:
    list_id = sandbox.seed_ids.contact_list_id
    body = {
        "contactListId": list_id,
        "phone": "+14155551212",
        "name": "Jane Doe",
        "tags": ["lead", "website"],
        "customFields": {"source": "web"},
    }
    response = await http.post("/contacts", json=body)
    assert response.status_code == 201
    contact = response.json()
    assert contact["id"].startswith("clx")
    assert (contact["name"], contact["email"], contact["tags"]) == ("Jane Doe", None, ["lead", "website"])
    assert contact["customFields"] == {"source": "web"}
    listed = (await http.get("/contacts", params={"contactListId": list_id, "limit": 500})).json()["contacts"]
    assert listed[-1] == contact


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"phone": None}, "phone"),
        ({"phone": "4155551212"}, "phone"),
        ({"phone": "+1 415 555 1212"}, "phone"),
        ({"contactListId": None}, "contactListId"),
        ({"contactListId": 7}, "contactListId"),
        ({"name": ["Jane"]}, "name"),
        ({"email": "jane.example.com"}, "email"),
        ({"tags": "lead"}, "tags"),
        ({"tags": [1, 2]}, "tags"),
        ({"customFields": ["x"]}, "customFields"),
    ],
)
async def test_an_invalid_contact_is_a_400_naming_the_field(
    http: httpx2.AsyncClient, sandbox: Sandbox, change: dict[str, Any], field: str
) -> None:
    body = {"contactListId": sandbox.seed_ids.contact_list_id, "phone": "+14155551212", **change}
    response = await http.post("/contacts", json={k: v for k, v in body.items() if v is not None})
    assert response.status_code == 400
    assert response.json()["error"].startswith(field)


@pytest.mark.parametrize("content", [b"not json", b"[1, 2]", b""])
async def test_a_body_that_is_not_a_json_object_is_a_400(http: httpx2.AsyncClient, content: bytes) -> None:
    for path in ("/contacts", "/calls"):
        response = await http.post(path, content=content, headers={"Content-Type": "application/json"})
        assert response.status_code == 400
        assert "JSON object" in response.json()["error"]


async def test_a_contact_for_an_unknown_or_foreign_list_is_a_404(http: httpx2.AsyncClient, sandbox: Sandbox) -> None:
    for list_id in ("clxnolist", sandbox.seed_ids.foreign_contact_list_id):
        response = await http.post("/contacts", json={"contactListId": list_id, "phone": "+14155551212"})
        assert response.status_code == 404
        assert "Contact list" in response.json()["error"]


async def test_a_dispatched_call_is_answered_201_queued_from_the_default_number(
    http: httpx2.AsyncClient, sandbox: Sandbox
) -> None:
    ids = sandbox.seed_ids
    response = await http.post("/calls", json={"agentId": ids.deployed_agent_id, "toNumber": "+14155551212"})
    assert response.status_code == 201
    call = response.json()
    assert call["status"] == "queued"
    assert (call["agentId"], call["toNumber"], call["phoneNumberId"]) == (
        ids.deployed_agent_id,
        "+14155551212",
        ids.phone_number_id,
    )
    assert call["fromNumber"] == "+14155550100"
    assert call["endedAt"] is None and call["creditsCharged"] is None and call["durationSeconds"] is None
    assert sandbox.dispatched == 1
    assert (await http.get("/calls", params={"limit": 1})).json()["calls"][0]["id"] == call["id"]


async def test_a_call_can_name_its_caller_id_and_contact(http: httpx2.AsyncClient, sandbox: Sandbox) -> None:
    ids = sandbox.seed_ids
    gb_number = next(n for n in sandbox.state.phone_numbers.values() if n.number.startswith("+44"))
    body = {
        "agentId": ids.deployed_agent_id,
        "toNumber": "+442079460123",
        "phoneNumberId": gb_number.id,
        "contactId": ids.contact_id,
    }
    call = (await http.post("/calls", json=body)).json()
    assert (call["fromNumber"], call["contactId"]) == ("+442079460100", ids.contact_id)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"agentId": None}, "agentId"),
        ({"agentId": ""}, "agentId"),
        ({"agentId": 42}, "agentId"),
        ({"toNumber": None}, "toNumber"),
        ({"toNumber": "0044 20 7946 0123"}, "toNumber"),
        ({"toNumber": "+0123456789"}, "toNumber"),
        ({"toNumber": "+1415555121299999"}, "toNumber"),
        ({"phoneNumberId": 3}, "phoneNumberId"),
        ({"contactId": ["x"]}, "contactId"),
    ],
)
async def test_an_invalid_call_is_a_400_naming_the_field(
    http: httpx2.AsyncClient, sandbox: Sandbox, change: dict[str, Any], field: str
) -> None:
    body = {"agentId": sandbox.seed_ids.deployed_agent_id, "toNumber": "+14155551212", **change}
    response = await http.post("/calls", json={k: v for k, v in body.items() if v is not None})
    assert response.status_code == 400
    assert response.json()["error"].startswith(field)
    assert sandbox.dispatched == 0


@pytest.mark.parametrize("attribute", ["draft_agent_id", "paused_agent_id"])
async def test_an_agent_that_is_not_deployed_cannot_dial(
    http: httpx2.AsyncClient, sandbox: Sandbox, attribute: str
) -> None:
    agent_id = getattr(sandbox.seed_ids, attribute)
    response = await http.post("/calls", json={"agentId": agent_id, "toNumber": "+14155551212"})
    assert response.status_code == 400
    assert "not deployed" in response.json()["error"] and agent_id in response.json()["error"]


async def test_an_inactive_caller_id_or_an_unpriced_country_is_a_400(
    http: httpx2.AsyncClient, sandbox: Sandbox
) -> None:
    ids = sandbox.seed_ids
    inactive = await http.post(
        "/calls",
        json={
            "agentId": ids.deployed_agent_id,
            "toNumber": "+14155551212",
            "phoneNumberId": ids.inactive_phone_number_id,
        },
    )
    unpriced = await http.post("/calls", json={"agentId": ids.deployed_agent_id, "toNumber": "+79123456789"})
    assert (inactive.status_code, unpriced.status_code) == (400, 400)
    assert inactive.json()["error"].startswith("phoneNumberId")
    assert unpriced.json()["error"].startswith("toNumber")


@pytest.mark.parametrize(
    ("field", "attribute"),
    [
        ("agentId", "foreign_agent_id"),
        ("agentId", None),
        ("contactId", "foreign_contact_id"),
        ("contactId", None),
        ("phoneNumberId", None),
    ],
)
async def test_a_call_referring_to_a_missing_or_foreign_resource_is_a_404(
    http: httpx2.AsyncClient, sandbox: Sandbox, field: str, attribute: str | None
) -> None:
    body = {"agentId": sandbox.seed_ids.deployed_agent_id, "toNumber": "+14155551212"}
    body[field] = getattr(sandbox.seed_ids, attribute) if attribute else "clxmissing"
    response = await http.post("/calls", json=body)
    assert response.status_code == 404
    assert sandbox.dispatched == 0


async def test_a_balance_under_25_credits_is_a_402_and_nothing_dials() -> None:
    sandbox = Sandbox(credits=24.99)
    async with sandbox.http_client() as http:
        body = {"agentId": sandbox.seed_ids.deployed_agent_id, "toNumber": "+14155551212"}
        response = await http.post("/calls", json=body)
        assert response.status_code == 402
        assert "25" in response.json()["error"]
        sandbox.credits = 25.0
        assert (await http.post("/calls", json=body)).status_code == 201
    assert sandbox.dispatched == 1


async def test_validation_comes_before_the_balance_check() -> None:
    sandbox = Sandbox(credits=0)
    async with sandbox.http_client() as http:
        bad = await http.post("/calls", json={"agentId": sandbox.seed_ids.deployed_agent_id, "toNumber": "555"})
        foreign = await http.post(
            "/calls", json={"agentId": sandbox.seed_ids.foreign_agent_id, "toNumber": "+14155551212"}
        )
    assert (bad.status_code, foreign.status_code) == (400, 404)


async def test_the_request_log_counts_what_reached_the_sandbox(http: httpx2.AsyncClient, sandbox: Sandbox) -> None:
    body = {"agentId": sandbox.seed_ids.deployed_agent_id, "toNumber": "+14155551212"}
    await http.post("/calls", json=body)
    await http.post("/calls", json={"toNumber": "+14155551212"})
    await http.get("/calls", params={"limit": 3})
    assert sandbox.count("POST", "/calls") == 2
    assert sandbox.count("post", "/api/v1/calls") == 2
    assert sandbox.count("GET", "/calls") == 1
    first, second, listing = sandbox.requests
    assert (first.body, first.status, first.handled_status, first.delivered) == (body, 201, 201, True)
    assert first.processed and first.fault is None
    assert second.status == 400
    assert listing.query == {"limit": "3"} and listing.body is None
