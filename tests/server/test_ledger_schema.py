"""The ledger's schema: a version-1 file is migrated on open, once, keeping every dial; a newer file is refused."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Final

import pytest

from outboundcalls.version import __version__
from outboundcalls_mcp.server.ledger import BoundArgs, LedgerError, token_hash
from outboundcalls_mcp.server.ledger_schema import MIGRATIONS, SCHEMA_VERSION, open_connection
from outboundcalls_mcp.server.ledger_sqlite import LEDGER_FILENAME, SqliteLedger, to_db
from outboundcalls_mcp.server.policy import DispatchPolicy
from tests.server.ledger_kit import ARGS, RATE, T0, Clock, dial, new_token, policy_rules, single_consent

pytestmark = pytest.mark.anyio

# Release 0.1.0 (schema 1) also made these indexes; a real version-1 file has them.
V1_INDEXES: Final = (
    "CREATE INDEX IF NOT EXISTS intents_by_claim ON intents (claimed_at)",
    "CREATE INDEX IF NOT EXISTS intents_by_number ON intents (to_number, claimed_at)",
    "CREATE INDEX IF NOT EXISTS intents_by_batch ON intents (batch_id) WHERE batch_id IS NOT NULL",
)
PENDING_TOKEN: Final = "v1-token-shown-and-never-confirmed-0123456789"
IN_FLIGHT: Final = "+14155550101"
HELD: Final = "+14155550102"
FAILED: Final = "+14155550103"
# (intent_id, number, state, claimed at, call_id, unknown_reason, failure_status) as release 0.1.0 kept them.
V1_DIALS: Final = (
    ("in_dialing", IN_FLIGHT, "dialing", T0 - timedelta(seconds=30), None, None, None),
    ("in_dialed", ARGS.to_number, "dialed", T0 - timedelta(minutes=20), "call_v1", None, None),
    ("in_unknown", HELD, "unknown", T0 - timedelta(minutes=40), None, "read timeout", None),
    ("in_failed", FAILED, "failed", T0 - timedelta(hours=1), None, None, 402),
)


def write_v1_file(state_dir: Path) -> Path:
    """A ledger as release 0.1.0 left it: WAL, schema 1, one preview never confirmed, four dials and their audit."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / LEDGER_FILENAME
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("BEGIN")
    for statement in (*MIGRATIONS[0], *V1_INDEXES):
        conn.execute(statement)
    conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '1')")
    insert = (
        "INSERT INTO intents (token_hash, intent_id, agent_id, to_number, args_hash, mode, estimate_per_minute, "
        "estimate_per_call, created_at, expires_at, state, claimed_at, call_id, unknown_reason, failure_status, "
        "finished_at) VALUES (?, ?, 'agent_1', ?, 'h', 'token', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    shown = T0 - timedelta(minutes=1)
    conn.execute(insert, (token_hash(PENDING_TOKEN), "in_pending", "+14155550104", RATE, 99.75, to_db(shown),
                          to_db(shown + timedelta(minutes=5)), "pending", None, None, None, None, None))  # fmt: skip
    for intent_id, number, state, claimed, call_id, reason, status in V1_DIALS:
        finished = None if state == "dialing" else to_db(claimed)
        shown = claimed - timedelta(minutes=2)  # previewed, then confirmed two minutes later
        conn.execute(insert, (token_hash(intent_id), intent_id, number, RATE, 99.75, to_db(shown),
                              to_db(shown + timedelta(minutes=5)), state, to_db(claimed), call_id, reason, status,
                              finished))  # fmt: skip
        conn.execute(
            "INSERT INTO audit (at, kind, intent_id, agent_id, to_number, estimate, detail) "
            "VALUES (?, 'dial', ?, 'agent_1', ?, ?, ?)",
            (to_db(claimed), intent_id, number, RATE, '{"mode": "token"}'),
        )
    conn.execute("COMMIT")
    conn.close()
    return path


def read_table(path: Path, query: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(path)) as conn, conn:
        return [tuple(row) for row in conn.execute(query).fetchall()]


def meta_of(path: Path) -> dict[str, str]:
    return {str(key): str(value) for key, value in read_table(path, "SELECT key, value FROM meta")}


async def test_a_fresh_ledger_is_written_at_this_schema_by_this_release(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path)
    await ledger.aclose()
    assert meta_of(ledger.path) == {"schema_version": str(SCHEMA_VERSION), "written_by": __version__}


async def test_a_version_1_ledger_keeps_every_dial_with_its_state_and_time_and_drops_unconfirmed_previews(
    tmp_path: Path,
) -> None:
    path = write_v1_file(tmp_path)
    ledger = SqliteLedger(tmp_path)
    try:
        assert meta_of(path) == {"schema_version": str(SCHEMA_VERSION), "written_by": __version__}
        kept = read_table(
            path, "SELECT intent_id, to_number, state, decided_at, consent_id FROM intents ORDER BY decided_at"
        )
        assert kept == sorted(
            ((intent_id, number, state, to_db(claimed), None) for intent_id, number, state, claimed, *_ in V1_DIALS),
            key=lambda row: row[3],
        )
        assert await ledger.consent_by_token(PENDING_TOKEN) is None
        record = await ledger.intent_for_call("call_v1")
        assert record is not None
        assert (record.intent_id, record.args, record.state, record.decided_at) == (
            "in_dialed", ARGS, "dialed", T0 - timedelta(minutes=20),
        )  # fmt: skip
        assert (record.estimated_credits_per_minute, record.estimated_credits_per_call) == (RATE, 99.75)
        [held] = await ledger.unreconciled()
        assert (held.intent_id, held.unknown_reason, held.decided_at) == (
            "in_unknown", "read timeout", T0 - timedelta(minutes=40),
        )  # fmt: skip
        abandoned = await ledger.abandon_stale_claims(now=T0 + timedelta(minutes=10), older_than=timedelta(minutes=5))
        assert [r.intent_id for r in abandoned] == ["in_dialing"]
    finally:
        await ledger.aclose()


async def test_a_version_1_ledger_keeps_its_audit_trail_append_only(tmp_path: Path) -> None:
    path = write_v1_file(tmp_path)
    before = read_table(path, "SELECT * FROM audit ORDER BY id")
    ledger = SqliteLedger(tmp_path)
    consent = await single_consent(ledger, token=new_token(), now=T0)
    entries = await ledger.recent_audit()
    await ledger.aclose()
    assert read_table(path, "SELECT * FROM audit ORDER BY id")[: len(before)] == before
    assert [(e.kind, e.intent_id) for e in reversed(entries)] == [
        *(("dial", intent_id) for intent_id, *_ in V1_DIALS), ("preview", None),
    ]  # fmt: skip
    assert entries[0].detail["consent"] == consent.consent_id
    with closing(sqlite3.connect(path)) as conn, conn, pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM audit")


async def test_the_caps_cooldowns_and_holds_count_the_dials_kept_from_version_1(tmp_path: Path) -> None:
    write_v1_file(tmp_path)
    ledger = SqliteLedger(tmp_path)
    policy = DispatchPolicy(max_calls_per_day=4)
    usage = await ledger.usage(IN_FLIGHT, now=T0)
    assert (usage.calls_last_24h, usage.credits_last_24h, usage.in_flight) == (3, 3 * 99.75, True)

    async def refusing_rules(number: str) -> list[str]:
        target = BoundArgs(agent_id="agent_1", to_number=number)
        decision = await ledger.decide(dial(target), policy_rules(policy, target), clock=Clock(T0))
        assert decision.preflight is not None
        return list(decision.preflight.rules)

    try:
        assert await refusing_rules(ARGS.to_number) == ["cooldown"]
        assert await refusing_rules(IN_FLIGHT) == ["cooldown"]
        assert await refusing_rules(HELD) == ["cooldown", "unknown_outcome_hold"]
        assert await refusing_rules(FAILED) == []  # a failed dial reached no one: the 4th call of the day
        assert await refusing_rules("+14155550105") == ["daily_calls"]
    finally:
        await ledger.aclose()


def open_all_at_once(path: Path, connections: int) -> list[BaseException]:
    """Open the ledger file from several threads released together; the errors they met."""
    barrier = threading.Barrier(connections)
    errors: list[BaseException] = []

    def open_one() -> None:
        barrier.wait()
        try:
            open_connection(path).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def race_opens(tmp_path: Path, start: Callable[[Path], Path], *, rounds: int, connections: int) -> list[Path]:
    """Race `connections` opens of a new ledger file per round; every round's file, asserting each open succeeded."""
    failures: list[str] = []
    paths = []
    for round_number in range(rounds):
        state_dir = tmp_path / f"round_{round_number}"
        state_dir.mkdir()
        path = start(state_dir)
        failures += [f"round {round_number}: {exc!r}" for exc in open_all_at_once(path, connections)]
        paths.append(path)
    assert failures == []
    return paths


def test_connections_opening_a_new_ledger_at_once_all_open_it(tmp_path: Path) -> None:
    # Two servers started together on a new state directory; probabilistic: a few percent of rounds collide.
    for path in race_opens(tmp_path, lambda state_dir: state_dir / LEDGER_FILENAME, rounds=40, connections=2):
        assert meta_of(path)["schema_version"] == str(SCHEMA_VERSION)
        assert read_table(path, "PRAGMA journal_mode") == [("wal",)]


def test_a_new_ledger_being_written_by_another_process_is_waited_for_not_refused(tmp_path: Path) -> None:
    # The collision above, staged: another process holds the write lock of the file it is creating.
    path = tmp_path / LEDGER_FILENAME
    creating = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    creating.execute("BEGIN IMMEDIATE")
    outcome: list[object] = []

    def open_it() -> None:
        try:
            open_connection(path).close()
        except sqlite3.Error as exc:
            outcome.append(exc)
        else:
            outcome.append("opened")

    thread = threading.Thread(target=open_it)
    thread.start()
    thread.join(timeout=0.5)  # a bound, not a pause: the lock is held meanwhile, and the open must wait for it
    creating.execute("COMMIT")
    creating.close()
    thread.join()
    assert outcome == ["opened"]
    assert meta_of(path)["schema_version"] == str(SCHEMA_VERSION)


def test_connections_opening_a_version_1_ledger_at_once_migrate_it_once(tmp_path: Path) -> None:
    for path in race_opens(tmp_path, write_v1_file, rounds=20, connections=3):
        assert meta_of(path) == {"schema_version": str(SCHEMA_VERSION), "written_by": __version__}
        assert read_table(path, "SELECT COUNT(*) FROM intents") == [(len(V1_DIALS),)]
        assert read_table(path, "SELECT COUNT(*) FROM audit") == [(len(V1_DIALS),)]
        assert read_table(path, "SELECT name FROM sqlite_master WHERE name = 'intents_v1'") == []


def test_a_ledger_written_by_a_newer_release_is_refused_naming_the_release_to_run(tmp_path: Path) -> None:
    open_connection(tmp_path / LEDGER_FILENAME).close()
    path = tmp_path / LEDGER_FILENAME
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
        conn.execute("UPDATE meta SET value = '9.4.1' WHERE key = 'written_by'")
    with pytest.raises(LedgerError) as caught:
        SqliteLedger(tmp_path)
    # The message is the product here: the owner reads it at start-up and must know what to run.
    message = str(caught.value)
    assert f"schema {SCHEMA_VERSION + 1}" in message and "written by outboundcalls-mcp 9.4.1" in message
    assert "Run outboundcalls-mcp 9.4.1 or newer" in message
    assert __version__ in message
    assert meta_of(path) == {"schema_version": str(SCHEMA_VERSION + 1), "written_by": "9.4.1"}
