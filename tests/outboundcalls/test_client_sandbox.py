"""Every client method against the stateful sandbox, over ASGI: the client and the fake agree."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2
import pytest

from outboundcalls import (
    Account,
    AuthenticationError,
    BadRequestError,
    CallDetail,
    CallSummary,
    Campaign,
    ConnectTimeoutError,
    Contact,
    InsufficientCreditsError,
    NewCall,
    NewContact,
    NotFoundError,
    OutboundCallsClient,
    OutboundCallsError,
    OutcomeUnknownError,
    RateLimitError,
    ResponseValidationError,
    RetryPolicy,
    UpstreamError,
)
from outboundcalls.sandbox import Fault, FaultKind, Sandbox
from tests.outboundcalls.recorded_sleep import Sleeps

pytestmark = pytest.mark.anyio

KEY = "oc_live_" + "S4nd" * 8
US_NUMBER = "+14155551212"


@pytest.fixture
def sandbox() -> Sandbox:
    return Sandbox(api_key=KEY, seed=0)


def _client(
    sandbox: Sandbox, sleeps: Sleeps, transport: httpx2.AsyncBaseTransport | None = None
) -> OutboundCallsClient:
    return OutboundCallsClient(
        KEY,
        base_url=sandbox.base_url,
        transport=transport or httpx2.ASGITransport(app=sandbox.app),
        retry=RetryPolicy(sleep=sleeps, random=lambda: 1.0),
    )


@pytest.fixture
async def api(sandbox: Sandbox, sleeps: Sleeps) -> AsyncIterator[OutboundCallsClient]:
    async with _client(sandbox, sleeps) as client:
        yield client


async def test_get_account_reads_the_seeded_balance(api: OutboundCallsClient, sandbox: Sandbox) -> None:
    account = await api.get_account()
    assert isinstance(account, Account)
    assert account.credits == sandbox.credits
    assert account.user is not None and account.user.id == sandbox.seed_ids.user_id


async def test_list_agents_filters_by_status_and_limit(api: OutboundCallsClient, sandbox: Sandbox) -> None:
    deployed = await api.list_agents(status="deployed")
    assert {a.status for a in deployed} == {"deployed"}
    assert set(sandbox.seed_ids.deployed_agent_ids) <= {a.id for a in deployed}
    assert len(await api.list_agents(limit=1)) == 1
    assert sandbox.requests[-1].query == {"limit": "1"}


async def test_get_agent_returns_an_owned_agent(api: OutboundCallsClient, sandbox: Sandbox) -> None:
    agent = await api.get_agent(sandbox.seed_ids.deployed_agent_id)
    assert (agent.id, agent.status) == (sandbox.seed_ids.deployed_agent_id, "deployed")


async def test_get_agent_of_another_account_is_not_found(api: OutboundCallsClient, sandbox: Sandbox) -> None:
    with pytest.raises(NotFoundError) as info:
        await api.get_agent(sandbox.seed_ids.foreign_agent_id)
    assert info.value.request_id is not None and info.value.request_id.startswith("req_sandbox_")


@pytest.mark.parametrize("hostile", ["../me", "x?limit=1", "x#y"])
async def test_hostile_agent_id_never_reaches_another_route(
    api: OutboundCallsClient, sandbox: Sandbox, hostile: str
) -> None:
    with pytest.raises(NotFoundError):
        await api.get_agent(hostile)
    assert sandbox.count("GET", "/me") == 0
    assert sandbox.requests[-1].query == {}


async def test_list_contacts_by_list_up_to_500(api: OutboundCallsClient, sandbox: Sandbox) -> None:
    contacts = await api.list_contacts(contact_list_id=sandbox.seed_ids.contact_list_id, limit=500)
    assert contacts and all(isinstance(c, Contact) for c in contacts)
    assert {c.contact_list_id for c in contacts} == {sandbox.seed_ids.contact_list_id}


async def test_create_contact_sends_only_given_fields_and_it_can_be_listed(
    api: OutboundCallsClient, sandbox: Sandbox
) -> None:
    list_id = sandbox.seed_ids.contact_list_id
    created = await api.create_contact(NewContact(contact_list_id=list_id, phone=US_NUMBER, tags=["lead"]))
    assert created.tags == ["lead"] and created.contact_list_id == list_id
    assert sandbox.requests[-1].body == {"contactListId": list_id, "phone": US_NUMBER, "tags": ["lead"]}
    listed = await api.list_contacts(contact_list_id=list_id, limit=500)
    assert created.id in {c.id for c in listed}


async def test_create_contact_in_a_foreign_list_is_not_found(api: OutboundCallsClient, sandbox: Sandbox) -> None:
    with pytest.raises(NotFoundError):
        await api.create_contact(NewContact(contact_list_id=sandbox.seed_ids.foreign_contact_list_id, phone=US_NUMBER))


async def test_list_calls_returns_200_at_the_maximum_limit(api: OutboundCallsClient) -> None:
    calls = await api.list_calls(limit=200)
    assert len(calls) == 200 and all(isinstance(c, CallSummary) for c in calls)


async def test_list_calls_filters_by_status(api: OutboundCallsClient) -> None:
    calls = await api.list_calls(status="completed", limit=20)
    assert calls and {c.status for c in calls} == {"completed"}


async def test_get_call_reads_a_long_transcript(api: OutboundCallsClient, sandbox: Sandbox) -> None:
    detail = await api.get_call(sandbox.seed_ids.long_transcript_call_id)
    assert isinstance(detail, CallDetail)
    assert len(detail.transcript) == 200
    assert detail.is_terminal


@pytest.mark.parametrize("status", ["completed", "failed", "no_answer", "busy", "voicemail", "canceled"])
async def test_get_call_in_every_terminal_status_parses(
    api: OutboundCallsClient, sandbox: Sandbox, status: str
) -> None:
    detail = await api.get_call(sandbox.seed_ids.call_ids_by_status[status])
    assert (detail.status, detail.is_terminal) == (status, True)


async def test_create_call_dispatches_once_and_is_charged_when_it_ends(
    api: OutboundCallsClient, sandbox: Sandbox
) -> None:
    sandbox.script_next_call(outcome="completed", duration_seconds=60)
    before = (await api.get_account()).credits
    call = await api.create_call(NewCall(agent_id=sandbox.seed_ids.deployed_agent_id, to_number=US_NUMBER))
    assert (call.status, call.is_terminal, sandbox.dispatched) == ("queued", False, 1)
    assert sandbox.requests[-1].body == {"agentId": sandbox.seed_ids.deployed_agent_id, "toNumber": US_NUMBER}
    await sandbox.advance(300)
    detail = await api.get_call(call.id)
    assert detail.status == "completed"
    assert detail.credits_charged and (await api.get_account()).credits == pytest.approx(
        before - detail.credits_charged
    )


async def test_create_call_with_a_draft_agent_is_a_bad_request(api: OutboundCallsClient, sandbox: Sandbox) -> None:
    with pytest.raises(BadRequestError, match="not deployed"):
        await api.create_call(NewCall(agent_id=sandbox.seed_ids.draft_agent_id, to_number=US_NUMBER))
    assert sandbox.dispatched == 0


async def test_create_call_below_25_credits_is_insufficient_credits(api: OutboundCallsClient, sandbox: Sandbox) -> None:
    sandbox.credits = 10
    with pytest.raises(InsufficientCreditsError):
        await api.create_call(NewCall(agent_id=sandbox.seed_ids.deployed_agent_id, to_number=US_NUMBER))
    assert sandbox.dispatched == 0


async def test_get_campaign_reads_progress(api: OutboundCallsClient, sandbox: Sandbox) -> None:
    campaign = await api.get_campaign(sandbox.seed_ids.campaign_id)
    assert isinstance(campaign, Campaign)
    assert campaign.calls_total is not None and campaign.success_rate is not None
    assert 0.0 <= campaign.success_rate <= 1.0
    with pytest.raises(NotFoundError):
        await api.get_campaign(sandbox.seed_ids.foreign_campaign_id)


async def test_a_wrong_key_is_an_authentication_error_that_does_not_echo_it(sandbox: Sandbox) -> None:
    wrong = "oc_live_" + "W" * 32
    async with OutboundCallsClient(
        wrong, base_url=sandbox.base_url, transport=httpx2.ASGITransport(app=sandbox.app)
    ) as api:
        with pytest.raises(AuthenticationError) as info:
            await api.get_account()
    assert wrong not in str(info.value) and wrong not in repr(info.value)


async def test_502_fault_on_post_calls_is_sent_once(api: OutboundCallsClient, sandbox: Sandbox) -> None:
    sandbox.faults.add(Fault(kind="status", status=502, method="POST", path="/calls", times=None))
    with pytest.raises(UpstreamError, match="Upstream telephony provider error"):
        await api.create_call(NewCall(agent_id=sandbox.seed_ids.deployed_agent_id, to_number=US_NUMBER))
    assert sandbox.count("POST", "/calls") == 1


async def test_one_503_on_a_get_is_retried_then_succeeds(
    api: OutboundCallsClient, sandbox: Sandbox, sleeps: Sleeps
) -> None:
    sandbox.faults.add(Fault(kind="status", status=503, method="GET", path="/me"))
    await api.get_account()
    assert sandbox.count("GET", "/me") == 2
    assert sleeps.delays == [0.25]


async def test_429_retry_after_is_honoured_then_capped(
    api: OutboundCallsClient, sandbox: Sandbox, sleeps: Sleeps
) -> None:
    sandbox.faults.add(Fault(kind="status", status=429, retry_after=2, path="/agents", times=1))
    await api.list_agents()
    sandbox.faults.add(Fault(kind="status", status=429, retry_after=30, path="/agents", times=1))
    with pytest.raises(RateLimitError):
        await api.list_agents()
    assert sleeps.delays == [2.0]


async def test_proxy_html_page_becomes_a_short_upstream_message(api: OutboundCallsClient, sandbox: Sandbox) -> None:
    sandbox.faults.add(Fault(kind="html", status=502, times=None))
    with pytest.raises(UpstreamError) as info:
        await api.get_account()
    assert info.value.message == "502 Bad Gateway nginx"


@pytest.mark.parametrize("kind", ["malformed", "empty", "missing_fields"])
async def test_a_broken_2xx_body_is_a_response_validation_error(
    api: OutboundCallsClient, sandbox: Sandbox, kind: FaultKind
) -> None:
    sandbox.faults.add(Fault(kind=kind, path="/calls/*"))
    with pytest.raises(ResponseValidationError):
        await api.get_call(sandbox.seed_ids.completed_call_id)


@pytest.mark.parametrize("kind", ["drop", "hang"])
async def test_a_post_calls_lost_after_processing_is_outcome_unknown_and_not_retried(
    sandbox: Sandbox, sleeps: Sleeps, kind: FaultKind
) -> None:
    sandbox.faults.add(Fault(kind=kind, method="POST", path="/calls", after_processing=True))
    async with _client(sandbox, sleeps, sandbox.transport()) as api:
        with pytest.raises(OutcomeUnknownError, match="may or may not have been created"):
            await api.create_call(NewCall(agent_id=sandbox.seed_ids.deployed_agent_id, to_number=US_NUMBER))
    assert (sandbox.count("POST", "/calls"), sandbox.dispatched) == (1, 1)


async def test_a_post_calls_timing_out_before_sending_is_safe(sandbox: Sandbox, sleeps: Sleeps) -> None:
    sandbox.faults.add(Fault(kind="timeout_before_send", method="POST", path="/calls"))
    async with _client(sandbox, sleeps, sandbox.transport()) as api:
        with pytest.raises(ConnectTimeoutError, match="never sent"):
            await api.create_call(NewCall(agent_id=sandbox.seed_ids.deployed_agent_id, to_number=US_NUMBER))
    assert (sandbox.count("POST", "/calls"), sandbox.dispatched) == (0, 0)


async def test_the_key_never_appears_in_errors_from_the_sandbox(sandbox: Sandbox, sleeps: Sleeps) -> None:
    sandbox.faults.add(Fault(kind="status", status=401, message=f"key {KEY} revoked", times=None))
    async with _client(sandbox, sleeps) as api:
        with pytest.raises(OutboundCallsError) as info:
            await api.get_account()
    assert KEY not in str(info.value) and KEY not in repr(info.value) and KEY not in info.value.message
