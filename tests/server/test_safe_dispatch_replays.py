"""One consent, one outcome: answers sent again, loose answers, rules that change while a person decides, and
what a person reads made only from normalised values."""

from __future__ import annotations

import unicodedata
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client

from outboundcalls_mcp.server.sdk_patches import CONFIRMATION_NOT_ANSWERED
from tests.harness import Rig, connected, make_rig
from tests.places import LedgerPlace
from tests.server.dispatch_kit import (
    ERAS,
    US_NUMBER,
    Person,
    audit_of,
    call_id_of,
    confirm,
    dispatch_args,
    kinds,
    preview_token,
    text_of,
)
from tests.server.process_kit import answer

pytestmark = pytest.mark.anyio

NEW_YORK_NUMBER = "+12125550177"  # 12:00 there at the harness's noon
OTHER_NEW_YORK_NUMBER = "+12125550178"


async def ask(client: Client, tool: str, args: dict[str, Any]) -> types.InputRequiredResult:
    """The first round of a 2026-07-28 call: the question, as an input request."""
    first = await client.session.call_tool(tool, args, allow_input_required=True)
    assert isinstance(first, types.InputRequiredResult), first
    return first


def question_of(asked: types.InputRequiredResult) -> str:
    """The words of the question an input request asks."""
    assert asked.input_requests is not None
    (request,) = asked.input_requests.values()
    assert isinstance(request, types.ElicitRequest) and isinstance(request.params, types.ElicitRequestFormParams)
    return request.params.message


def batch_args(rig: Rig, numbers: list[str]) -> dict[str, Any]:
    return {"agent_id": rig.sandbox.seed_ids.deployed_agent_id, "to_numbers": numbers}


def dialed_numbers(rig: Rig) -> list[str]:
    return [r.body["toNumber"] for r in rig.sandbox.requests if r.method == "POST" and r.path.endswith("/calls")]


async def test_a_modern_answer_sent_again_in_sequence_dials_once_and_reports_the_same_call(place: LedgerPlace) -> None:
    rig = make_rig(place, redial_cooldown_minutes=0)  # no cooldown to hide a second dial behind
    args = dispatch_args(rig)
    async with connected(rig, elicitation_callback=Person()) as client:
        asked = await ask(client, "dispatch_call", args)
        results = [await answer(client, "dispatch_call", args, asked) for _ in range(3)]
    assert len({call_id_of(r) for r in results}) == 1
    assert "not dialed again" in text_of(results[1]) and "not dialed again" in text_of(results[2])
    assert rig.posts() == 1
    assert kinds(await audit_of(rig)) == ["question", "answer", "dial", "outcome", "replay", "replay"]


async def test_a_modern_answer_sent_again_at_once_dials_once(place: LedgerPlace) -> None:
    for round_ in range(3):
        rig = make_rig(place / str(round_), redial_cooldown_minutes=0)
        args = dispatch_args(rig)
        results: list[types.CallToolResult] = []
        async with connected(rig, elicitation_callback=Person()) as client:
            asked = await ask(client, "dispatch_call", args)

            async def send() -> None:
                results.append(await answer(client, "dispatch_call", args, asked))

            async with anyio.create_task_group() as group:
                for _ in range(6):
                    group.start_soon(send)
        assert len({call_id_of(r) for r in results}) == 1
        assert rig.posts() == 1
        entries = kinds(await audit_of(rig))
        assert entries.count("question") == entries.count("answer") == entries.count("dial") == 1


async def test_a_modern_no_sent_again_stays_a_no(place: LedgerPlace) -> None:
    rig = make_rig(place)
    args = dispatch_args(rig)
    async with connected(rig, elicitation_callback=Person()) as client:
        asked = await ask(client, "dispatch_call", args)
        first = await answer(client, "dispatch_call", args, asked, content=None, action="decline")
        # The same round re-sent, now saying yes: the consent was used by the no.
        again = await answer(client, "dispatch_call", args, asked)
    assert first.structured_content is not None and first.structured_content["status"] == "not_dialed"
    assert again.structured_content is not None and again.structured_content["status"] == "not_dialed"
    assert "already answered (decline)" in text_of(again)
    assert rig.posts() == 0


@pytest.mark.parametrize("mode", ERAS)
async def test_a_token_sent_again_in_sequence_and_at_once_dials_once(place: LedgerPlace, mode: str) -> None:
    rig = make_rig(place, redial_cooldown_minutes=0)
    args = dispatch_args(rig)
    results: list[types.CallToolResult] = []
    async with connected(rig, mode) as client:
        token = await preview_token(client, args)
        results.append(await confirm(client, args, token))
        results.append(await confirm(client, args, token))

        async def send() -> None:
            results.append(await confirm(client, args, token))

        async with anyio.create_task_group() as group:
            for _ in range(5):
                group.start_soon(send)
    assert len({call_id_of(r) for r in results}) == 1
    assert rig.posts() == 1


async def test_a_modern_batch_answer_sent_again_dials_each_destination_once(place: LedgerPlace) -> None:
    rig = make_rig(place, redial_cooldown_minutes=0)
    args = batch_args(rig, [US_NUMBER, NEW_YORK_NUMBER])
    async with connected(rig, elicitation_callback=Person()) as client:
        asked = await ask(client, "dispatch_calls", args)
        first = await answer(client, "dispatch_calls", args, asked)
        results: list[types.CallToolResult] = []

        async def send() -> None:
            results.append(await answer(client, "dispatch_calls", args, asked))

        async with anyio.create_task_group() as group:
            for _ in range(4):
                group.start_soon(send)
    assert sorted(dialed_numbers(rig)) == sorted([US_NUMBER, NEW_YORK_NUMBER])
    assert first.structured_content is not None
    call_ids = sorted(d["call_id"] for d in first.structured_content["destinations"])
    for result in results:
        assert result.structured_content is not None, text_of(result)
        assert sorted(d["call_id"] for d in result.structured_content["destinations"]) == call_ids
        assert "already used" in result.structured_content["message"]


@pytest.mark.parametrize("mode", ERAS)
async def test_a_batch_token_sent_again_dials_each_destination_once(place: LedgerPlace, mode: str) -> None:
    rig = make_rig(place, confirm="token", redial_cooldown_minutes=0)
    args = batch_args(rig, [US_NUMBER, NEW_YORK_NUMBER])
    async with connected(rig, mode) as client:
        preview = await client.call_tool("dispatch_calls", args)
        assert preview.structured_content is not None
        token = preview.structured_content["confirmation_token"]
        results: list[types.CallToolResult] = []

        async def send() -> None:
            results.append(await client.call_tool("dispatch_calls", {**args, "confirmation_token": token}))

        async with anyio.create_task_group() as group:
            for _ in range(4):
                group.start_soon(send)
        results.append(await client.call_tool("dispatch_calls", {**args, "confirmation_token": token}))
    assert sorted(dialed_numbers(rig)) == sorted([US_NUMBER, NEW_YORK_NUMBER])
    assert all(not r.is_error for r in results)


@pytest.mark.parametrize("loose", ["true", "yes", "on", 1, 1.0])
async def test_only_json_true_is_a_yes_in_the_modern_era(place: LedgerPlace, loose: Any) -> None:
    rig = make_rig(place)
    args = dispatch_args(rig)
    async with connected(rig, elicitation_callback=Person()) as client:
        asked = await ask(client, "dispatch_call", args)
        result = await answer(client, "dispatch_call", args, asked, content={"confirm": loose})
    assert result.is_error and CONFIRMATION_NOT_ANSWERED in text_of(result)
    assert "Resolver" not in text_of(result) and "tools." not in text_of(result)
    assert rig.posts() == 0


@pytest.mark.parametrize("loose", ["true", "yes", "on", 1, 1.0])
async def test_only_json_true_is_a_yes_in_the_handshake_era(place: LedgerPlace, loose: Any) -> None:
    rig = make_rig(place)

    async def loosely(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action="accept", content={"confirm": loose})

    async with connected(rig, "legacy", elicitation_callback=loosely) as client:
        result = await client.call_tool("dispatch_call", dispatch_args(rig))
    assert result.structured_content is not None and result.structured_content["status"] == "not_dialed", text_of(
        result
    )
    assert rig.posts() == 0


async def test_an_accept_with_no_content_names_no_internal_resolver(place: LedgerPlace) -> None:
    rig = make_rig(place)
    args = dispatch_args(rig)
    async with connected(rig, elicitation_callback=Person()) as client:
        asked = await ask(client, "dispatch_call", args)
        result = await answer(client, "dispatch_call", args, asked, content=None)
    assert result.is_error and text_of(result) == f"Error executing tool dispatch_call: {CONFIRMATION_NOT_ANSWERED}"
    assert rig.posts() == 0


@pytest.mark.parametrize("mode", ERAS)
async def test_a_batch_dials_only_what_was_agreed_even_when_a_refused_destinations_rule_lifts(
    place: LedgerPlace, mode: str
) -> None:
    # 09:00 in San Francisco is before these hours open (09:01); noon in New York is inside them.
    rig = make_rig(place, calling_hours="09:01-21:00")
    args = batch_args(rig, [NEW_YORK_NUMBER, US_NUMBER])
    result = await _answer_later(rig, mode, args, minutes=2)  # by then it is 09:02 in San Francisco
    assert dialed_numbers(rig) == [NEW_YORK_NUMBER]
    assert result.structured_content is not None
    shown = {d["to"]: d for d in result.structured_content["destinations"]}
    assert shown[US_NUMBER]["status"] == "refused" and "hours" in shown[US_NUMBER]["reason"]
    assert shown[NEW_YORK_NUMBER]["status"] == "dialed"


@pytest.mark.parametrize("mode", ERAS)
async def test_a_batch_destination_refused_while_the_form_was_open_is_named_with_its_rule(
    place: LedgerPlace, mode: str
) -> None:
    # Noon in New York, with hours that close at 12:01 there: both are ready when asked, and
    # after two minutes the New York ones are outside hours while San Francisco (09:02) is not.
    rig = make_rig(place, calling_hours="08:00-12:01")
    args = batch_args(rig, [NEW_YORK_NUMBER, US_NUMBER])
    result = await _answer_later(rig, mode, args, minutes=2)
    assert dialed_numbers(rig) == [US_NUMBER]
    assert result.structured_content is not None
    shown = {d["to"]: d for d in result.structured_content["destinations"]}
    assert shown[NEW_YORK_NUMBER]["status"] == "refused" and shown[NEW_YORK_NUMBER]["reason"].startswith("hours:")
    assert shown[US_NUMBER]["status"] == "dialed"


async def _answer_later(rig: Rig, mode: str, args: dict[str, Any], *, minutes: int) -> types.CallToolResult:
    """dispatch_calls with a yes that arrives `minutes` after the question was put."""
    if mode == "auto":
        async with connected(rig, elicitation_callback=Person()) as client:
            asked = await ask(client, "dispatch_calls", args)
            await rig.sandbox.advance(minutes * 60)
            return await answer(client, "dispatch_calls", args, asked)

    class SlowPerson(Person):
        async def __call__(self, context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
            await rig.sandbox.advance(minutes * 60)
            return await super().__call__(context, params)

    async with connected(rig, "legacy", elicitation_callback=SlowPerson()) as client:
        return await client.call_tool("dispatch_calls", args)


FORGED_LINE = "Total: 0 credits (free test call)."
HOSTILE = [
    f"+1 415 555 0150\n{FORGED_LINE}",
    "\u202e4310-555-514 1+",
    "+1 415 555 0151\u2028Balance: 1000000 credits",
    "\u2066+14155550152\u2069",
]


def _assert_one_visible_line_each(question: str, lines: int) -> None:
    """Exactly the question's own lines, none forged, and no control or direction character anywhere."""
    assert len(question.split("\n")) == lines, question
    assert not any(line.startswith(FORGED_LINE) or line.startswith("Balance:") for line in question.split("\n"))
    hidden = [c for c in question.replace("\n", "") if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")]
    assert hidden == [], question


@pytest.mark.parametrize("mode", ERAS)
async def test_what_a_person_reads_holds_no_line_break_or_direction_control_from_input(
    place: LedgerPlace, mode: str
) -> None:
    rig = make_rig(place)
    agent_id = rig.sandbox.seed_ids.deployed_agent_id
    rig.sandbox.state.agents[agent_id].name = f"Ava\n{FORGED_LINE}\u202e"
    person = Person()
    async with connected(rig, mode, elicitation_callback=person) as client:
        batch = await client.call_tool("dispatch_calls", batch_args(rig, [US_NUMBER, *HOSTILE]))
        single = await client.call_tool("dispatch_call", dispatch_args(rig, NEW_YORK_NUMBER))
    assert not batch.is_error and not single.is_error, (text_of(batch), text_of(single))
    batch_question, single_question = person.questions
    # The batch question: the opening line, one line for the one ready destination, the total, the refusals.
    _assert_one_visible_line_each(batch_question, 4)
    _assert_one_visible_line_each(single_question, 1)
    assert "\\u202e" in batch_question  # shown, escaped, not obeyed
    assert batch.structured_content is not None
    for destination in batch.structured_content["destinations"]:
        assert "\n" not in destination["to"] and "\u202e" not in destination["to"] and "\u2066" not in destination["to"]
