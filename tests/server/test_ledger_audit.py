"""The audit trail: every step appended with its facts, read newest first, never edited, no secrets."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import JsonValue

from outboundcalls_mcp.server.ledger import AuditEntry, DialedOutcome, UnknownOutcome
from outboundcalls_mcp.server.ledger_place import read_audit_trail
from outboundcalls_mcp.server.ledger_sql import SqlLedger
from outboundcalls_mcp.server.ledger_sqlite import read_audit
from outboundcalls_mcp.server.settings import Settings
from tests.places import LedgerPlace
from tests.server.ledger_kit import (
    ARGS,
    EXPIRES,
    OTHER_ARGS,
    RATE,
    T0,
    Clock,
    allow,
    batch_consent,
    batch_use,
    dial,
    dialed,
    form_use,
    intent_of,
    new_token,
    refuse,
    single_consent,
    single_consent_of,
    token_use,
    unattended,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
async def ledger(place: LedgerPlace) -> AsyncIterator[SqlLedger]:
    async with place.opened() as store:
        yield store


def facts(entry: AuditEntry) -> tuple[object, ...]:
    """What an entry says about whom: its kind, agent, number, estimate and consent."""
    return entry.kind, entry.agent_id, entry.to_number, entry.estimated_credits_per_minute, entry.detail.get("consent")


async def oldest_first(ledger: SqlLedger) -> list[AuditEntry]:
    return list(reversed(await ledger.recent_audit()))


async def test_a_preview_its_dial_its_outcome_and_a_replay_are_audited_with_number_agent_estimate_and_consent(
    ledger: SqlLedger,
) -> None:
    token = new_token()
    consent = await single_consent(ledger, token=token)
    decision = await ledger.decide(
        dial(consent=consent, use=token_use(consent)), allow, clock=Clock(T0 + timedelta(seconds=30))
    )
    assert decision.intent is not None
    await ledger.record_outcome(
        decision.intent.intent_id, DialedOutcome(call_id="call_1"), now=T0 + timedelta(seconds=31)
    )
    await ledger.decide(dial(consent=consent, use=token_use(consent)), allow, clock=Clock(T0 + timedelta(seconds=40)))
    preview, dialing, outcome, replay = await oldest_first(ledger)
    for entry, kind in [(preview, "preview"), (dialing, "dial"), (outcome, "outcome"), (replay, "replay")]:
        assert facts(entry)[:4] == (kind, "agent_1", ARGS.to_number, RATE)
    assert (preview.detail["consent"], dialing.detail["consent"], replay.detail["consent"]) == (consent.consent_id,) * 3
    assert preview.detail == {
        "consent": consent.consent_id, "mode": "token", "expires_at": "2026-01-15T17:05:00.000000Z",
        "destinations": [ARGS.to_number],
    }  # fmt: skip
    assert (dialing.intent_id, dialing.at, dialing.detail["mode"]) == (
        decision.intent.intent_id, T0 + timedelta(seconds=30), "token",
    )  # fmt: skip
    assert (outcome.intent_id, outcome.at, outcome.detail) == (
        decision.intent.intent_id, T0 + timedelta(seconds=31), {"kind": "dialed", "call_id": "call_1"},
    )  # fmt: skip
    assert (replay.at, replay.detail["via"], replay.detail["first_answer"]) == (
        T0 + timedelta(seconds=40),
        "token",
        "token",
    )


async def test_a_question_and_its_answer_are_audited_once_however_often_the_answer_is_sent(ledger: SqlLedger) -> None:
    consent = await single_consent(ledger, token=None, era="legacy")
    for _ in range(3):
        await ledger.decide(dial(consent=consent, use=form_use(consent, answer_key="round_1")), allow, clock=Clock())
    entries = await oldest_first(ledger)
    assert [entry.kind for entry in entries] == ["question", "answer", "dial", "replay", "replay"]
    question, answer = entries[0], entries[1]
    assert facts(question) == ("question", "agent_1", ARGS.to_number, RATE, consent.consent_id)
    assert (question.detail["question"], question.detail["era"]) == ("Call +14155550134?", "legacy")
    assert facts(answer) == ("answer", "agent_1", ARGS.to_number, RATE, consent.consent_id)
    assert answer.detail["answer"] == "accept"


async def test_a_no_is_audited_as_the_answer_and_nothing_is_dialed(ledger: SqlLedger) -> None:
    consent = await single_consent(ledger, token=None)
    await ledger.answer_consent(form_use(consent), "decline", now=T0)
    assert [(e.kind, e.detail.get("answer"), e.detail.get("consent")) for e in await oldest_first(ledger)] == [
        ("question", None, consent.consent_id), ("answer", "decline", consent.consent_id),
    ]  # fmt: skip


async def test_a_batch_question_names_every_number_agreed_and_each_dial_its_own(ledger: SqlLedger) -> None:
    consent = await batch_consent(
        ledger, [(ARGS.to_number, True), ("+19005550100", False), (OTHER_ARGS.to_number, True)]
    )
    await ledger.answer_consent(batch_use(consent), "accept", now=T0)
    await ledger.decide(dial(ARGS, consent=consent, position=0), allow, clock=Clock())
    await ledger.decide(dial(OTHER_ARGS, consent=consent, position=2), allow, clock=Clock())
    question, answer, first, second = await oldest_first(ledger)
    assert question.detail["destinations"] == [ARGS.to_number, OTHER_ARGS.to_number]
    assert (question.to_number, answer.kind, answer.detail["consent"]) == (None, "answer", consent.consent_id)
    assert [(e.kind, e.to_number, e.detail["consent"]) for e in (first, second)] == [
        ("dial", ARGS.to_number, consent.consent_id), ("dial", OTHER_ARGS.to_number, consent.consent_id),
    ]  # fmt: skip


async def test_a_refusal_by_the_rules_is_audited_with_its_rules_and_the_stage_it_was_decided_at(
    ledger: SqlLedger,
) -> None:
    token_consent = await single_consent(ledger, token=new_token())
    question = await single_consent(ledger, OTHER_ARGS, token=None)
    await ledger.decide(dial(consent=token_consent, use=token_use(token_consent)), refuse("hours"), clock=Clock())
    refused = await ledger.decide(dial(OTHER_ARGS, consent=question, use=form_use(question, OTHER_ARGS)),
                                  refuse("cooldown", "daily_calls"), clock=Clock())  # fmt: skip
    await unattended(ledger, rules=refuse("do_not_call"))
    refusals = [e for e in await oldest_first(ledger) if e.kind == "refusal"]
    assert [(facts(e), e.intent_id, e.detail["rules"], e.detail["stage"]) for e in refusals] == [
        (("refusal", "agent_1", ARGS.to_number, RATE, token_consent.consent_id), None, ["hours"], "confirmation"),
        (("refusal", "agent_1", OTHER_ARGS.to_number, RATE, question.consent_id), intent_of(refused).intent_id,
         ["cooldown", "daily_calls"], "decision"),
        (("refusal", "agent_1", ARGS.to_number, RATE, None), None, ["do_not_call"], "decision"),
    ]  # fmt: skip


@pytest.mark.parametrize("claim", ["mismatched", "expired"])
async def test_a_yes_that_could_not_use_its_consent_is_audited_as_a_refusal(ledger: SqlLedger, claim: str) -> None:
    consent = await single_consent(ledger, token=new_token())
    use = token_use(consent, OTHER_ARGS if claim == "mismatched" else ARGS)
    await ledger.decide(dial(consent=consent, use=use), allow, clock=Clock(EXPIRES if claim == "expired" else T0))
    entry = (await ledger.recent_audit(1))[0]
    assert facts(entry) == ("refusal", "agent_1", ARGS.to_number, RATE, consent.consent_id)
    assert (entry.detail["claim"], entry.detail["via"]) == (claim, "token")


async def test_an_unknown_outcome_and_its_reconciliation_are_audited_with_their_reasons(ledger: SqlLedger) -> None:
    decision = await unattended(ledger)
    assert decision.intent is not None
    await ledger.record_outcome(decision.intent.intent_id, UnknownOutcome(reason="read timeout"), now=T0)
    await ledger.reconcile_intent(decision.intent.intent_id, "call_9", now=T0 + timedelta(minutes=1))
    reconcile, outcome = await ledger.recent_audit(2)
    assert (outcome.kind, outcome.intent_id, outcome.detail) == (
        "outcome", decision.intent.intent_id, {"kind": "unknown", "reason": "read timeout"},
    )  # fmt: skip
    assert (reconcile.kind, reconcile.to_number, reconcile.detail) == (
        "reconcile", ARGS.to_number, {"found": True, "call_id": "call_9"},
    )  # fmt: skip


async def test_entries_appended_by_the_product_are_kept_as_given(ledger: SqlLedger) -> None:
    question = await ledger.append_audit(
        "refusal", at=T0, agent_id="agent_1", to_number="+14155550134", estimate=19.95,
        detail={"reason": "the client cannot show a form", "setting": "OUTBOUNDCALLS_CONFIRM"},
    )  # fmt: skip
    replay = await ledger.append_audit("replay", at=T0, detail={"consent": "cn_1", "via": "form"})
    assert await ledger.recent_audit() == [replay, question]
    assert question.detail == {"reason": "the client cannot show a form", "setting": "OUTBOUNDCALLS_CONFIRM"}
    assert question.id < replay.id


async def test_reading_the_audit_returns_the_most_recent_entries_up_to_the_limit(ledger: SqlLedger) -> None:
    for i in range(5):
        await ledger.append_audit("answer", at=T0 + timedelta(seconds=i), detail={"n": i})
    assert [entry.detail["n"] for entry in await ledger.recent_audit(limit=3)] == [4, 3, 2]
    with pytest.raises(ValueError):
        await ledger.recent_audit(limit=0)


@pytest.mark.parametrize(
    "detail",
    [{"confirmation_token": "abc"}, {"api_key": "oc_live_x"}, {"request": {"Authorization": "Bearer x"}}],
)
async def test_details_that_look_like_secrets_are_refused(ledger: SqlLedger, detail: dict[str, JsonValue]) -> None:
    with pytest.raises(ValueError, match="secret"):
        await ledger.append_audit("answer", at=T0, detail=detail)
    with pytest.raises(ValueError, match="secret"):
        await ledger.open_consent(
            single_consent_of(ARGS, mode="elicit", audit=detail), now=T0, expires_at=EXPIRES, token=None
        )
    assert await ledger.recent_audit() == []
    assert await ledger.consent_for_answer(ARGS.binding(), answer_key="round_1", now=T0) is None


async def test_the_audit_trail_cannot_be_edited_or_deleted(ledger: SqlLedger, place: LedgerPlace) -> None:
    await single_consent(ledger, token=new_token())
    if place.backend == "postgres":
        import psycopg

        assert place.database_url is not None
        for statement in ("UPDATE audit SET kind = 'dial'", "DELETE FROM audit", "TRUNCATE audit"):
            with psycopg.connect(place.database_url, options=f"-c search_path={place.schema}") as conn:
                with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                    conn.execute(statement)
    else:
        with closing(sqlite3.connect(place.state_dir / "ledger.sqlite3")) as conn:
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                conn.execute("UPDATE audit SET kind = 'dial'")
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                conn.execute("DELETE FROM audit")
    assert [entry.kind for entry in await ledger.recent_audit()] == ["preview"]


async def test_the_audit_survives_a_restart(place: LedgerPlace) -> None:
    before = await place.open()
    consent = await single_consent(before, token=None)
    await before.answer_consent(form_use(consent), "decline", now=T0)
    await before.aclose()
    after = await place.open()
    entries = [(e.kind, e.detail["consent"]) for e in await after.recent_audit()]
    await after.aclose()
    assert entries == [("answer", consent.consent_id), ("question", consent.consent_id)]
    settings = Settings.model_validate(place.settings())
    assert [(e.kind, e.detail["consent"]) for e in await read_audit_trail(settings, 50)] == entries


async def test_reading_the_audit_of_a_state_directory_without_a_ledger_makes_none(tmp_path: Path) -> None:
    assert await read_audit(tmp_path / "never_used") == []
    assert not (tmp_path / "never_used").exists()


async def test_a_charge_is_audited_once_and_only_for_a_call_this_ledger_dialed(ledger: SqlLedger) -> None:
    record = await dialed(ledger, ARGS, T0, "call_1")
    later = T0 + timedelta(minutes=3)
    assert await ledger.record_charge("call_1", 59.85, now=later) is True
    assert await ledger.record_charge("call_1", 59.85, now=later) is False
    assert await ledger.record_charge("someone_elses_call", 10.0, now=later) is False
    charges = [entry for entry in await ledger.recent_audit() if entry.kind == "charge"]
    assert [(c.intent_id, c.charge_credits, c.to_number, c.at, c.detail) for c in charges] == [
        (record.intent_id, 59.85, "+14155550134", later, {"call_id": "call_1"})
    ]
