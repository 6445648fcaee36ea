"""The audit trail: every step appended with its facts, read newest first, never edited, no secrets."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from server.ledger import DialedOutcome, DispatchArgs, UnknownOutcome
from server.ledger_sqlite import SqliteLedger

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 1, 15, 17, 0, tzinfo=UTC)
EXPIRES = T0 + timedelta(minutes=5)
ARGS = DispatchArgs(agent_id="agent_1", to_number="+14155550134")


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[SqliteLedger]:
    store = SqliteLedger(tmp_path)
    yield store
    await store.aclose()


async def test_preview_dial_and_outcome_are_audited_with_number_agent_and_estimate(ledger: SqliteLedger) -> None:
    intent = await ledger.create_intent(ARGS, estimate_per_minute=19.95, now=T0, expires_at=EXPIRES, mode="token")
    await ledger.claim(intent.token, ARGS, now=T0 + timedelta(seconds=30))
    await ledger.record_outcome(intent.token, DialedOutcome(call_id="call_1"), now=T0 + timedelta(seconds=31))
    entries = await ledger.recent_audit()
    assert [entry.kind for entry in entries] == ["outcome", "dial", "preview"]
    for entry in entries:
        assert (entry.intent_id, entry.agent_id, entry.to_number) == (intent.intent_id, "agent_1", "+14155550134")
        assert entry.estimated_credits_per_minute == 19.95
    assert entries[0].detail == {"kind": "dialed", "call_id": "call_1"}
    assert entries[0].at == T0 + timedelta(seconds=31)
    assert entries[2].detail == {"mode": "token", "expires_at": "2026-01-15T17:05:00.000000Z"}


async def test_an_unknown_outcome_is_audited_with_its_reason(ledger: SqliteLedger) -> None:
    intent = await ledger.create_intent(ARGS, estimate_per_minute=19.95, now=T0, expires_at=EXPIRES, mode="token")
    await ledger.claim(intent.token, ARGS, now=T0)
    await ledger.record_outcome(intent.token, UnknownOutcome(reason="read timeout"), now=T0)
    assert (await ledger.recent_audit(1))[0].detail == {"kind": "unknown", "reason": "read timeout"}


@pytest.mark.parametrize("status", ["mismatched", "expired", "unknown_token"])
async def test_a_confirmation_that_confirmed_nothing_is_audited_as_a_refusal(ledger: SqliteLedger, status: str) -> None:
    intent = await ledger.create_intent(ARGS, estimate_per_minute=19.95, now=T0, expires_at=EXPIRES, mode="token")
    other = DispatchArgs(agent_id="agent_1", to_number="+19005550100")
    token, args, at = {
        "mismatched": (intent.token, other, T0),
        "expired": (intent.token, ARGS, EXPIRES),
        "unknown_token": ("forged", other, T0),
    }[status]
    await ledger.claim(token, args, now=at)
    entry = (await ledger.recent_audit(1))[0]
    assert (entry.kind, entry.detail, entry.to_number) == ("refusal", {"claim": status}, args.to_number)


async def test_questions_answers_and_charges_are_appended_as_given(ledger: SqliteLedger) -> None:
    question = await ledger.append_audit(
        "question", at=T0, intent_id="i1", agent_id="agent_1", to_number="+14155550134", estimate=19.95,
        detail={"message": "Call +14155550134 (US)?"},
    )  # fmt: skip
    answer = await ledger.append_audit("answer", at=T0, intent_id="i1", detail={"action": "accept"})
    charge = await ledger.append_audit("charge", at=T0 + timedelta(minutes=3), intent_id="i1", charge=59.85)
    assert await ledger.recent_audit() == [charge, answer, question]
    assert question.detail == {"message": "Call +14155550134 (US)?"}
    assert charge.charge_credits == 59.85
    assert question.id < answer.id < charge.id


async def test_reading_the_audit_returns_the_most_recent_entries_up_to_the_limit(ledger: SqliteLedger) -> None:
    for i in range(5):
        await ledger.append_audit("answer", at=T0 + timedelta(seconds=i), detail={"n": i})
    assert [entry.detail["n"] for entry in await ledger.recent_audit(limit=3)] == [4, 3, 2]
    with pytest.raises(ValueError):
        await ledger.recent_audit(limit=0)


@pytest.mark.parametrize(
    "detail",
    [{"confirmation_token": "abc"}, {"api_key": "oc_live_x"}, {"request": {"Authorization": "Bearer x"}}],
)
async def test_details_that_look_like_secrets_are_refused(ledger: SqliteLedger, detail: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="secret"):
        await ledger.append_audit("answer", at=T0, detail=detail)  # type: ignore[arg-type]
    assert await ledger.recent_audit() == []


async def test_the_audit_trail_cannot_be_edited_or_deleted(ledger: SqliteLedger) -> None:
    await ledger.append_audit("answer", at=T0, detail={"action": "decline"})
    with closing(sqlite3.connect(ledger.path)) as conn:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("UPDATE audit SET kind = 'dial'")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("DELETE FROM audit")
    assert len(await ledger.recent_audit()) == 1


async def test_the_audit_survives_a_restart(tmp_path: Path) -> None:
    before = SqliteLedger(tmp_path)
    await before.append_audit("answer", at=T0, detail={"action": "accept"})
    await before.aclose()
    after = SqliteLedger(tmp_path)
    assert [entry.detail for entry in await after.recent_audit()] == [{"action": "accept"}]
    await after.aclose()


async def test_a_charge_is_audited_once_and_only_for_a_call_this_ledger_dialed(ledger: SqliteLedger) -> None:
    intent = await ledger.create_intent(ARGS, estimate_per_minute=19.95, now=T0, expires_at=EXPIRES, mode="token")
    await ledger.claim(intent.token, ARGS, now=T0)
    await ledger.record_outcome(intent.token, DialedOutcome(call_id="call_1"), now=T0)
    later = T0 + timedelta(minutes=3)
    assert await ledger.record_charge("call_1", 59.85, now=later) is True
    assert await ledger.record_charge("call_1", 59.85, now=later) is False
    assert await ledger.record_charge("someone_elses_call", 10.0, now=later) is False
    charges = [entry for entry in await ledger.recent_audit() if entry.kind == "charge"]
    assert [(c.intent_id, c.charge_credits, c.to_number, c.detail) for c in charges] == [
        (intent.intent_id, 59.85, "+14155550134", {"call_id": "call_1"})
    ]
