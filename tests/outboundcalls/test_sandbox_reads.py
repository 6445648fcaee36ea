"""The sandbox's read endpoints: authentication, ownership, filters, limits and shapes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2
import pytest

from outboundcalls.sandbox import SANDBOX_API_KEY, SANDBOX_BASE_URL, Sandbox

pytestmark = pytest.mark.anyio

TERMINAL = ("completed", "failed", "no_answer", "busy", "voicemail", "canceled")


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


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer oc_live_wrong"},
        {"Authorization": SANDBOX_API_KEY},
        {"Authorization": f"Basic {SANDBOX_API_KEY}"},
        {"Authorization": "Bearer "},
    ],
    ids=["missing", "wrong", "no-scheme", "basic", "empty"],
)
@pytest.mark.parametrize("path", ["/me", "/agents", "/contacts", "/calls", "/calls/x", "/agents/x", "/campaigns/x"])
async def test_every_endpoint_refuses_a_missing_or_wrong_key_with_401(
    sandbox: Sandbox, path: str, headers: dict[str, str]
) -> None:
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=sandbox.app), base_url=SANDBOX_BASE_URL, headers=headers
    ) as client:
        response = await client.get(path)
    assert response.status_code == 401
    assert response.json()["error"]


async def test_a_custom_api_key_is_the_only_one_accepted() -> None:
    sandbox = Sandbox(api_key="oc_test_custom")
    async with sandbox.http_client(headers={"Authorization": "Bearer oc_test_custom"}) as client:
        assert (await client.get("/me")).status_code == 200
    async with sandbox.http_client(headers={"Authorization": f"Bearer {SANDBOX_API_KEY}"}) as client:
        assert (await client.get("/me")).status_code == 401


async def test_me_shows_the_user_the_balance_and_the_subscription(http: httpx2.AsyncClient, sandbox: Sandbox) -> None:
    body = (await http.get("/me")).json()
    assert body["user"]["id"] == sandbox.seed_ids.user_id
    assert body["credits"] == 1000.0
    assert body["subscription"]["status"] == "active"
    assert body["subscription"]["currentPeriodEnd"].endswith("Z")


async def test_the_starting_balance_is_configurable() -> None:
    async with Sandbox(credits=12.5).http_client() as client:
        assert (await client.get("/me")).json()["credits"] == 12.5


async def test_agents_lists_only_this_accounts_agents_wrapped(http: httpx2.AsyncClient, sandbox: Sandbox) -> None:
    ids = sandbox.seed_ids
    agents = (await http.get("/agents")).json()["agents"]
    assert {agent["id"] for agent in agents} == {*ids.deployed_agent_ids, ids.draft_agent_id, ids.paused_agent_id}
    assert ids.foreign_agent_id not in {agent["id"] for agent in agents}
    assert all("—" in agent["name"] for agent in agents)


@pytest.mark.parametrize(("status", "count"), [("deployed", 3), ("draft", 1), ("paused", 1)])
async def test_agents_filter_by_status(http: httpx2.AsyncClient, status: str, count: int) -> None:
    agents = (await http.get("/agents", params={"status": status})).json()["agents"]
    assert len(agents) == count
    assert {agent["status"] for agent in agents} == {status}


async def test_a_draft_agent_has_no_elevenlabs_id(http: httpx2.AsyncClient, sandbox: Sandbox) -> None:
    agent = (await http.get(f"/agents/{sandbox.seed_ids.draft_agent_id}")).json()
    assert agent["status"] == "draft"
    assert agent["elevenLabsAgentId"] is None


async def test_agents_honour_limit(http: httpx2.AsyncClient) -> None:
    assert len((await http.get("/agents", params={"limit": 2})).json()["agents"]) == 2


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/agents", {"limit": "201"}, "limit"),
        ("/agents", {"limit": "0"}, "limit"),
        ("/agents", {"limit": "ten"}, "limit"),
        ("/agents", {"status": "deleted"}, "status"),
        ("/contacts", {"limit": "501"}, "limit"),
        ("/calls", {"limit": "201"}, "limit"),
        ("/calls", {"limit": "-1"}, "limit"),
        ("/calls", {"status": "done"}, "status"),
    ],
)
async def test_an_invalid_query_parameter_is_a_400_naming_it(
    http: httpx2.AsyncClient, path: str, params: dict[str, str], field: str
) -> None:
    response = await http.get(path, params=params)
    assert response.status_code == 400
    assert response.json()["error"].startswith(field)


async def test_one_agent_is_returned_bare(http: httpx2.AsyncClient, sandbox: Sandbox) -> None:
    agent = (await http.get(f"/agents/{sandbox.seed_ids.deployed_agent_id}")).json()
    assert agent["id"] == sandbox.seed_ids.deployed_agent_id
    assert agent["status"] == "deployed"


@pytest.mark.parametrize(
    ("template", "attribute"),
    [
        ("/agents/{}", "foreign_agent_id"),
        ("/calls/{}", "foreign_call_id"),
        ("/campaigns/{}", "foreign_campaign_id"),
    ],
)
async def test_another_accounts_resource_is_a_404_like_a_missing_one(
    http: httpx2.AsyncClient, sandbox: Sandbox, template: str, attribute: str
) -> None:
    foreign = await http.get(template.format(getattr(sandbox.seed_ids, attribute)))
    missing = await http.get(template.format("clxdoesnotexist"))
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json()["error"] and missing.json()["error"]


async def test_contacts_filter_by_list_and_default_to_100(http: httpx2.AsyncClient, sandbox: Sandbox) -> None:
    ids = sandbox.seed_ids
    contacts = (await http.get("/contacts", params={"contactListId": ids.contact_list_id})).json()["contacts"]
    assert [contact["id"] for contact in contacts] == list(ids.contact_ids)
    assert ids.foreign_contact_id not in {c["id"] for c in (await http.get("/contacts")).json()["contacts"]}
    assert len((await http.get("/contacts", params={"limit": 500})).json()["contacts"]) == 40


async def test_a_list_filter_with_an_unknown_or_foreign_id_matches_nothing(
    http: httpx2.AsyncClient, sandbox: Sandbox
) -> None:
    ids = sandbox.seed_ids
    for list_id in ("clxnope", ids.foreign_contact_list_id):
        assert (await http.get("/contacts", params={"contactListId": list_id})).json() == {"contacts": []}
    assert (await http.get("/calls", params={"agentId": ids.foreign_agent_id})).json() == {"calls": []}
    assert (await http.get("/calls", params={"campaignId": "clxnope"})).json() == {"calls": []}


async def test_calls_default_to_50_and_limit_200_returns_200_newest_first(http: httpx2.AsyncClient) -> None:
    assert len((await http.get("/calls")).json()["calls"]) == 50
    calls = (await http.get("/calls", params={"limit": 200})).json()["calls"]
    assert len(calls) == 200
    created = [call["createdAt"] for call in calls]
    assert created == sorted(created, reverse=True)
    assert "transcript" not in calls[0]


@pytest.mark.parametrize("status", TERMINAL)
async def test_the_history_holds_every_terminal_status(http: httpx2.AsyncClient, sandbox: Sandbox, status: str) -> None:
    calls = (await http.get("/calls", params={"status": status, "limit": 200})).json()["calls"]
    assert calls and {call["status"] for call in calls} == {status}
    assert sandbox.seed_ids.call_ids_by_status[status] in {call["id"] for call in calls}


async def test_calls_filter_by_agent_and_campaign(http: httpx2.AsyncClient, sandbox: Sandbox) -> None:
    ids = sandbox.seed_ids
    by_agent = (await http.get("/calls", params={"agentId": ids.deployed_agent_id, "limit": 200})).json()["calls"]
    assert by_agent and {call["agentId"] for call in by_agent} == {ids.deployed_agent_id}
    by_campaign = (await http.get("/calls", params={"campaignId": ids.campaign_id})).json()["calls"]
    assert len(by_campaign) == 30
    both = await http.get("/calls", params={"campaignId": ids.campaign_id, "status": "completed"})
    assert {call["status"] for call in both.json()["calls"]} == {"completed"}


async def test_a_completed_call_has_its_full_detail(http: httpx2.AsyncClient, sandbox: Sandbox) -> None:
    call = (await http.get(f"/calls/{sandbox.seed_ids.completed_call_id}")).json()
    assert call["status"] == "completed"
    assert call["transcript"] and {turn["role"] for turn in call["transcript"]} == {"agent", "user"}
    assert call["summary"] and call["sentiment"] in ("positive", "neutral", "negative")
    assert call["recordingUrl"].startswith("https://")
    assert isinstance(call["extractedData"], dict)
    assert call["creditsCharged"] > 0 and call["durationSeconds"] > 0


async def test_the_long_transcript_call_has_200_turns_in_time_order(http: httpx2.AsyncClient, sandbox: Sandbox) -> None:
    call = (await http.get(f"/calls/{sandbox.seed_ids.long_transcript_call_id}")).json()
    times = [turn["timeInCallSecs"] for turn in call["transcript"]]
    assert len(times) == 200
    assert times == sorted(times) and times[-1] <= call["durationSeconds"]


@pytest.mark.parametrize("status", ["no_answer", "busy", "failed", "canceled"])
async def test_an_unanswered_call_costs_nothing_and_has_no_transcript(
    http: httpx2.AsyncClient, sandbox: Sandbox, status: str
) -> None:
    call = (await http.get(f"/calls/{sandbox.seed_ids.call_ids_by_status[status]}")).json()
    assert call["creditsCharged"] == 0 and call["durationSeconds"] == 0
    assert call["transcript"] == [] and call["recordingUrl"] is None and call["startedAt"] is None


async def test_a_campaigns_progress_adds_up(http: httpx2.AsyncClient, sandbox: Sandbox) -> None:
    campaign = (await http.get(f"/campaigns/{sandbox.seed_ids.campaign_id}")).json()
    assert campaign["callsTotal"] == 40 and campaign["callsCompleted"] == 30
    assert campaign["callsSuccessful"] + campaign["callsFailed"] == campaign["callsCompleted"]
    assert campaign["successRate"] == round(campaign["callsSuccessful"] / 30, 4)
    calls = (await http.get("/calls", params={"campaignId": sandbox.seed_ids.campaign_id})).json()["calls"]
    assert campaign["creditsUsed"] == round(sum(call["creditsCharged"] for call in calls), 2)


async def test_an_unknown_route_and_a_wrong_method_answer_json_errors(http: httpx2.AsyncClient) -> None:
    missing = await http.get("/numbers")
    wrong = await http.delete("/me")
    assert (missing.status_code, wrong.status_code) == (404, 405)
    assert missing.json()["error"] and wrong.json()["error"]


async def test_every_answer_carries_a_request_id(http: httpx2.AsyncClient) -> None:
    first, second = await http.get("/me"), await http.get("/nope")
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
