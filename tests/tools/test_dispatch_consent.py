"""dispatch_call consent end to end: elicitation in both eras, the token flow, and how many calls were placed."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp import Client
from mcp.client.session import ClientRequestContext
from mcp.shared.exceptions import MCPError

from outboundcalls.sandbox import Fault, ManualClock, Sandbox
from outboundcalls_mcp.server.app import build_server
from tests.harness import NOON_NEW_YORK, ElicitAction, Rig, connected, make_settings

pytestmark = pytest.mark.anyio

TO = "+14155550134"


class Person:
    """A client-side elicitation callback that records each question and gives one answer."""

    def __init__(self, action: ElicitAction, content: dict[str, Any] | None = None, *, error: bool = False) -> None:
        self.action = action
        self.content = content
        self.error = error
        self.asked: list[types.ElicitRequestFormParams] = []

    async def __call__(
        self, context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult | types.ErrorData:
        assert isinstance(params, types.ElicitRequestFormParams)
        self.asked.append(params)
        if self.error:
            return types.ErrorData(code=types.INTERNAL_ERROR, message="the confirmation dialog crashed")
        return types.ElicitResult(action=self.action, content=self.content)


def _args(rig: Rig, **extra: Any) -> dict[str, Any]:
    return {"agent_id": rig.sandbox.seed_ids.deployed_agent_id, "to_number": "+1 (415) 555-0134", **extra}


def _text(result: Any) -> str:
    return str(result.content[0].text)


async def test_accepting_the_question_dials_exactly_once(rig: Rig, mode: str) -> None:
    person = Person("accept", {"confirm": True})
    async with connected(rig, mode, elicitation_callback=person) as client:
        result = await client.call_tool("dispatch_call", _args(rig))
    assert not result.is_error and result.structured_content is not None
    assert result.structured_content["status"] == "dialed"
    assert result.structured_content["call"]["to"] == TO
    assert "SANDBOX" in result.structured_content["message"]
    assert len(person.asked) == 1 and rig.posts() == 1
    assert rig.sandbox.requests[-1].body == {"agentId": rig.sandbox.seed_ids.deployed_agent_id, "toNumber": TO}


async def test_the_question_is_one_confirm_box_with_every_fact_a_person_needs(rig: Rig, mode: str) -> None:
    person = Person("decline")
    async with connected(rig, mode, elicitation_callback=person) as client:
        await client.call_tool("dispatch_call", _args(rig))
    (question,) = person.asked
    assert question.requested_schema["properties"].keys() == {"confirm"}
    assert question.requested_schema["properties"]["confirm"]["type"] == "boolean"
    message = question.message
    assert message.startswith("[SANDBOX")
    for fact in (TO, "US", "Ava — appointment reminders", "credits per minute", "estimate", "Balance: 1000 credits"):
        assert fact in message


@pytest.mark.parametrize(
    ("person", "said"),
    [
        (Person("accept", {"confirm": False}), "did not tick confirm"),
        (Person("decline"), "declined"),
        (Person("cancel"), "cancelled"),
    ],
    ids=["confirm-false", "decline", "cancel"],
)
async def test_anything_but_a_ticked_confirm_dials_nothing_and_says_so_as_a_normal_result(
    rig: Rig, mode: str, person: Person, said: str
) -> None:
    async with connected(rig, mode, elicitation_callback=person) as client:
        result = await client.call_tool("dispatch_call", _args(rig))
    assert not result.is_error and result.structured_content is not None
    assert result.structured_content["status"] == "not_dialed"
    assert said in result.structured_content["message"] and "Nothing was dialed" in result.structured_content["message"]
    assert rig.posts() == 0


async def test_a_failed_question_in_the_handshake_era_is_never_taken_as_consent(rig: Rig) -> None:
    person = Person("accept", error=True)
    async with connected(rig, "legacy", elicitation_callback=person) as client:
        result = await client.call_tool("dispatch_call", _args(rig))
    assert not result.is_error and result.structured_content is not None
    assert result.structured_content["status"] == "not_dialed"
    assert "no answer is no consent" in result.structured_content["message"]
    assert len(person.asked) == 1 and rig.posts() == 0


async def test_a_failed_question_in_the_modern_era_aborts_the_call_and_dials_nothing(rig: Rig) -> None:
    person = Person("accept", error=True)
    async with connected(rig, "auto", elicitation_callback=person) as client:
        with pytest.raises(MCPError) as raised:
            await client.call_tool("dispatch_call", _args(rig))
        # The session survives: the next request works.
        assert not (await client.call_tool("get_balance", {})).is_error
    assert raised.value.error.message == "the confirmation dialog crashed"
    assert len(person.asked) == 1 and rig.posts() == 0


async def test_a_client_without_elicitation_gets_a_preview_and_token_and_nothing_is_dialed(rig: Rig, mode: str) -> None:
    async with connected(rig, mode) as client:
        result = await client.call_tool("dispatch_call", _args(rig))
    assert not result.is_error and result.structured_content is not None
    assert result.structured_content["status"] == "needs_confirmation"
    assert "explicit yes" in result.structured_content["message"]
    preview = result.structured_content["preview"]
    assert (preview["to"], preview["country"], preview["agent_name"]) == (TO, "US", "Ava — appointment reminders")
    assert preview["est_credits_per_min"] > 0 and preview["balance"] == 1000.0 and preview["sandbox"] is True
    assert len(preview["confirmation_token"]) >= 16
    assert preview["expires_at"] == "2026-11-30T17:05:00Z"  # five minutes after the rig's noon in New York
    assert rig.posts() == 0


async def _token(client: Any, args: dict[str, Any]) -> str:
    result = await client.call_tool("dispatch_call", args)
    assert result.structured_content is not None, _text(result)
    return str(result.structured_content["preview"]["confirmation_token"])


async def test_the_token_dials_once_and_a_replay_returns_the_same_call_without_dialing_again(
    rig: Rig, mode: str
) -> None:
    args = _args(rig)
    async with connected(rig, mode) as client:
        token = await _token(client, args)
        first = await client.call_tool("dispatch_call", {**args, "confirmation_token": token})
        again = await client.call_tool("dispatch_call", {**args, "confirmation_token": token})
    assert first.structured_content is not None and again.structured_content is not None
    assert first.structured_content["status"] == again.structured_content["status"] == "dialed"
    assert first.structured_content["call"]["id"] == again.structured_content["call"]["id"]
    assert "not dialed again" in again.structured_content["message"]
    assert rig.posts() == 1


async def test_a_token_for_other_arguments_confirms_nothing_and_stays_valid_for_its_own(rig: Rig, mode: str) -> None:
    args = _args(rig)
    async with connected(rig, mode) as client:
        token = await _token(client, args)
        other = await client.call_tool(
            "dispatch_call", {**args, "to_number": "+12125550100", "confirmation_token": token}
        )
        assert other.is_error and "other arguments" in _text(other) and "stays valid" in _text(other)
        assert rig.posts() == 0
        own = await client.call_tool("dispatch_call", {**args, "confirmation_token": token})
    assert own.structured_content is not None and own.structured_content["status"] == "dialed"
    assert rig.posts() == 1


async def test_an_expired_token_is_an_error_that_says_to_preview_again(rig: Rig, mode: str) -> None:
    args = _args(rig)
    async with connected(rig, mode) as client:
        token = await _token(client, args)
        await rig.sandbox.advance(5 * 60 + 1)
        result = await client.call_tool("dispatch_call", {**args, "confirmation_token": token})
    assert result.is_error and "expired" in _text(result) and "preview again" in _text(result)
    assert rig.posts() == 0


async def test_a_token_this_server_never_issued_dials_nothing(rig: Rig, mode: str) -> None:
    async with connected(rig, mode) as client:
        result = await client.call_tool("dispatch_call", _args(rig, confirmation_token="A" * 32))
    assert result.is_error and "Nothing was dialed" in _text(result)
    assert rig.posts() == 0


async def test_optional_arguments_given_are_sent_and_those_left_out_are_not(rig: Rig, mode: str) -> None:
    ids = rig.sandbox.seed_ids
    args = _args(rig, phone_number_id=ids.phone_number_id)
    async with connected(rig, mode) as client:
        token = await _token(client, args)
        await client.call_tool("dispatch_call", {**args, "confirmation_token": token})
    assert rig.sandbox.requests[-1].body == {
        "agentId": ids.deployed_agent_id,
        "toNumber": TO,
        "phoneNumberId": ids.phone_number_id,
    }


@pytest.mark.parametrize("written", ["415-555-0134", "(415) 555 0134", "+1.415.555.0134", "14155550134"])
async def test_a_destination_in_any_common_form_is_dialed_as_e164(rig: Rig, mode: str, written: str) -> None:
    person = Person("accept", {"confirm": True})
    async with connected(rig, mode, elicitation_callback=person) as client:
        await client.call_tool("dispatch_call", _args(rig, to_number=written))
    assert rig.posts() == 1 and rig.sandbox.requests[-1].body["toNumber"] == TO


@pytest.mark.parametrize("written", ["12345", "call me maybe", "+1 415 555 013", "+99 1234567"])
async def test_an_invalid_destination_is_a_tool_error_naming_it_and_it_is_never_sent(
    rig: Rig, mode: str, written: str
) -> None:
    person = Person("accept", {"confirm": True})
    async with connected(rig, mode, elicitation_callback=person) as client:
        result = await client.call_tool("dispatch_call", _args(rig, to_number=written))
    assert result.is_error and repr(written) in _text(result) and "E.164" in _text(result)
    assert person.asked == [] and rig.posts() == 0
    assert all(
        written not in str(request.body) and written not in str(request.query) for request in rig.sandbox.requests
    )


async def test_a_402_at_dial_time_says_the_balance_and_the_25_credit_minimum(rig: Rig, mode: str) -> None:
    args = _args(rig)
    async with connected(rig, mode) as client:
        token = await _token(client, args)
        rig.sandbox.faults.add(Fault(kind="status", status=402, method="POST", path="/calls"))
        result = await client.call_tool("dispatch_call", {**args, "confirmation_token": token})
    assert result.is_error
    assert "402" in _text(result) and "balance is 1000 credits" in _text(result) and "at least 25" in _text(result)
    assert rig.posts() == 1 and rig.sandbox.dispatched == 0


async def test_a_refused_key_at_preview_is_a_tool_error_and_nothing_is_asked(rig: Rig, mode: str) -> None:
    rig.sandbox.faults.add(Fault(kind="status", status=401, times=None))
    person = Person("accept", {"confirm": True})
    async with connected(rig, mode, elicitation_callback=person) as client:
        result = await client.call_tool("dispatch_call", _args(rig))
    assert result.is_error and "refused the API key" in _text(result)
    assert person.asked == [] and rig.posts() == 0


async def test_an_unknown_agent_is_a_tool_error_naming_it_and_nothing_is_asked(rig: Rig, mode: str) -> None:
    foreign = rig.sandbox.seed_ids.foreign_agent_id
    person = Person("accept", {"confirm": True})
    async with connected(rig, mode, elicitation_callback=person) as client:
        result = await client.call_tool("dispatch_call", _args(rig, agent_id=foreign))
    assert result.is_error and foreign in _text(result)
    assert person.asked == [] and rig.posts() == 0


async def test_a_402_after_the_balance_dropped_since_the_preview_says_the_balance_now(rig: Rig, mode: str) -> None:
    args = _args(rig)
    async with connected(rig, mode) as client:
        token = await _token(client, args)
        rig.sandbox.credits = 10  # other calls spent it between the preview and the yes
        result = await client.call_tool("dispatch_call", {**args, "confirmation_token": token})
    assert result.is_error and "402" in _text(result) and "at least 25" in _text(result)
    assert rig.sandbox.dispatched == 0
    assert "balance is 10 credits" in _text(result)


async def test_against_the_real_api_neither_question_nor_preview_claims_the_sandbox(tmp_path: Path, mode: str) -> None:
    sandbox = Sandbox(clock=ManualClock(datetime.fromisoformat(NOON_NEW_YORK)))  # stands in for the real API
    server = build_server(make_settings(tmp_path, sandbox=False), transport=sandbox.transport(), now=sandbox.clock.now)
    person = Person("decline")
    args = {"agent_id": sandbox.seed_ids.deployed_agent_id, "to_number": TO}
    async with Client(server, mode=mode, elicitation_callback=person) as asked:
        await asked.call_tool("dispatch_call", args)
    async with Client(server, mode=mode) as unasked:
        previewed = await unasked.call_tool("dispatch_call", args)
    assert "SANDBOX" not in person.asked[0].message
    assert previewed.structured_content is not None
    assert previewed.structured_content["preview"]["sandbox"] is False
    assert "SANDBOX" not in str(previewed.structured_content)
