"""The dispatch ledger: consents used once, dials decided in one transaction, outcomes, reconciliation and usage."""

from __future__ import annotations

import inspect
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import closing
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

from outboundcalls_mcp.server.ledger import (
    BoundArgs,
    ConsentAnswer,
    ConsentRecord,
    DialedOutcome,
    DialRequest,
    FailedOutcome,
    LedgerStateError,
    LedgerStore,
    UnknownIntentError,
    UnknownOutcome,
    token_hash,
)
from outboundcalls_mcp.server.ledger_sql import SqlLedger
from outboundcalls_mcp.server.ledger_sqlite import LEDGER_FILENAME, SqliteLedger
from outboundcalls_mcp.server.preflight import PreflightResult, UsageFacts
from tests.places import LedgerPlace
from tests.server.ledger_kit import (
    ARGS,
    EXPIRES,
    OTHER_ARGS,
    RATE,
    T0,
    Clock,
    RecordingRules,
    allow,
    batch_consent,
    batch_use,
    dial,
    dialed,
    form_use,
    intent_of,
    new_token,
    preflight,
    refuse,
    single_consent,
    single_consent_of,
    token_use,
    unattended,
)

pytestmark = pytest.mark.anyio

AGENT_2 = BoundArgs(agent_id="agent_2", to_number=ARGS.to_number)


@pytest.fixture
async def ledger(place: LedgerPlace) -> AsyncIterator[SqlLedger]:
    async with place.opened() as store:
        yield store


@pytest.fixture
async def sqlite_ledger(tmp_path: Path) -> AsyncIterator[SqliteLedger]:
    store = SqliteLedger(tmp_path)
    yield store
    await store.aclose()


def stored_bytes(place: LedgerPlace) -> bytes:
    """Everything the database holds for the ledger: SQLite's file, WAL and index, or every PostgreSQL row as text."""
    if place.backend == "sqlite":
        state_dir = place.state_dir
        return b"".join(
            path.read_bytes() for path in sorted(state_dir.iterdir()) if path.name.startswith(LEDGER_FILENAME)
        )
    import psycopg

    assert place.database_url is not None
    with psycopg.connect(place.database_url, options=f"-c search_path={place.schema}") as conn:
        tables = ("meta", "policy_holders", "consents", "intents", "audit")
        return "".join(str(row) for table in tables for row in conn.execute(f"SELECT * FROM {table}")).encode()


async def state_of(ledger: SqlLedger, consent: ConsentRecord) -> str | None:
    """The consent's state as stored now."""
    record = await ledger.consent(consent.consent_id)
    return None if record is None else record.state


# Consents: opened, used once.


async def test_a_token_consent_is_stored_by_the_hash_of_its_token_never_the_token(
    ledger: SqlLedger, place: LedgerPlace
) -> None:
    token = new_token()
    consent = await single_consent(ledger, token=token)
    await ledger.decide(dial(consent=consent, use=token_use(consent)), allow, clock=Clock())
    stored = stored_bytes(place)
    assert token_hash(token).encode() in stored
    assert token.encode() not in stored
    assert token not in consent.model_dump_json()
    assert await ledger.consent_by_token(token) == await ledger.consent(consent.consent_id)


async def test_a_consent_opens_with_what_was_shown_and_until_when(ledger: SqlLedger) -> None:
    consent = await single_consent(ledger, token=None)
    assert (consent.kind, consent.mode, consent.state, consent.answer) == ("single", "elicit", "open", None)
    assert (consent.created_at, consent.expires_at) == (T0, EXPIRES)
    assert consent.binding == ARGS.binding()
    assert [(d.to_number, d.dial, d.estimate_per_minute) for d in consent.agreed] == [(ARGS.to_number, True, RATE)]
    assert await ledger.consent(consent.consent_id) == consent


async def test_a_token_unknown_or_tampered_finds_no_consent(ledger: SqlLedger) -> None:
    token = new_token()
    await single_consent(ledger, token=token)
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert await ledger.consent_by_token(tampered) is None
    assert await ledger.consent("cn_never_opened") is None


async def test_the_ledger_file_is_private_to_its_owner_and_in_wal_mode(sqlite_ledger: SqliteLedger) -> None:
    ledger = sqlite_ledger
    assert ledger.path.stat().st_mode & 0o777 == 0o600
    with closing(sqlite3.connect(ledger.path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_a_preview_needs_a_token_of_32_characters_or_more_and_a_question_none(ledger: SqlLedger) -> None:
    for mode, token in [("token", None), ("token", "t" * 31), ("elicit", new_token())]:
        with pytest.raises(ValueError):
            await ledger.open_consent(single_consent_of(ARGS, mode=mode), now=T0, expires_at=EXPIRES, token=token)
    assert await ledger.recent_audit() == []
    opened = await ledger.open_consent(
        single_consent_of(ARGS, mode="token"), now=T0, expires_at=EXPIRES, token="t" * 32
    )
    assert opened.mode == "token"


async def test_a_consent_must_expire_after_it_is_opened(ledger: SqlLedger) -> None:
    with pytest.raises(ValueError, match="not after"):
        await single_consent(ledger, token=new_token(), expires_at=T0)


async def test_a_yes_uses_a_consent_once_and_claims_one_dial(ledger: SqlLedger) -> None:
    consent = await single_consent(ledger, token=new_token())
    decision = await ledger.decide(
        dial(consent=consent, use=token_use(consent)), allow, clock=Clock(T0 + timedelta(minutes=1))
    )
    assert decision.claimed
    assert decision.intent is not None
    assert (decision.intent.state, decision.intent.consent_id, decision.intent.args) == (
        "dialing",
        consent.consent_id,
        ARGS,
    )
    assert (decision.intent.estimated_credits_per_minute, decision.intent.estimated_credits_per_call) == (RATE, 99.75)
    assert decision.consent is not None
    assert (decision.consent.state, decision.consent.answer) == ("used", "token")
    assert decision.consent.answered_at == T0 + timedelta(minutes=1)
    assert await ledger.intents_of(consent.consent_id) == [decision.intent]


async def test_a_second_use_of_a_consent_gets_consent_used_with_the_first_dial_and_is_audited_as_a_replay(
    ledger: SqlLedger,
) -> None:
    consent = await single_consent(ledger, token=new_token())
    first = await ledger.decide(dial(consent=consent, use=token_use(consent)), allow, clock=Clock())
    second = await ledger.decide(dial(consent=consent, use=token_use(consent)), allow, clock=Clock())
    assert first.claimed and second.status == "consent_used"
    assert await ledger.intents_of(consent.consent_id) == [first.intent]
    replay = (await ledger.recent_audit(1))[0]
    assert replay.kind == "replay" and replay.detail["consent"] == consent.consent_id
    # The first outcome comes back with the refusal to dial again: the dial it already decided.
    assert second.intent == first.intent


async def test_a_replay_after_the_consent_expired_still_reports_it_used(ledger: SqlLedger) -> None:
    consent = await single_consent(ledger, token=new_token())
    assert (await ledger.decide(dial(consent=consent, use=token_use(consent)), allow, clock=Clock())).claimed
    later = await ledger.decide(
        dial(consent=consent, use=token_use(consent)), allow, clock=Clock(T0 + timedelta(days=2))
    )
    assert later.status == "consent_used"


@pytest.mark.parametrize(
    "other",
    [
        BoundArgs(agent_id="agent_2", to_number="+14155550134"),
        BoundArgs(agent_id="agent_1", to_number="+14155550135"),
        BoundArgs(agent_id="agent_1", to_number="+14155550134", phone_number_id="pn_1"),
        BoundArgs(agent_id="agent_1", to_number="+14155550134", contact_id="c_1"),
    ],
)
async def test_a_yes_with_other_arguments_uses_nothing_and_the_consent_stays_open(
    ledger: SqlLedger, other: BoundArgs
) -> None:
    consent = await single_consent(ledger, token=new_token())
    mismatched = await ledger.decide(dial(consent=consent, use=token_use(consent, other)), allow, clock=Clock())
    assert mismatched.status == "consent_mismatched" and mismatched.intent is None
    assert await ledger.intents_of(consent.consent_id) == []
    assert (await ledger.decide(dial(consent=consent, use=token_use(consent)), allow, clock=Clock())).claimed


async def test_a_dial_under_a_consent_is_never_claimed_for_a_number_the_consent_did_not_show(ledger: SqlLedger) -> None:
    consent = await single_consent(ledger, token=new_token())
    # The yes carries the consent's own binding; the dial it would authorise is another number.
    decision = await ledger.decide(dial(OTHER_ARGS, consent=consent, use=token_use(consent)), allow, clock=Clock())
    assert not decision.claimed
    assert decision.status == "consent_mismatched"
    assert await ledger.intents_of(consent.consent_id) == []


async def test_a_form_yes_cannot_use_a_token_consent_nor_a_token_a_question(ledger: SqlLedger) -> None:
    preview = await single_consent(ledger, token=new_token())
    question = await single_consent(ledger, token=None)
    by_form = await ledger.decide(dial(consent=preview, use=form_use(preview)), allow, clock=Clock())
    by_token = await ledger.decide(dial(consent=question, use=token_use(question)), allow, clock=Clock())
    assert (by_form.status, by_token.status) == ("consent_mismatched", "consent_mismatched")
    assert await state_of(ledger, preview) == "open"
    assert await state_of(ledger, question) == "open"


async def test_a_consent_just_before_expiry_is_used_and_at_expiry_is_refused(ledger: SqlLedger) -> None:
    expired = await single_consent(ledger, token=new_token())
    just_in_time = await single_consent(ledger, token=new_token())
    late = await ledger.decide(dial(consent=expired, use=token_use(expired)), allow, clock=Clock(EXPIRES))
    on_time = await ledger.decide(
        dial(consent=just_in_time, use=token_use(just_in_time)), allow, clock=Clock(EXPIRES - timedelta(microseconds=1))
    )
    assert late.status == "consent_expired" and late.intent is None
    assert await state_of(ledger, expired) == "open"
    assert on_time.claimed


async def test_a_yes_to_a_consent_never_opened_is_unknown_and_dials_nothing(ledger: SqlLedger) -> None:
    use = ConsentAnswer(consent_id="cn_forged", binding=ARGS.binding(), via="token")
    request = DialRequest(target=ARGS, estimate_per_minute=RATE, mode="token", consent_id="cn_forged", use=use)
    decision = await ledger.decide(request, allow, clock=Clock())
    assert decision.status == "consent_unknown" and decision.intent is None
    assert (await ledger.usage(ARGS.to_number, now=T0)).calls_last_24h == 0


async def test_a_token_refused_by_the_rules_stays_open_and_confirms_once_they_allow(ledger: SqlLedger) -> None:
    consent = await single_consent(ledger, token=new_token())
    refused = await ledger.decide(
        dial(consent=consent, use=token_use(consent, keep_open=True)), refuse("hours"), clock=Clock()
    )
    assert refused.status == "refused" and refused.intent is None
    assert refused.preflight is not None and refused.preflight.rules == ["hours"]
    assert await state_of(ledger, consent) == "open"
    assert await ledger.intents_of(consent.consent_id) == []
    later = await ledger.decide(
        dial(consent=consent, use=token_use(consent)), allow, clock=Clock(T0 + timedelta(minutes=1))
    )
    assert later.claimed


async def test_a_form_yes_refused_by_the_rules_uses_the_consent_and_records_the_refusal(ledger: SqlLedger) -> None:
    consent = await single_consent(ledger, token=None)
    decision = await ledger.decide(
        dial(consent=consent, use=form_use(consent)), refuse("cooldown", "hours"), clock=Clock()
    )
    assert decision.status == "refused"
    assert decision.intent is not None
    assert (decision.intent.state, decision.intent.refused_rules) == ("refused", ("cooldown", "hours"))
    assert decision.consent is not None and (decision.consent.state, decision.consent.answer) == ("used", "accept")
    again = await ledger.decide(dial(consent=consent, use=form_use(consent)), allow, clock=Clock())
    assert again.status == "consent_used"
    assert await ledger.intents_of(consent.consent_id) == [decision.intent]


async def test_an_unattended_dial_refused_by_the_rules_records_no_intent(ledger: SqlLedger) -> None:
    decision = await unattended(ledger, rules=refuse("daily_calls"))
    assert decision.status == "refused" and decision.intent is None
    assert (await ledger.usage(ARGS.to_number, now=T0)).calls_last_24h == 0


async def test_a_no_uses_the_consent_and_no_later_yes_dials(ledger: SqlLedger) -> None:
    consent = await single_consent(ledger, token=None)
    answered = await ledger.answer_consent(form_use(consent), "decline", now=T0)
    assert answered.consent is not None and (answered.consent.state, answered.consent.answer) == ("used", "decline")
    late_yes = await ledger.decide(dial(consent=consent, use=form_use(consent)), allow, clock=Clock())
    assert late_yes.status == "consent_used" and late_yes.intent is None
    assert (await ledger.answer_consent(form_use(consent), "accept", now=T0)).status == "consent_used"
    assert await ledger.intents_of(consent.consent_id) == []


# One decision, one transaction, one `now`.


async def test_the_rules_see_the_usage_and_the_same_now_that_the_decision_records(ledger: SqlLedger) -> None:
    await dialed(ledger, ARGS, T0 - timedelta(minutes=30), "call_1")
    consent = await single_consent(ledger, token=new_token())
    clock = Clock(T0 + timedelta(minutes=1), step=timedelta(seconds=1))  # any second reading would differ
    rules = RecordingRules()
    decision = await ledger.decide(dial(consent=consent, use=token_use(consent)), rules, clock=clock)
    [(usage, now)] = rules.seen
    assert decision.intent is not None
    assert now == decision.intent.decided_at == clock.readings[0] == T0 + timedelta(minutes=1)
    assert (await ledger.recent_audit(1))[0].at == now
    assert usage == UsageFacts(
        to_number=ARGS.to_number, calls_last_24h=1, credits_last_24h=99.75,
        last_dial_at=T0 - timedelta(minutes=30), in_flight=False, unknown_outcome_at=None,
    )  # fmt: skip


async def test_the_decision_reads_its_clock_and_runs_its_rules_while_holding_the_write_lock(
    ledger: SqlLedger, place: LedgerPlace
) -> None:
    held: list[bool] = []

    def write_lock_held() -> bool:
        if place.backend == "postgres":
            import psycopg

            from outboundcalls_mcp.server.ledger_schema_postgres import advisory_key

            assert place.database_url is not None and place.schema is not None
            with psycopg.connect(place.database_url) as conn:
                row = conn.execute(
                    "SELECT pg_try_advisory_xact_lock(%s)", (advisory_key("ledger", place.schema),)
                ).fetchone()
                assert row is not None
                return not row[0]
        assert isinstance(ledger, SqliteLedger)
        probe = sqlite3.connect(ledger.path, timeout=0, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            return True
        else:
            probe.execute("ROLLBACK")
            return False
        finally:
            probe.close()

    def clock() -> datetime:
        held.append(write_lock_held())
        return T0

    def rules(usage: UsageFacts, now: datetime) -> PreflightResult:
        held.append(write_lock_held())
        return preflight()

    assert (await ledger.decide(dial(), rules, clock=clock)).claimed
    assert held == [True, True]
    assert write_lock_held() is False


async def test_usage_counts_dials_that_may_have_reached_the_vendor_in_the_last_24_hours(ledger: SqlLedger) -> None:
    now = T0 + timedelta(hours=30)
    numbers = iter(f"+141555501{n:02d}" for n in range(10, 99))

    def somewhere() -> BoundArgs:
        return BoundArgs(agent_id="agent_1", to_number=next(numbers))

    await dialed(ledger, somewhere(), T0, "call_old")  # 30 hours ago: outside the day
    for i in range(3):
        await dialed(ledger, somewhere(), now - timedelta(hours=i), f"call_{i}")
    assert (await unattended(ledger, somewhere(), now)).claimed  # still dialing
    unknown = await unattended(ledger, somewhere(), now)
    await ledger.record_outcome(intent_of(unknown).intent_id, UnknownOutcome(reason="timeout"), now=now)
    failed = await unattended(ledger, somewhere(), now)
    await ledger.record_outcome(intent_of(failed).intent_id, FailedOutcome(status=400, message="bad"), now=now)
    refused_at = somewhere()
    question = await single_consent(ledger, refused_at, token=None, now=now)
    request = dial(refused_at, consent=question, use=form_use(question, refused_at))
    refused = await ledger.decide(request, refuse("hours"), clock=Clock(now))
    assert refused.intent is not None and refused.intent.state == "refused"
    await single_consent(ledger, somewhere(), token=new_token(), now=now)  # shown, never confirmed
    usage = await ledger.usage(None, now=now)
    assert usage.calls_last_24h == 5  # three dialed, one dialing, one unknown
    assert usage.credits_last_24h == round(5 * 99.75, 2)


async def test_a_dial_leaves_the_daily_count_24_hours_after_it_was_decided(ledger: SqlLedger) -> None:
    await dialed(ledger, ARGS, T0, "call_1")
    day = timedelta(hours=24)
    assert (await ledger.usage(None, now=T0 + day - timedelta(microseconds=1))).calls_last_24h == 1
    assert (await ledger.usage(None, now=T0 + day)).calls_last_24h == 0
    # The cooldown and the hold are the rules' business: the last dial is known for longer than a day.
    assert (await ledger.usage(ARGS.to_number, now=T0 + 2 * day)).last_dial_at == T0


async def test_a_claimed_dial_is_in_flight_and_counts_before_its_outcome_is_known(ledger: SqlLedger) -> None:
    decision = await unattended(ledger)
    usage = await ledger.usage(ARGS.to_number, now=T0)
    assert (usage.calls_last_24h, usage.last_dial_at, usage.in_flight) == (1, T0, True)
    assert (await ledger.usage(OTHER_ARGS.to_number, now=T0)).in_flight is False
    await ledger.record_outcome(intent_of(decision).intent_id, DialedOutcome(call_id="call_1"), now=T0)
    assert (await ledger.usage(ARGS.to_number, now=T0)).in_flight is False


async def test_the_last_dial_to_a_number_counts_across_agents(ledger: SqlLedger) -> None:
    await dialed(ledger, ARGS, T0, "call_1")
    later = T0 + timedelta(minutes=20)
    await dialed(ledger, AGENT_2, later, "call_2")
    usage = await ledger.usage(ARGS.to_number, now=later + timedelta(minutes=1))
    assert usage.to_number == ARGS.to_number
    assert usage.last_dial_at == later
    assert usage.unknown_outcome_at is None
    assert (await ledger.usage("+442079460958", now=later)).last_dial_at is None


async def test_a_refused_or_failed_dial_starts_no_cooldown(ledger: SqlLedger) -> None:
    consent = await single_consent(ledger, token=None)
    await ledger.decide(dial(consent=consent, use=form_use(consent)), refuse("hours"), clock=Clock())
    failed = await unattended(ledger)
    await ledger.record_outcome(intent_of(failed).intent_id, FailedOutcome(status=402, message="no credits"), now=T0)
    usage = await ledger.usage(ARGS.to_number, now=T0)
    assert (usage.last_dial_at, usage.in_flight, usage.calls_last_24h) == (None, False, 0)


# Outcomes, reconciliation, stale claims.


async def test_an_outcome_is_recorded_once_and_only_for_a_dial_being_dialed(ledger: SqlLedger) -> None:
    consent = await single_consent(ledger, token=None)
    refused = await ledger.decide(dial(consent=consent, use=form_use(consent)), refuse("hours"), clock=Clock())
    assert refused.intent is not None
    with pytest.raises(LedgerStateError) as caught:
        await ledger.record_outcome(refused.intent.intent_id, DialedOutcome(call_id="call_0"), now=T0)
    assert caught.value.state == "refused"
    claimed = await unattended(ledger)
    assert claimed.intent is not None
    record = await ledger.record_outcome(
        claimed.intent.intent_id, DialedOutcome(call_id="call_1"), now=T0 + timedelta(seconds=2)
    )
    assert (record.state, record.call_id, record.finished_at) == ("dialed", "call_1", T0 + timedelta(seconds=2))
    with pytest.raises(LedgerStateError) as again:
        await ledger.record_outcome(claimed.intent.intent_id, DialedOutcome(call_id="call_2"), now=T0)
    assert again.value.state == "dialed"
    assert (await ledger.intent_for_call("call_2")) is None


async def test_a_failed_dial_is_recorded_with_its_status(ledger: SqlLedger) -> None:
    claimed = await unattended(ledger)
    assert claimed.intent is not None
    failure = FailedOutcome(status=402, message="Insufficient credits")
    record = await ledger.record_outcome(claimed.intent.intent_id, failure, now=T0)
    assert (record.state, record.failure_status, record.failure_message) == ("failed", 402, "Insufficient credits")


async def test_recording_for_an_intent_never_decided_is_an_error(ledger: SqlLedger) -> None:
    with pytest.raises(UnknownIntentError):
        await ledger.record_outcome("in_never_decided", DialedOutcome(call_id="call_1"), now=T0)


async def test_an_unknown_outcome_is_listed_for_reconciliation_and_reconciled_to_the_found_call(
    ledger: SqlLedger,
) -> None:
    claimed = await unattended(ledger)
    assert claimed.intent is not None
    await ledger.record_outcome(claimed.intent.intent_id, UnknownOutcome(reason="read timeout after sending"), now=T0)
    assert [r.intent_id for r in await ledger.unreconciled()] == [claimed.intent.intent_id]
    record = await ledger.reconcile_intent(claimed.intent.intent_id, "call_9", now=T0 + timedelta(minutes=1))
    assert (record.state, record.call_id, record.reconciled_at) == ("dialed", "call_9", T0 + timedelta(minutes=1))
    assert await ledger.unreconciled() == []
    assert (await ledger.usage(ARGS.to_number, now=T0 + timedelta(minutes=2))).unknown_outcome_at is None


async def test_an_unknown_outcome_not_found_stays_unknown_and_holds_the_number(ledger: SqlLedger) -> None:
    claimed = await unattended(ledger)
    assert claimed.intent is not None
    await ledger.record_outcome(claimed.intent.intent_id, UnknownOutcome(reason="connection dropped"), now=T0)
    record = await ledger.reconcile_intent(claimed.intent.intent_id, None, now=T0 + timedelta(minutes=1))
    assert (record.state, record.unknown_reason, record.reconciled_at) == ("unknown", "connection dropped", None)
    usage = await ledger.usage(ARGS.to_number, now=T0 + timedelta(minutes=2))
    assert (usage.unknown_outcome_at, usage.in_flight) == (T0, False)
    entry = (await ledger.recent_audit(1))[0]
    assert (entry.kind, entry.detail) == ("reconcile", {"found": False, "call_id": None})


async def test_only_an_unknown_outcome_can_be_reconciled_and_only_a_decided_one(ledger: SqlLedger) -> None:
    record = await dialed(ledger, ARGS, T0, "call_1")
    with pytest.raises(LedgerStateError):
        await ledger.reconcile_intent(record.intent_id, "call_2", now=T0)
    with pytest.raises(UnknownIntentError):
        await ledger.reconcile_intent("in_never_decided", None, now=T0)
    assert (await ledger.intent_for_call("call_1")) == record


async def test_a_recorded_call_id_leads_back_to_its_intent(ledger: SqlLedger) -> None:
    record = await dialed(ledger, ARGS, T0, "call_1")
    unknown = await unattended(ledger, OTHER_ARGS)
    assert unknown.intent is not None
    await ledger.record_outcome(unknown.intent.intent_id, UnknownOutcome(reason="timeout"), now=T0)
    reconciled = await ledger.reconcile_intent(unknown.intent.intent_id, "call_2", now=T0)
    assert await ledger.intent_for_call("call_1") == record
    assert await ledger.intent_for_call("call_2") == reconciled
    assert await ledger.intent_for_call("call_3") is None


async def test_a_claim_whose_process_vanished_becomes_unknown_for_reconciliation(ledger: SqlLedger) -> None:
    stale = await unattended(ledger, ARGS, T0)
    fresh = await unattended(ledger, OTHER_ARGS, T0 + timedelta(minutes=9))
    settled = await dialed(ledger, BoundArgs(agent_id="agent_1", to_number="+14155550136"), T0, "call_1")
    abandoned = await ledger.abandon_stale_claims(now=T0 + timedelta(minutes=10), older_than=timedelta(minutes=5))
    assert stale.intent is not None and fresh.intent is not None
    assert [(r.intent_id, r.state) for r in abandoned] == [(stale.intent.intent_id, "unknown")]
    assert abandoned[0].unknown_reason is not None and abandoned[0].finished_at == T0 + timedelta(minutes=10)
    assert [r.intent_id for r in await ledger.unreconciled()] == [stale.intent.intent_id]
    assert (await ledger.intent_for_call("call_1")) == settled
    still = await ledger.abandon_stale_claims(now=T0 + timedelta(minutes=10), older_than=timedelta(minutes=5))
    assert still == []
    assert (await ledger.usage(OTHER_ARGS.to_number, now=T0 + timedelta(minutes=10))).in_flight


# Batches: one answer, then one decision per agreed position.


async def test_a_batch_yes_then_dials_each_agreed_position_once(ledger: SqlLedger) -> None:
    consent = await batch_consent(ledger, [(ARGS.to_number, True), (OTHER_ARGS.to_number, True)])
    answered = await ledger.answer_consent(batch_use(consent, answer_key="round_1"), "accept", now=T0)
    assert answered.status == "claimed" and answered.consent is not None and answered.consent.answer == "accept"
    first = await ledger.decide(dial(ARGS, consent=consent, position=0), allow, clock=Clock())
    second = await ledger.decide(dial(OTHER_ARGS, consent=consent, position=1), allow, clock=Clock())
    again = await ledger.decide(dial(ARGS, consent=consent, position=0), allow, clock=Clock())
    assert first.claimed and second.claimed
    assert again.status == "consent_used" and again.intent == first.intent
    assert [(i.position, i.args.to_number, i.state) for i in await ledger.intents_of(consent.consent_id)] == [
        (0, ARGS.to_number, "dialing"), (1, OTHER_ARGS.to_number, "dialing"),
    ]  # fmt: skip


async def test_a_batch_position_refused_by_the_rules_is_recorded_and_not_decided_again(ledger: SqlLedger) -> None:
    consent = await batch_consent(ledger, [(ARGS.to_number, True)])
    await ledger.answer_consent(batch_use(consent), "accept", now=T0)
    refused = await ledger.decide(dial(ARGS, consent=consent), refuse("cooldown"), clock=Clock())
    again = await ledger.decide(dial(ARGS, consent=consent), allow, clock=Clock())
    assert refused.status == "refused" and refused.intent is not None and refused.intent.state == "refused"
    assert again.status == "consent_used" and again.intent == refused.intent


async def test_a_batch_position_shown_as_not_called_is_never_claimed(ledger: SqlLedger) -> None:
    consent = await batch_consent(ledger, [(ARGS.to_number, True), (OTHER_ARGS.to_number, False)])
    await ledger.answer_consent(batch_use(consent), "accept", now=T0)
    shown_refused = await ledger.decide(dial(OTHER_ARGS, consent=consent, position=1), allow, clock=Clock())
    never_shown = await ledger.decide(dial(OTHER_ARGS, consent=consent, position=2), allow, clock=Clock())
    assert (shown_refused.status, never_shown.status) == ("consent_mismatched", "consent_mismatched")
    assert await ledger.intents_of(consent.consent_id) == []


async def test_no_batch_position_is_dialed_before_a_yes_or_after_a_no(ledger: SqlLedger) -> None:
    unanswered = await batch_consent(ledger, [(ARGS.to_number, True)])
    declined = await batch_consent(ledger, [(ARGS.to_number, True)])
    await ledger.answer_consent(batch_use(declined), "decline", now=T0)
    for consent in (unanswered, declined):
        with pytest.raises(LedgerStateError):
            await ledger.decide(dial(ARGS, consent=consent), allow, clock=Clock())
        assert await ledger.intents_of(consent.consent_id) == []


async def test_a_batch_answered_twice_keeps_its_first_answer(ledger: SqlLedger) -> None:
    consent = await batch_consent(ledger, [(ARGS.to_number, True)], token=new_token())
    use = batch_use(consent, via="token")
    first = await ledger.answer_consent(use, "token", now=T0)
    second = await ledger.answer_consent(use, "token", now=T0)
    assert (first.status, second.status) == ("claimed", "consent_used")
    assert second.consent is not None and second.consent.answered_at == T0


# The answering round of a question finds its consent.


async def test_an_answering_round_finds_the_consent_it_already_used_first(ledger: SqlLedger) -> None:
    answered = await single_consent(ledger, token=None)
    await ledger.decide(dial(consent=answered, use=form_use(answered, answer_key="round_1")), allow, clock=Clock())
    newer = await single_consent(ledger, token=None, now=T0 + timedelta(minutes=1))
    later = T0 + timedelta(minutes=2)
    assert await ledger.consent_for_answer(ARGS.binding(), answer_key="round_1", now=later) == await ledger.consent(
        answered.consent_id
    )
    assert await ledger.consent_for_answer(ARGS.binding(), answer_key="round_2", now=later) == newer
    # Long after, a replay of the answered round still finds what it answered.
    found = await ledger.consent_for_answer(ARGS.binding(), answer_key="round_1", now=T0 + timedelta(days=1))
    assert found is not None and found.consent_id == answered.consent_id


async def test_a_question_asked_again_while_it_is_open_is_the_same_question_asked_once(ledger: SqlLedger) -> None:
    first = await single_consent(ledger, token=None)
    again = await single_consent(ledger, token=None, now=T0 + timedelta(minutes=1))
    elsewhere = await single_consent(ledger, OTHER_ARGS, token=None, now=T0 + timedelta(minutes=1))
    assert again == first and elsewhere.consent_id != first.consent_id
    assert [e.detail["consent"] for e in await ledger.recent_audit() if e.kind == "question"] == [
        elsewhere.consent_id, first.consent_id,
    ]  # fmt: skip
    found = await ledger.consent_for_answer(ARGS.binding(), answer_key="round_1", now=T0 + timedelta(minutes=2))
    assert found == first
    after_expiry = await single_consent(ledger, token=None, now=EXPIRES)
    assert after_expiry.consent_id != first.consent_id
    found = await ledger.consent_for_answer(ARGS.binding(), answer_key="round_1", now=EXPIRES)
    assert found == after_expiry


async def test_each_preview_is_its_own_consent_with_its_own_token(ledger: SqlLedger) -> None:
    first_token, second_token = new_token(), new_token()
    first = await single_consent(ledger, token=first_token)
    second = await single_consent(ledger, token=second_token)
    assert first.consent_id != second.consent_id
    assert (await ledger.consent_by_token(second_token)) == second
    assert [e.kind for e in await ledger.recent_audit()] == ["preview", "preview"]


async def test_an_answering_round_never_finds_a_preview_a_used_or_an_expired_question(ledger: SqlLedger) -> None:
    await single_consent(ledger, token=new_token())
    used = await single_consent(ledger, token=None)
    await ledger.answer_consent(form_use(used, answer_key="round_1"), "decline", now=T0)
    assert await ledger.consent_for_answer(ARGS.binding(), answer_key="round_2", now=T0) is None
    expiring = await single_consent(ledger, token=None)
    before = await ledger.consent_for_answer(
        ARGS.binding(), answer_key="round_2", now=EXPIRES - timedelta(microseconds=1)
    )
    assert before is not None and before.consent_id == expiring.consent_id
    assert await ledger.consent_for_answer(ARGS.binding(), answer_key="round_2", now=EXPIRES) is None


# Times, arguments, the storage seam.


@pytest.mark.parametrize("call", ["open_consent", "decide", "usage", "record_outcome", "abandon_stale_claims"])
async def test_a_naive_time_is_refused_and_changes_nothing(ledger: SqlLedger, call: str) -> None:
    naive = datetime(2026, 1, 15, 17, 0)
    claimed = await unattended(ledger)
    assert claimed.intent is not None
    with pytest.raises(ValueError, match="naive"):
        if call == "open_consent":
            await single_consent(ledger, token=None, now=naive, expires_at=EXPIRES)
        elif call == "decide":
            await ledger.decide(dial(OTHER_ARGS), allow, clock=lambda: naive)
        elif call == "usage":
            await ledger.usage(ARGS.to_number, now=naive)
        elif call == "record_outcome":
            await ledger.record_outcome(claimed.intent.intent_id, DialedOutcome(call_id="call_1"), now=naive)
        else:
            await ledger.abandon_stale_claims(now=naive, older_than=timedelta(minutes=5))
    usage = await ledger.usage(ARGS.to_number, now=T0)
    assert (usage.calls_last_24h, usage.in_flight) == (1, True)
    assert [entry.kind for entry in await ledger.recent_audit()] == ["dial"]


def test_bound_arguments_accept_only_e164_numbers() -> None:
    with pytest.raises(ValidationError):
        BoundArgs(agent_id="agent_1", to_number="415-555-0134")


def test_bindings_are_equal_only_when_every_argument_matches() -> None:
    assert ARGS.binding() == BoundArgs(agent_id="agent_1", to_number="+14155550134").binding()
    assert ARGS.binding() != BoundArgs(agent_id="agent_1", to_number="+14155550134", contact_id="").binding()


def test_a_yes_can_only_use_the_consent_its_dial_is_decided_under() -> None:
    use = ConsentAnswer(consent_id="cn_1", binding=ARGS.binding(), via="form")
    with pytest.raises(ValidationError):
        DialRequest(target=ARGS, estimate_per_minute=RATE, mode="elicit", consent_id="cn_2", use=use)
    with pytest.raises(ValidationError):
        DialRequest(target=ARGS, estimate_per_minute=RATE, mode="elicit", use=use)
    assert DialRequest(target=ARGS, estimate_per_minute=RATE, mode="elicit", consent_id="cn_1", use=use).use == use


def test_the_sql_ledger_implements_every_method_of_the_storage_interface_once_for_both_backends() -> None:
    from outboundcalls_mcp.server.ledger_postgres import PostgresLedger
    from outboundcalls_mcp.server.ledger_sql import SqlLedger

    protocol = {name for name, member in vars(LedgerStore).items() if callable(member) and not name.startswith("_")}
    implemented = {name for name, member in vars(SqlLedger).items() if callable(member) and not name.startswith("_")}
    assert protocol - implemented == set()
    for name in sorted(protocol):
        assert inspect.signature(getattr(SqlLedger, name)) == inspect.signature(getattr(LedgerStore, name)), name
    # The rules live in one place: neither backend's ledger overrides an operation.
    for backend in (SqliteLedger, PostgresLedger):
        assert not protocol & set(vars(backend)), backend
    assert {"decide", "open_consent", "answer_consent", "consent_for_answer", "wait_for_consent"} <= protocol


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 11, 29, 12, 0, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        datetime(2026, 6, 1, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=5))),
    ],
)
def test_stored_times_round_trip_exactly_as_fixed_width_utc(moment: datetime) -> None:
    from outboundcalls_mcp.server.ledger_sqlite import from_db, to_db

    stored = to_db(moment)
    assert len(stored) == len("2026-01-01T00:00:00.000000Z") and stored.endswith("Z")
    assert from_db(stored) == moment and from_db(stored).tzinfo is UTC


def test_reading_stored_times_never_loads_strptime() -> None:
    code = (
        "import sys; from outboundcalls_mcp.server.ledger_sqlite import from_db; "
        "from_db('2026-01-02T03:04:05.678901Z'); "
        "assert '_strptime' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
