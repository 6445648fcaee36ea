"""The dispatch ledger: tokens bound to arguments, claims, outcomes, reconciliation and usage."""

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

from server.ledger import (
    DialedOutcome,
    DispatchArgs,
    FailedOutcome,
    LedgerStateError,
    LedgerStore,
    RefusedOutcome,
    UnknownIntentError,
    UnknownOutcome,
    UnknownTokenError,
)
from server.ledger_sqlite import LEDGER_FILENAME, SqliteLedger

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 1, 15, 17, 0, tzinfo=UTC)
EXPIRES = T0 + timedelta(minutes=5)
ARGS = DispatchArgs(agent_id="agent_1", to_number="+14155550134")


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[SqliteLedger]:
    store = SqliteLedger(tmp_path)
    yield store
    await store.aclose()


async def dialed(ledger: SqliteLedger, args: DispatchArgs, at: datetime, call_id: str, rate: float = 19.95) -> str:
    intent = await ledger.create_intent(args, estimate_per_minute=rate, now=at, expires_at=at + timedelta(minutes=5), mode="token")
    assert (await ledger.claim(intent.token, args, now=at)).claimed
    await ledger.record_outcome(intent.token, DialedOutcome(call_id=call_id), now=at)
    return intent.token


async def test_a_new_intent_is_pending_with_its_estimates_and_an_opaque_token(ledger: SqliteLedger) -> None:
    intent = await ledger.create_intent(ARGS, estimate_per_minute=19.95, now=T0, expires_at=EXPIRES, mode="token")
    assert intent.state == "pending"
    assert intent.args == ARGS
    assert (intent.estimated_credits_per_minute, intent.estimated_credits_per_call) == (19.95, 99.75)
    assert (intent.created_at, intent.expires_at) == (T0, EXPIRES)
    assert len(intent.token) >= 32
    assert intent.token not in repr(intent)


async def test_each_intent_gets_its_own_token(ledger: SqliteLedger) -> None:
    first = await ledger.create_intent(ARGS, estimate_per_minute=None, now=T0, expires_at=EXPIRES, mode="token")
    second = await ledger.create_intent(ARGS, estimate_per_minute=None, now=T0, expires_at=EXPIRES, mode="token")
    assert first.token != second.token and first.intent_id != second.intent_id


async def test_the_token_itself_is_never_stored(ledger: SqliteLedger, tmp_path: Path) -> None:
    intent = await ledger.create_intent(ARGS, estimate_per_minute=1.0, now=T0, expires_at=EXPIRES, mode="token")
    await ledger.claim(intent.token, ARGS, now=T0)
    stored = b"".join(path.read_bytes() for path in tmp_path.iterdir() if path.name.startswith(LEDGER_FILENAME))
    assert intent.token.encode() not in stored


async def test_the_ledger_file_is_private_to_its_owner_and_in_wal_mode(ledger: SqliteLedger) -> None:
    assert ledger.path.stat().st_mode & 0o777 == 0o600
    with closing(sqlite3.connect(ledger.path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_a_token_confirms_its_own_arguments_exactly_once(ledger: SqliteLedger) -> None:
    intent = await ledger.create_intent(ARGS, estimate_per_minute=19.95, now=T0, expires_at=EXPIRES, mode="token")
    first = await ledger.claim(intent.token, ARGS, now=T0 + timedelta(minutes=1))
    assert first.claimed
    assert first.intent is not None and first.intent.state == "dialing"
    second = await ledger.claim(intent.token, ARGS, now=T0 + timedelta(minutes=1))
    assert second.status == "in_progress"


@pytest.mark.parametrize(
    "other",
    [
        DispatchArgs(agent_id="agent_2", to_number="+14155550134"),
        DispatchArgs(agent_id="agent_1", to_number="+14155550135"),
        DispatchArgs(agent_id="agent_1", to_number="+14155550134", phone_number_id="pn_1"),
        DispatchArgs(agent_id="agent_1", to_number="+14155550134", contact_id="c_1"),
    ],
)
async def test_a_token_presented_with_other_arguments_confirms_nothing_and_stays_valid(
    ledger: SqliteLedger, other: DispatchArgs
) -> None:
    intent = await ledger.create_intent(ARGS, estimate_per_minute=19.95, now=T0, expires_at=EXPIRES, mode="token")
    assert (await ledger.claim(intent.token, other, now=T0)).status == "mismatched"
    assert (await ledger.claim(intent.token, ARGS, now=T0)).claimed


async def test_an_expired_token_is_refused_and_the_intent_stays_unused(ledger: SqliteLedger) -> None:
    intent = await ledger.create_intent(ARGS, estimate_per_minute=19.95, now=T0, expires_at=EXPIRES, mode="token")
    result = await ledger.claim(intent.token, ARGS, now=EXPIRES)
    assert result.status == "expired"
    record = await ledger.get_intent(intent.token)
    assert record is not None and record.state == "pending"


async def test_a_token_just_before_expiry_still_confirms(ledger: SqliteLedger) -> None:
    intent = await ledger.create_intent(ARGS, estimate_per_minute=19.95, now=T0, expires_at=EXPIRES, mode="token")
    assert (await ledger.claim(intent.token, ARGS, now=EXPIRES - timedelta(microseconds=1))).claimed


async def test_an_unknown_or_tampered_token_confirms_nothing(ledger: SqliteLedger) -> None:
    intent = await ledger.create_intent(ARGS, estimate_per_minute=19.95, now=T0, expires_at=EXPIRES, mode="token")
    tampered = intent.token[:-1] + ("A" if intent.token[-1] != "A" else "B")
    assert (await ledger.claim(tampered, ARGS, now=T0)).status == "unknown_token"
    assert (await ledger.claim("never-issued", ARGS, now=T0)).intent is None
    assert await ledger.get_intent(tampered) is None


async def test_a_replayed_token_returns_the_recorded_call_without_a_new_claim(ledger: SqliteLedger) -> None:
    token = await dialed(ledger, ARGS, T0, "call_1")
    replay = await ledger.claim(token, ARGS, now=T0 + timedelta(minutes=1))
    assert replay.status == "already_done"
    assert replay.intent is not None and (replay.intent.state, replay.intent.call_id) == ("dialed", "call_1")


async def test_a_replay_after_expiry_still_returns_the_recorded_outcome(ledger: SqliteLedger) -> None:
    token = await dialed(ledger, ARGS, T0, "call_1")
    assert (await ledger.claim(token, ARGS, now=T0 + timedelta(days=2))).status == "already_done"


async def test_a_refusal_at_confirmation_leaves_the_token_unused(ledger: SqliteLedger) -> None:
    intent = await ledger.create_intent(ARGS, estimate_per_minute=19.95, now=T0, expires_at=EXPIRES, mode="token")
    record = await ledger.record_outcome(intent.token, RefusedOutcome(rules=["hours", "cooldown"]), now=T0)
    assert record.state == "pending"
    assert (await ledger.claim(intent.token, ARGS, now=T0)).claimed
    refusal = [entry for entry in await ledger.recent_audit() if entry.kind == "refusal"]
    assert refusal[0].detail == {"rules": ["hours", "cooldown"], "stage": "confirmation"}


async def test_a_refusal_seen_while_another_confirmation_dials_does_not_release_its_claim(ledger: SqliteLedger) -> None:
    intent = await ledger.create_intent(ARGS, estimate_per_minute=19.95, now=T0, expires_at=EXPIRES, mode="token")
    assert (await ledger.claim(intent.token, ARGS, now=T0)).claimed
    await ledger.record_outcome(intent.token, RefusedOutcome(rules=["cooldown"]), now=T0)
    assert (await ledger.claim(intent.token, ARGS, now=T0)).status == "in_progress"


async def test_a_failed_dial_is_recorded_with_its_status(ledger: SqliteLedger) -> None:
    intent = await ledger.create_intent(ARGS, estimate_per_minute=19.95, now=T0, expires_at=EXPIRES, mode="elicit")
    await ledger.claim(intent.token, ARGS, now=T0)
    record = await ledger.record_outcome(intent.token, FailedOutcome(status=402, message="Insufficient credits"), now=T0)
    assert (record.state, record.failure_status, record.failure_message) == ("failed", 402, "Insufficient credits")
    assert (await ledger.claim(intent.token, ARGS, now=T0)).status == "already_done"


async def test_an_outcome_is_recorded_only_once_and_only_after_a_claim(ledger: SqliteLedger) -> None:
    intent = await ledger.create_intent(ARGS, estimate_per_minute=19.95, now=T0, expires_at=EXPIRES, mode="token")
    with pytest.raises(LedgerStateError) as caught:
        await ledger.record_outcome(intent.token, DialedOutcome(call_id="call_1"), now=T0)
    assert caught.value.state == "pending"
    await ledger.claim(intent.token, ARGS, now=T0)
    await ledger.record_outcome(intent.token, DialedOutcome(call_id="call_1"), now=T0)
    with pytest.raises(LedgerStateError):
        await ledger.record_outcome(intent.token, DialedOutcome(call_id="call_2"), now=T0)


async def test_recording_for_a_token_never_issued_is_an_error(ledger: SqliteLedger) -> None:
    with pytest.raises(UnknownTokenError):
        await ledger.record_outcome("never-issued", DialedOutcome(call_id="call_1"), now=T0)


async def test_an_unknown_outcome_is_listed_for_reconciliation_and_reconciled_to_the_found_call(ledger: SqliteLedger) -> None:
    intent = await ledger.create_intent(ARGS, estimate_per_minute=19.95, now=T0, expires_at=EXPIRES, mode="token")
    await ledger.claim(intent.token, ARGS, now=T0)
    await ledger.record_outcome(intent.token, UnknownOutcome(reason="read timeout after sending"), now=T0)
    assert [r.intent_id for r in await ledger.unreconciled()] == [intent.intent_id]
    assert (await ledger.claim(intent.token, ARGS, now=T0)).status == "already_done"
    record = await ledger.reconcile(intent.token, "call_9", now=T0 + timedelta(minutes=1))
    assert (record.state, record.call_id, record.reconciled_at) == ("dialed", "call_9", T0 + timedelta(minutes=1))
    assert await ledger.unreconciled() == []


async def test_an_unknown_outcome_not_found_stays_unknown_and_held(ledger: SqliteLedger) -> None:
    intent = await ledger.create_intent(ARGS, estimate_per_minute=19.95, now=T0, expires_at=EXPIRES, mode="token")
    await ledger.claim(intent.token, ARGS, now=T0)
    await ledger.record_outcome(intent.token, UnknownOutcome(reason="connection dropped"), now=T0)
    record = await ledger.reconcile(intent.token, None, now=T0 + timedelta(minutes=1))
    assert record.state == "unknown" and record.unknown_reason == "connection dropped"
    usage = await ledger.usage(ARGS.to_number, now=T0 + timedelta(minutes=2))
    assert usage.unknown_outcome_at == T0
    reconcile_entry = (await ledger.recent_audit(1))[0]
    assert (reconcile_entry.kind, reconcile_entry.detail) == ("reconcile", {"found": False, "call_id": None})


async def test_only_an_unknown_outcome_can_be_reconciled(ledger: SqliteLedger) -> None:
    token = await dialed(ledger, ARGS, T0, "call_1")
    with pytest.raises(LedgerStateError):
        await ledger.reconcile(token, "call_2", now=T0)


async def test_a_claim_whose_process_vanished_becomes_unknown_for_reconciliation(ledger: SqliteLedger) -> None:
    stale = await ledger.create_intent(ARGS, estimate_per_minute=19.95, now=T0, expires_at=EXPIRES, mode="token")
    await ledger.claim(stale.token, ARGS, now=T0)
    fresh_args = DispatchArgs(agent_id="agent_1", to_number="+14155550199")
    later = T0 + timedelta(minutes=9)
    fresh = await ledger.create_intent(fresh_args, estimate_per_minute=19.95, now=later, expires_at=EXPIRES + timedelta(minutes=9), mode="token")
    assert (await ledger.claim(fresh.token, fresh_args, now=later)).claimed
    abandoned = await ledger.abandon_stale_claims(now=T0 + timedelta(minutes=10), older_than=timedelta(minutes=5))
    assert [r.intent_id for r in abandoned] == [stale.intent_id]
    assert abandoned[0].state == "unknown"
    record = await ledger.get_intent(fresh.token)
    assert record is not None and record.state == "dialing"


async def test_usage_counts_dials_that_reached_the_vendor_in_the_last_24_hours(ledger: SqliteLedger) -> None:
    now = T0 + timedelta(hours=30)
    await dialed(ledger, ARGS, T0, "call_old")  # 30 hours ago: outside the day
    for i in range(3):
        await dialed(ledger, DispatchArgs(agent_id="agent_1", to_number=f"+1415555010{i}"), now - timedelta(hours=i), f"call_{i}")
    unknown = await ledger.create_intent(ARGS, estimate_per_minute=24.5, now=now, expires_at=now + timedelta(minutes=5), mode="token")
    await ledger.claim(unknown.token, ARGS, now=now)
    await ledger.record_outcome(unknown.token, UnknownOutcome(reason="timeout"), now=now)
    failed = await ledger.create_intent(ARGS, estimate_per_minute=19.95, now=now, expires_at=now + timedelta(minutes=5), mode="token")
    await ledger.claim(failed.token, ARGS, now=now)
    await ledger.record_outcome(failed.token, FailedOutcome(status=400, message="bad"), now=now)
    await ledger.create_intent(ARGS, estimate_per_minute=19.95, now=now, expires_at=now + timedelta(minutes=5), mode="token")
    usage = await ledger.usage(None, now=now)
    assert usage.calls_last_24h == 4
    assert usage.credits_last_24h == round(3 * 99.75 + 122.5, 2)


async def test_a_claimed_dial_in_flight_counts_before_its_outcome_is_known(ledger: SqliteLedger) -> None:
    intent = await ledger.create_intent(ARGS, estimate_per_minute=19.95, now=T0, expires_at=EXPIRES, mode="token")
    await ledger.claim(intent.token, ARGS, now=T0)
    usage = await ledger.usage(ARGS.to_number, now=T0)
    assert (usage.calls_last_24h, usage.last_dial_at) == (1, T0)


async def test_the_last_dial_to_a_number_counts_across_agents(ledger: SqliteLedger) -> None:
    await dialed(ledger, ARGS, T0, "call_1")
    later = T0 + timedelta(minutes=20)
    await dialed(ledger, DispatchArgs(agent_id="agent_2", to_number=ARGS.to_number), later, "call_2")
    usage = await ledger.usage(ARGS.to_number, now=later + timedelta(minutes=1))
    assert usage.to_number == ARGS.to_number
    assert usage.last_dial_at == later
    assert usage.unknown_outcome_at is None
    assert (await ledger.usage("+442079460958", now=later)).last_dial_at is None


async def test_a_refused_or_failed_dial_does_not_start_a_cooldown(ledger: SqliteLedger) -> None:
    refused = await ledger.create_intent(ARGS, estimate_per_minute=19.95, now=T0, expires_at=EXPIRES, mode="token")
    await ledger.record_outcome(refused.token, RefusedOutcome(rules=["hours"]), now=T0)
    failed = await ledger.create_intent(ARGS, estimate_per_minute=19.95, now=T0, expires_at=EXPIRES, mode="token")
    await ledger.claim(failed.token, ARGS, now=T0)
    await ledger.record_outcome(failed.token, FailedOutcome(status=402, message="no credits"), now=T0)
    assert (await ledger.usage(ARGS.to_number, now=T0)).last_dial_at is None


async def test_an_intent_can_carry_a_batch_id(ledger: SqliteLedger) -> None:
    intent = await ledger.create_intent(
        ARGS, estimate_per_minute=None, now=T0, expires_at=EXPIRES, mode="token", batch_id="batch_1"
    )
    record = await ledger.get_intent(intent.token)
    assert record is not None and record.batch_id == "batch_1"


def test_dispatch_args_accept_only_e164_numbers() -> None:
    with pytest.raises(ValidationError):
        DispatchArgs(agent_id="agent_1", to_number="415-555-0134")


def test_arguments_hash_the_same_only_when_every_field_matches() -> None:
    assert ARGS.args_hash() == DispatchArgs(agent_id="agent_1", to_number="+14155550134").args_hash()
    assert ARGS.args_hash() != DispatchArgs(agent_id="agent_1", to_number="+14155550134", contact_id="").args_hash()


async def test_a_naive_time_is_refused(ledger: SqliteLedger) -> None:
    with pytest.raises(ValueError, match="naive"):
        await ledger.create_intent(ARGS, estimate_per_minute=None, now=datetime(2026, 1, 15), expires_at=EXPIRES, mode="token")


async def test_an_intent_must_expire_after_it_is_created_and_name_a_known_mode(ledger: SqliteLedger) -> None:
    with pytest.raises(ValueError, match="not after"):
        await ledger.create_intent(ARGS, estimate_per_minute=None, now=T0, expires_at=T0, mode="token")
    with pytest.raises(ValueError, match="mode"):
        await ledger.create_intent(ARGS, estimate_per_minute=None, now=T0, expires_at=EXPIRES, mode="auto")  # type: ignore[arg-type]


def test_the_sqlite_ledger_implements_every_method_of_the_storage_interface() -> None:
    for name, member in vars(LedgerStore).items():
        if callable(member) and not name.startswith("_"):
            assert inspect.signature(getattr(SqliteLedger, name)) == inspect.signature(member), name


async def test_an_unknown_outcome_is_reconciled_by_its_intent_id_without_the_token(ledger: SqliteLedger) -> None:
    intent = await ledger.create_intent(ARGS, estimate_per_minute=19.95, now=T0, expires_at=EXPIRES, mode="token")
    await ledger.claim(intent.token, ARGS, now=T0)
    await ledger.record_outcome(intent.token, UnknownOutcome(reason="read timeout after sending"), now=T0)
    (pending,) = await ledger.unreconciled()
    record = await ledger.reconcile_intent(pending.intent_id, "call_9", now=T0 + timedelta(minutes=1))
    assert (record.state, record.call_id) == ("dialed", "call_9")
    assert await ledger.unreconciled() == []


async def test_reconciling_by_an_unknown_intent_id_or_a_settled_one_is_an_error(ledger: SqliteLedger) -> None:
    token = await dialed(ledger, ARGS, T0, "call_1")
    record = await ledger.get_intent(token)
    assert record is not None
    with pytest.raises(UnknownIntentError):
        await ledger.reconcile_intent("no-such-intent", None, now=T0)
    with pytest.raises(LedgerStateError):
        await ledger.reconcile_intent(record.intent_id, "call_2", now=T0)


async def test_a_recorded_call_id_leads_back_to_its_intent(ledger: SqliteLedger) -> None:
    token = await dialed(ledger, ARGS, T0, "call_1")
    record = await ledger.intent_for_call("call_1")
    assert record is not None and record == await ledger.get_intent(token)
    assert await ledger.intent_for_call("call_2") is None


async def test_elicited_and_unattended_intents_are_not_audited_as_previews(ledger: SqliteLedger) -> None:
    for mode in ("elicit", "none"):
        await ledger.create_intent(ARGS, estimate_per_minute=19.95, now=T0, expires_at=EXPIRES, mode=mode)  # type: ignore[arg-type]
    assert await ledger.recent_audit() == []


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 11, 29, 12, 0, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        datetime(2026, 6, 1, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=5))),
    ],
)
def test_stored_times_round_trip_exactly_as_fixed_width_utc(moment: datetime) -> None:
    from server.ledger_sql import from_db, to_db

    stored = to_db(moment)
    assert len(stored) == len("2026-01-01T00:00:00.000000Z") and stored.endswith("Z")
    assert from_db(stored) == moment and from_db(stored).tzinfo is UTC


def test_reading_stored_times_never_loads_strptime() -> None:
    code = (
        "import sys; from server.ledger_sql import from_db; from_db('2026-01-02T03:04:05.678901Z'); "
        "assert '_strptime' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
