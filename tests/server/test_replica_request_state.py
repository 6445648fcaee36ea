"""A 2026-07-28 question asked by one replica and answered through another: one call, with the owner's shared key."""

from __future__ import annotations

import secrets

import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

from tests.harness import connected, make_rig
from tests.places import LedgerPlace
from tests.server.dispatch_kit import Person, call_id_of, dispatch_args, text_of
from tests.server.process_kit import answer, ask

pytestmark = pytest.mark.anyio


async def test_a_question_asked_by_one_replica_is_answered_through_another_and_dials_once(
    pg_place: LedgerPlace,
) -> None:
    key = secrets.token_hex(32)
    first = make_rig(pg_place, confirm="elicit", request_state_key=key)
    second = make_rig(pg_place, sandbox=first.sandbox, confirm="elicit", request_state_key=key)
    args = dispatch_args(first)
    async with (
        connected(first, elicitation_callback=Person()) as here,
        connected(second, elicitation_callback=Person()) as there,
    ):
        asked = await ask(here, "dispatch_call", args)
        assert isinstance(asked, types.InputRequiredResult)
        placed = await answer(there, "dispatch_call", args, asked)
        replayed = await answer(here, "dispatch_call", args, asked)
    assert call_id_of(placed) == call_id_of(replayed)
    assert "not dialed again" in text_of(replayed)
    assert first.posts() == 1


async def test_without_a_shared_key_another_replica_refuses_the_answer_and_nothing_is_dialed(
    pg_place: LedgerPlace,
) -> None:
    first = make_rig(pg_place, confirm="elicit")
    second = make_rig(pg_place, sandbox=first.sandbox, confirm="elicit")
    args = dispatch_args(first)
    async with (
        connected(first, elicitation_callback=Person()) as here,
        connected(second, elicitation_callback=Person()) as there,
    ):
        asked = await ask(here, "dispatch_call", args)
        assert isinstance(asked, types.InputRequiredResult)
        with pytest.raises(MCPError) as refused:
            await answer(there, "dispatch_call", args, asked)
    assert refused.value.code == INVALID_PARAMS
    assert first.posts() == 0
