"""dispatch_calls end to end: the same pre-flight per destination, one confirmation, each destination dialed once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp.client.session import ClientRequestContext

from tests.harness import ElicitAction, Rig, connected, first_text, make_rig

pytestmark = pytest.mark.anyio

# Five destinations: three dialable US numbers (written three ways), an emergency number, and one abroad.
NUMBERS = ["+14155550134", "911", "+442079460123", "212-555-0177", "(312) 555-0142"]
DIALABLE = ["+14155550134", "+12125550177", "+13125550142"]


class Person:
    """Answers every confirmation the same way and keeps each question."""

    def __init__(self, action: ElicitAction = "accept", confirm: bool = True) -> None:
        self.action = action
        self.confirm = confirm
        self.asked: list[str] = []

    async def __call__(self, context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        assert isinstance(params, types.ElicitRequestFormParams)
        self.asked.append(params.message)
        return types.ElicitResult(
            action=self.action, content={"confirm": self.confirm} if self.action == "accept" else None
        )


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    """Calls limited to the US, so the foreign number is refused by policy like the emergency one."""
    return make_rig(tmp_path, allowed_countries="US")


def _args(rig: Rig, numbers: list[str] = NUMBERS, **extra: Any) -> dict[str, Any]:
    return {"agent_id": rig.sandbox.seed_ids.deployed_agent_id, "to_numbers": numbers, **extra}


def _dialed_to(rig: Rig) -> list[str]:
    return [r.body["toNumber"] for r in rig.sandbox.requests if r.method == "POST" and r.path.endswith("/calls")]


def _by_status(result: Any) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for item in result.structured_content["destinations"]:
        grouped.setdefault(item["status"], []).append(item["to"])
    return grouped


async def test_a_batch_of_five_asks_once_and_dials_the_three_allowed_exactly_once(rig: Rig, mode: str) -> None:
    person = Person()
    async with connected(rig, mode, elicitation_callback=person) as client:
        result = await client.call_tool("dispatch_calls", _args(rig))
    assert not result.is_error and result.structured_content is not None
    assert len(person.asked) == 1
    assert rig.posts() == 3 and sorted(_dialed_to(rig)) == sorted(DIALABLE)
    assert _by_status(result) == {"dialed": DIALABLE, "refused": ["911", "+442079460123"]}
    destinations = result.structured_content["destinations"]
    assert [d["to"] for d in destinations] == ["+14155550134", "911", "+442079460123", *DIALABLE[1:]]
    assert all(d["call_id"] for d in destinations if d["status"] == "dialed")
    reasons = {d["to"]: d["reason"] for d in destinations if d["status"] == "refused"}
    assert reasons["911"].startswith("emergency:") and reasons["+442079460123"].startswith("country:")


async def test_the_one_question_lists_every_destination_the_total_and_each_refusal(rig: Rig, mode: str) -> None:
    person = Person("decline")
    async with connected(rig, mode, elicitation_callback=person) as client:
        result = await client.call_tool("dispatch_calls", _args(rig))
    (question,) = person.asked
    assert question.startswith("[SANDBOX") and "Place 3 phone call(s)" in question
    assert all(number in question for number in DIALABLE)
    assert "Total: about" in question and "Balance: 1000 credits" in question
    assert "911 (emergency:" in question and "+442079460123 (country:" in question
    assert result.structured_content is not None and result.structured_content["status"] == "not_dialed"
    assert rig.posts() == 0


async def test_without_a_form_one_token_confirms_the_batch_and_a_second_use_dials_nothing_more(
    rig: Rig, mode: str
) -> None:
    async with connected(rig, mode) as client:
        preview = await client.call_tool("dispatch_calls", _args(rig))
        assert preview.structured_content is not None and rig.posts() == 0
        token = preview.structured_content["confirmation_token"]
        first = await client.call_tool("dispatch_calls", _args(rig, confirmation_token=token))
        again = await client.call_tool("dispatch_calls", _args(rig, confirmation_token=token))
    assert preview.structured_content["status"] == "needs_confirmation"
    assert _by_status(preview) == {"ready": DIALABLE, "refused": ["911", "+442079460123"]}
    assert preview.structured_content["est_credits_per_min"] > 0
    assert first.structured_content is not None and again.structured_content is not None
    assert _by_status(first)["dialed"] == DIALABLE and rig.posts() == 3
    ids = [d.get("call_id") for d in first.structured_content["destinations"]]
    assert [d.get("call_id") for d in again.structured_content["destinations"]] == ids


@pytest.mark.parametrize("change", ["reordered", "other_agent", "made_up"])
async def test_a_token_confirms_nothing_for_other_destinations_or_when_made_up(
    rig: Rig, mode: str, change: str
) -> None:
    async with connected(rig, mode) as client:
        preview = await client.call_tool("dispatch_calls", _args(rig))
        assert preview.structured_content is not None
        token = preview.structured_content["confirmation_token"]
        args = _args(rig, confirmation_token=token)
        if change == "reordered":
            args["to_numbers"] = [*NUMBERS[3:], *NUMBERS[:3]]
        elif change == "other_agent":
            args["agent_id"] = rig.sandbox.seed_ids.deployed_agent_ids[1]
        else:
            args["confirmation_token"] = "x" * 32
        result = await client.call_tool("dispatch_calls", args)
    assert result.is_error and "Nothing was dialed" in first_text(result)
    assert rig.posts() == 0


async def test_unattended_mode_dials_without_asking(tmp_path: Path, mode: str) -> None:
    rig = make_rig(tmp_path, allowed_countries="US", confirm="none", max_calls_per_day=10, max_credits_per_day=2000)
    person = Person()
    async with connected(rig, mode, elicitation_callback=person) as client:
        result = await client.call_tool("dispatch_calls", _args(rig))
    assert result.structured_content is not None and _by_status(result)["dialed"] == DIALABLE
    assert person.asked == [] and rig.posts() == 3


async def test_duplicates_and_the_daily_cap_count_the_batch_as_a_whole(tmp_path: Path, mode: str) -> None:
    rig = make_rig(tmp_path, max_calls_per_day=2)
    numbers = ["+14155550134", "415 555 0134", "+12125550177", "+13125550142"]
    async with connected(rig, mode, elicitation_callback=Person()) as client:
        result = await client.call_tool("dispatch_calls", _args(rig, numbers))
    assert result.structured_content is not None
    reasons = [d.get("reason", "") for d in result.structured_content["destinations"]]
    assert reasons[1].startswith("duplicate:") and reasons[3].startswith("daily_calls:")
    assert _by_status(result)["dialed"] == ["+14155550134", "+12125550177"] and rig.posts() == 2


async def test_a_batch_with_every_destination_refused_asks_nothing_and_dials_nothing(rig: Rig, mode: str) -> None:
    person = Person()
    async with connected(rig, mode, elicitation_callback=person) as client:
        result = await client.call_tool("dispatch_calls", _args(rig, ["911", "+442079460123"]))
    assert result.structured_content is not None and result.structured_content["status"] == "not_dialed"
    assert person.asked == [] and rig.posts() == 0


async def test_a_batch_over_the_owners_limit_is_refused_before_anything_is_read(tmp_path: Path, mode: str) -> None:
    rig = make_rig(tmp_path, max_batch=3)
    async with connected(rig, mode, elicitation_callback=Person()) as client:
        result = await client.call_tool("dispatch_calls", _args(rig, [*DIALABLE, "+16175550100"]))
    assert result.is_error and "OUTBOUNDCALLS_MAX_BATCH" in first_text(result)
    assert rig.sandbox.requests == []
