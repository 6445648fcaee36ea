"""Tolerant models and envelope helpers: every shape the contract allows parses, bad ones say why."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from outboundcalls.account import Account
from outboundcalls.agents import Agent
from outboundcalls.calls import TERMINAL_STATUSES, CallDetail, CallStatus, CallSummary, NewCall, is_terminal_status
from outboundcalls.campaigns import Campaign
from outboundcalls.contacts import Contact, NewContact
from outboundcalls.errors import ResponseValidationError
from outboundcalls.wire import decode_json, parse_list, parse_one, unwrap_list, unwrap_one

CALL = {"id": "clx1", "agentId": "a1", "toNumber": "+14155551212", "status": "queued"}


def _b(payload: Any) -> bytes:
    return json.dumps(payload).encode()


@pytest.mark.parametrize("key", ["calls", "data", "items"])
def test_list_wrapped_under_any_documented_key_parses(key: str) -> None:
    assert [c.id for c in parse_list(CallSummary, _b({key: [CALL]}), "calls")] == ["clx1"]


def test_bare_list_parses() -> None:
    assert [c.id for c in parse_list(CallSummary, _b([CALL, {**CALL, "id": "clx2"}]), "calls")] == ["clx1", "clx2"]


def test_empty_list_parses_to_no_items() -> None:
    assert parse_list(Agent, _b({"agents": []}), "agents") == []


def test_list_object_without_the_list_names_the_expected_keys() -> None:
    with pytest.raises(ResponseValidationError, match="'agents'"):
        unwrap_list({"results": []}, "agents")


def test_list_body_that_is_a_scalar_is_rejected() -> None:
    with pytest.raises(ResponseValidationError, match="got a JSON string"):
        unwrap_list("nope", "agents")


@pytest.mark.parametrize("key", ["call", "data"])
def test_single_resource_wrapped_parses(key: str) -> None:
    assert parse_one(CallDetail, _b({key: CALL}), "call").id == "clx1"


def test_single_resource_bare_parses() -> None:
    assert parse_one(CallDetail, _b(CALL), "call").id == "clx1"


@pytest.mark.parametrize(
    "body",
    [{"credits": 30}, {"data": {"credits": 30}}, {"account": {"credits": 30}}],
    ids=["bare", "data", "account"],
)
def test_account_bare_or_wrapped_parses(body: dict[str, Any]) -> None:
    assert parse_one(Account, _b(body), "account").credits == 30.0


def test_single_resource_that_is_an_array_is_rejected() -> None:
    with pytest.raises(ResponseValidationError, match="got a JSON array"):
        unwrap_one([CALL], "call")


def test_account_parses_the_documented_shape() -> None:
    body = {
        "user": {"id": "u1", "email": "a@b.c", "name": None},
        "credits": "120.5",
        "subscription": {"plan": "pro", "status": "active", "currentPeriodEnd": "2025-01-31T00:00:00Z"},
    }
    account = parse_one(Account, _b(body), "account")
    assert account.credits == 120.5
    assert account.user is not None and account.user.email == "a@b.c"
    assert account.subscription is not None
    assert account.subscription.current_period_end == datetime(2025, 1, 31, tzinfo=UTC)


def test_account_without_subscription_parses() -> None:
    assert parse_one(Account, _b({"credits": 0, "subscription": None}), "account").subscription is None


def test_unknown_fields_are_kept() -> None:
    agent = Agent.model_validate({"id": "a1", "voiceId": "v9", "nested": {"x": 1}})
    assert agent.model_extra == {"voiceId": "v9", "nested": {"x": 1}}


def test_numeric_strings_are_coerced() -> None:
    call = CallSummary.model_validate({**CALL, "durationSeconds": "61.5", "creditsCharged": "12.5"})
    assert (call.duration_seconds, call.credits_charged) == (61.5, 12.5)
    campaign = Campaign.model_validate({"id": "k", "callsTotal": "10", "creditsUsed": "3.25", "successRate": "0.4"})
    assert (campaign.calls_total, campaign.credits_used, campaign.success_rate) == (10, 3.25, 0.4)


def test_numeric_ids_become_strings() -> None:
    assert Agent.model_validate({"id": 42}).id == "42"


def test_success_rate_is_kept_as_given() -> None:
    assert Campaign.model_validate({"id": "k", "successRate": 42}).success_rate == 42.0


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2024-05-01T12:30:00Z", datetime(2024, 5, 1, 12, 30, tzinfo=UTC)),
        ("2024-05-01T12:30:00.250+00:00", datetime(2024, 5, 1, 12, 30, 0, 250000, tzinfo=UTC)),
    ],
)
def test_timestamps_are_parsed(raw: str, expected: datetime) -> None:
    assert CallSummary.model_validate({**CALL, "createdAt": raw}).created_at == expected


def test_unknown_call_status_is_kept_and_not_terminal() -> None:
    call = CallSummary.model_validate({**CALL, "status": "transferred"})
    assert call.status == "transferred"
    assert not call.is_terminal


@pytest.mark.parametrize("status", sorted(TERMINAL_STATUSES))
def test_terminal_statuses_are_terminal(status: str) -> None:
    assert CallSummary.model_validate({**CALL, "status": status}).is_terminal


def test_call_status_enum_values_match_the_contract() -> None:
    assert {s.value for s in CallStatus} >= TERMINAL_STATUSES
    assert not is_terminal_status(CallStatus.IN_PROGRESS)


def test_transcript_as_turns_parses() -> None:
    turns = [{"role": "agent", "message": "Hi", "timeInCallSecs": "1.5"}, {"role": "user", "message": None}]
    detail = CallDetail.model_validate({**CALL, "transcript": turns})
    assert [(t.role, t.message, t.time_in_call_secs) for t in detail.transcript] == [
        ("agent", "Hi", 1.5),
        ("user", "", None),
    ]


def test_transcript_as_plain_string_becomes_one_unknown_turn() -> None:
    detail = CallDetail.model_validate({**CALL, "transcript": "Agent: Hi\nUser: Hello"})
    assert [(t.role, t.message) for t in detail.transcript] == [("unknown", "Agent: Hi\nUser: Hello")]


@pytest.mark.parametrize("transcript", [None, "", "missing"])
def test_transcript_null_empty_or_absent_is_no_turns(transcript: str | None) -> None:
    body = dict(CALL) if transcript == "missing" else {**CALL, "transcript": transcript}
    assert CallDetail.model_validate(body).transcript == []


def test_call_detail_keeps_extracted_data_and_extras() -> None:
    detail = CallDetail.model_validate(
        {
            **CALL,
            "summary": "ok",
            "recordingUrl": "https://r",
            "sentiment": "positive",
            "extractedData": {"interested": True},
            "cost": {"usd": 1},
        }
    )
    assert detail.extracted_data == {"interested": True}
    assert detail.recording_url == "https://r"
    assert detail.model_extra == {"cost": {"usd": 1}}


def test_contact_null_collections_become_empty() -> None:
    contact = Contact.model_validate({"id": "c1", "tags": None, "customFields": None})
    assert (contact.tags, contact.custom_fields) == ([], {})


def test_missing_required_id_names_the_field_not_the_body() -> None:
    with pytest.raises(ResponseValidationError) as info:
        parse_one(Agent, _b({"agent": {"name": "secret-ish name"}}), "agent")
    assert "id" in info.value.message
    assert "secret-ish" not in info.value.message


def test_missing_credits_is_a_validation_error() -> None:
    with pytest.raises(ResponseValidationError, match="credits"):
        parse_one(Account, _b({"user": {"id": "u"}}), "account")


def test_bad_item_in_a_list_names_its_index() -> None:
    with pytest.raises(ResponseValidationError, match=r"calls\[1\]\.status"):
        parse_list(CallSummary, _b({"calls": [CALL, {"id": "x"}]}), "calls")


@pytest.mark.parametrize(
    ("body", "reason"),
    [(b"", "empty"), (b"   ", "empty"), (b"{not json", "not valid JSON"), (b"\xff\xfe\xfa", "not")],
)
def test_undecodable_body_says_what_was_wrong(body: bytes, reason: str) -> None:
    with pytest.raises(ResponseValidationError, match=reason):
        parse_one(Agent, body, "agent")


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": [1, 2.5, -0, 1e400, "\\u00e9\\ud83d\\ude00", null, true], "b": {"c": "x"}, '
        b'"a2": 123456789012345678901}',
        b"\xef\xbb\xbf" + b'{"id": "with a byte-order mark"}',  # refused by the fast parser, taken by json.loads
        b'{"lone": "\\ud800"}',  # likewise
        b'  {"spaced": NaN}  ',
    ],
)
def test_a_body_decodes_exactly_as_json_loads_decodes_it(body: bytes) -> None:
    assert repr(decode_json(body)) == repr(json.loads(body))


def test_new_call_body_leaves_out_optional_fields_not_given() -> None:
    assert NewCall(agent_id="a1", to_number="+14155551212").to_body() == {"agentId": "a1", "toNumber": "+14155551212"}


def test_new_call_body_uses_camel_case_for_given_fields() -> None:
    body = NewCall(agent_id="a1", to_number="+1415", phone_number_id="p1", contact_id="c1").to_body()
    assert body == {"agentId": "a1", "toNumber": "+1415", "phoneNumberId": "p1", "contactId": "c1"}


def test_new_call_never_sends_null() -> None:
    assert NewCall(agent_id="a1", to_number="+1415", contact_id=None).to_body() == {
        "agentId": "a1",
        "toNumber": "+1415",
    }


def test_new_call_accepts_wire_names_too() -> None:
    assert NewCall.model_validate({"agentId": "a1", "toNumber": "+1"}).agent_id == "a1"


def test_new_call_refuses_a_misspelt_field_rather_than_sending_it() -> None:
    with pytest.raises(ValidationError):
        NewCall(agent_id="a1", to_number="+1", phone_numer_id="p1")  # type: ignore[call-arg]  # misspelt on purpose


def test_new_contact_body_leaves_out_optional_fields_not_given() -> None:
    assert NewContact(contact_list_id="l1", phone="+1415").to_body() == {"contactListId": "l1", "phone": "+1415"}


def test_new_contact_body_keeps_custom_field_keys_verbatim() -> None:
    body = NewContact(
        contact_list_id="l1", phone="+1", name="Jane", tags=["lead"], custom_fields={"deal_size": 5, "note": None}
    ).to_body()
    assert body == {
        "contactListId": "l1",
        "phone": "+1",
        "name": "Jane",
        "tags": ["lead"],
        "customFields": {"deal_size": 5, "note": None},
    }


@pytest.mark.parametrize("field", ["contact_list_id", "phone"])
def test_new_contact_requires_non_empty_required_fields(field: str) -> None:
    values: dict[str, Any] = {"contact_list_id": "l1", "phone": "+1", field: ""}
    with pytest.raises(ValidationError):
        NewContact(**values)


def test_the_usual_envelope_and_the_tolerant_path_give_the_same_models_extras_included() -> None:
    extra = {**CALL, "newVendorField": {"x": 1}}
    usual = parse_list(CallSummary, _b({"calls": [CALL, extra], "nextCursor": "c2"}), "calls")
    tolerant = parse_list(CallSummary, _b({"data": [CALL, extra]}), "calls")
    assert usual == tolerant
    assert usual[1].model_extra == {"newVendorField": {"x": 1}}
