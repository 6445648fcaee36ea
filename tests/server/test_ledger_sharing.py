"""The ledger shared: concurrent confirmations, several connections and processes, restarts, policy."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

from server.ledger import ClaimStatus, DialedOutcome, DispatchArgs, IntentRecord, PolicyMismatchError
from server.ledger_sqlite import SqliteLedger
from server.policy import DispatchPolicy

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 1, 15, 17, 0, tzinfo=UTC)
EXPIRES = T0 + timedelta(minutes=5)
ARGS = DispatchArgs(agent_id="agent_1", to_number="+14155550134")
REPO = Path(__file__).resolve().parents[2]
CLAIM_IN_ANOTHER_PROCESS = """
import sys
from datetime import UTC, datetime
from pathlib import Path

import anyio

from server.ledger import DispatchArgs
from server.ledger_sqlite import SqliteLedger


async def main() -> None:
    ledger = SqliteLedger(Path(sys.argv[1]))
    token = sys.stdin.readline().strip()
    args = DispatchArgs(agent_id="agent_1", to_number="+14155550134")
    result = await ledger.claim(token, args, now=datetime(2026, 1, 15, 17, 1, tzinfo=UTC))
    print(result.status)
    await ledger.aclose()


anyio.run(main)
"""


async def test_concurrent_confirmations_of_one_token_in_one_process_claim_once(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path)
    intent = await ledger.create_intent(ARGS, estimate_per_minute=19.95, now=T0, expires_at=EXPIRES, mode="token")
    statuses: list[ClaimStatus] = []

    async def confirm() -> None:
        statuses.append((await ledger.claim(intent.token, ARGS, now=T0)).status)

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(confirm)
    assert sorted(statuses) == ["claimed"] + ["in_progress"] * 19
    await ledger.aclose()


async def test_two_connections_racing_on_many_tokens_claim_each_exactly_once(tmp_path: Path) -> None:
    first, second = SqliteLedger(tmp_path), SqliteLedger(tmp_path)
    intents = [
        await first.create_intent(ARGS, estimate_per_minute=19.95, now=T0, expires_at=EXPIRES, mode="token")
        for _ in range(10)
    ]
    claimed: dict[str, int] = {intent.intent_id: 0 for intent in intents}

    async def confirm(ledger: SqliteLedger, token: str, intent_id: str) -> None:
        if (await ledger.claim(token, ARGS, now=T0)).claimed:
            claimed[intent_id] += 1

    async with anyio.create_task_group() as tg:
        for intent in intents:
            for ledger in (first, second, first, second):
                tg.start_soon(confirm, ledger, intent.token, intent.intent_id)
    assert set(claimed.values()) == {1}
    await first.aclose()
    await second.aclose()


async def test_confirmations_from_separate_processes_claim_once(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path)
    intent = await ledger.create_intent(ARGS, estimate_per_minute=19.95, now=T0, expires_at=EXPIRES, mode="token")
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIM_IN_ANOTHER_PROCESS, str(tmp_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for _ in range(3)
    ]
    for process in processes:
        assert process.stdin is not None
        process.stdin.write(intent.token + "\n")
        process.stdin.flush()
    here = (await ledger.claim(intent.token, ARGS, now=T0)).status
    there = [process.communicate(timeout=60)[0].strip() for process in processes]
    assert sorted([here, *there]) == ["claimed", "in_progress", "in_progress", "in_progress"]
    await ledger.aclose()


async def test_a_waiting_confirmation_gets_the_other_ones_call_in_the_same_process(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path)
    intent = await ledger.create_intent(ARGS, estimate_per_minute=19.95, now=T0, expires_at=EXPIRES, mode="token")
    assert (await ledger.claim(intent.token, ARGS, now=T0)).claimed
    assert (await ledger.claim(intent.token, ARGS, now=T0)).status == "in_progress"
    seen: list[IntentRecord | None] = []

    async def wait() -> None:
        seen.append(await ledger.wait_for_outcome(intent.token, timeout=30))

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait)
        await ledger.record_outcome(intent.token, DialedOutcome(call_id="call_1"), now=T0)
    assert seen[0] is not None and (seen[0].state, seen[0].call_id) == ("dialed", "call_1")
    await ledger.aclose()


async def test_a_waiting_confirmation_gets_the_call_placed_through_another_connection(tmp_path: Path) -> None:
    dialer, waiter = SqliteLedger(tmp_path), SqliteLedger(tmp_path, poll_interval=0.01)
    intent = await dialer.create_intent(ARGS, estimate_per_minute=19.95, now=T0, expires_at=EXPIRES, mode="token")
    assert (await dialer.claim(intent.token, ARGS, now=T0)).claimed
    seen: list[IntentRecord | None] = []

    async def wait() -> None:
        seen.append(await waiter.wait_for_outcome(intent.token, timeout=30))

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait)
        await dialer.record_outcome(intent.token, DialedOutcome(call_id="call_1"), now=T0)
    assert seen[0] is not None and seen[0].call_id == "call_1"
    await dialer.aclose()
    await waiter.aclose()


async def test_waiting_is_bounded_and_returns_the_intent_still_dialing(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path, poll_interval=0.01)
    intent = await ledger.create_intent(ARGS, estimate_per_minute=19.95, now=T0, expires_at=EXPIRES, mode="token")
    await ledger.claim(intent.token, ARGS, now=T0)
    record = await ledger.wait_for_outcome(intent.token, timeout=0.03)
    assert record is not None and record.state == "dialing"
    await ledger.aclose()


async def test_a_token_survives_a_restart_and_its_outcome_after_another(tmp_path: Path) -> None:
    before = SqliteLedger(tmp_path)
    intent = await before.create_intent(ARGS, estimate_per_minute=19.95, now=T0, expires_at=EXPIRES, mode="token")
    await before.aclose()
    after = SqliteLedger(tmp_path)
    assert (await after.claim(intent.token, ARGS, now=T0 + timedelta(minutes=1))).claimed
    await after.record_outcome(intent.token, DialedOutcome(call_id="call_1"), now=T0 + timedelta(minutes=1))
    await after.aclose()
    again = SqliteLedger(tmp_path)
    replay = await again.claim(intent.token, ARGS, now=T0 + timedelta(minutes=2))
    assert replay.status == "already_done"
    assert replay.intent is not None and replay.intent.call_id == "call_1"
    await again.aclose()


def _policy(calls: int = 50) -> tuple[str, dict[str, str]]:
    policy = DispatchPolicy(max_calls_per_day=calls)
    return policy.fingerprint(), policy.settings_summary()


async def test_a_second_process_with_a_different_policy_is_refused_naming_the_change(tmp_path: Path) -> None:
    first, second = SqliteLedger(tmp_path), SqliteLedger(tmp_path)
    await first.ensure_policy_fingerprint(*_policy(50), now=T0)
    with pytest.raises(PolicyMismatchError) as caught:
        await second.ensure_policy_fingerprint(*_policy(100), now=T0 + timedelta(minutes=1))
    assert caught.value.changes == {"OUTBOUNDCALLS_MAX_CALLS_PER_DAY": ("50", "100")}
    assert "OUTBOUNDCALLS_MAX_CALLS_PER_DAY" in str(caught.value)
    assert "OUTBOUNDCALLS_STATE_DIR" in str(caught.value)
    await second.ensure_policy_fingerprint(*_policy(50), now=T0 + timedelta(minutes=1))
    await first.aclose()
    await second.aclose()


async def test_a_changed_policy_is_accepted_once_the_old_process_has_left(tmp_path: Path) -> None:
    old = SqliteLedger(tmp_path)
    await old.ensure_policy_fingerprint(*_policy(50), now=T0)
    await old.aclose()
    new = SqliteLedger(tmp_path)
    await new.ensure_policy_fingerprint(*_policy(100), now=T0 + timedelta(minutes=1))
    await new.aclose()


async def test_a_process_that_stopped_beating_no_longer_holds_the_policy(tmp_path: Path) -> None:
    crashed, new = SqliteLedger(tmp_path), SqliteLedger(tmp_path)
    await crashed.ensure_policy_fingerprint(*_policy(50), now=T0)
    await new.ensure_policy_fingerprint(*_policy(100), now=T0 + timedelta(minutes=6))
    with pytest.raises(PolicyMismatchError):
        await crashed.claim("any-token", ARGS, now=T0 + timedelta(minutes=6))
    await new.aclose()
    await crashed.aclose()


async def test_a_heartbeat_keeps_the_policy_held(tmp_path: Path) -> None:
    alive, other = SqliteLedger(tmp_path), SqliteLedger(tmp_path)
    await alive.ensure_policy_fingerprint(*_policy(50), now=T0)
    await alive.heartbeat(now=T0 + timedelta(minutes=4))
    with pytest.raises(PolicyMismatchError):
        await other.ensure_policy_fingerprint(*_policy(100), now=T0 + timedelta(minutes=6))
    await alive.aclose()
    await other.aclose()


async def test_dialing_refuses_once_a_live_process_with_another_policy_shares_the_ledger(tmp_path: Path) -> None:
    first, second = SqliteLedger(tmp_path), SqliteLedger(tmp_path)
    await first.ensure_policy_fingerprint(*_policy(50), now=T0)
    intent = await first.create_intent(ARGS, estimate_per_minute=19.95, now=T0, expires_at=EXPIRES, mode="token")
    await second.ensure_policy_fingerprint(*_policy(100), now=T0 + timedelta(minutes=6))
    with pytest.raises(PolicyMismatchError):
        await first.claim(intent.token, ARGS, now=T0 + timedelta(minutes=6))
    record = await second.get_intent(intent.token)
    assert record is not None and record.state == "pending"
    await first.aclose()
    await second.aclose()
