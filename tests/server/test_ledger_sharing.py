"""The ledger shared: concurrent decisions in one process, on two connections and in two OS processes; policy leases.

Races are probabilistic, so each one runs several rounds on fresh state and counts the claims: exactly
one claim, where one is allowed, in every round.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Final

import anyio
import anyio.to_thread
import pytest

from outboundcalls_mcp.server.ledger import (
    BoundArgs,
    DecisionStatus,
    DialedOutcome,
    DialRequest,
    IntentRecord,
    PolicyMismatchError,
)
from outboundcalls_mcp.server.ledger_sql import SqlLedger
from outboundcalls_mcp.server.policy import ConfirmMode, DispatchPolicy
from outboundcalls_mcp.server.preflight import UsageFacts
from tests.places import LedgerPlace
from tests.server.ledger_kit import (
    ARGS,
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
    policy_rules,
    single_consent,
    single_consent_of,
    token_use,
)

pytestmark = pytest.mark.anyio

REPO: Final = Path(__file__).resolve().parents[2]
ROUNDS: Final = 5
# Decides dials on a shared ledger when told to: a job per stdin line, "ready" once its connections are
# open, then "go" from the test (sent to every process at once), then the statuses and refusing rules.
RACER: Final = r"""
import json
import sys
from datetime import datetime
from pathlib import Path

import anyio
import anyio.to_thread

from outboundcalls_mcp.server.ledger import DialRequest
from outboundcalls_mcp.server.policy import DispatchPolicy
from tests.places import LedgerPlace
from tests.server.ledger_kit import allow, policy_rules


async def run(job):
    now = datetime.fromisoformat(job["now"])
    policy = None if job["policy"] is None else DispatchPolicy(**job["policy"])
    place = LedgerPlace(**{**job["place"], "state_dir": Path(job["place"]["state_dir"])})
    ledgers = [await place.open() for _ in range(job["connections"])]
    print("ready", flush=True)
    await anyio.to_thread.run_sync(sys.stdin.readline)
    results = []

    async def decide(ledger, spec):
        request = DialRequest.model_validate(spec)
        rules = allow if policy is None else policy_rules(policy, request.target)
        decision = await ledger.decide(request, rules, clock=lambda: now)
        results.append([decision.status, list(decision.preflight.rules) if decision.preflight else []])

    async with anyio.create_task_group() as group:
        for i, spec in enumerate(job["requests"]):
            group.start_soon(decide, ledgers[i % len(ledgers)], spec)
    for ledger in ledgers:
        await ledger.aclose()
    print(json.dumps(results), flush=True)


async def main():
    while line := await anyio.to_thread.run_sync(sys.stdin.readline):
        await run(json.loads(line))


anyio.run(main)
"""


class Racers:
    """OS processes that import the ledger once, then race on each job the tests send them."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.processes: list[subprocess.Popen[str]] = []

    def start(self) -> list[subprocess.Popen[str]]:
        if not self.processes:
            self.processes = [
                subprocess.Popen(
                    [sys.executable, "-c", RACER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO
                )
                for _ in range(self.count)
            ]  # fmt: skip
        return self.processes

    def stop(self, *, kill: bool = False) -> None:
        for process in self.processes:
            if kill:
                process.kill()
            assert process.stdin is not None
            process.stdin.close()
        for process in self.processes:
            process.wait(timeout=30)
            assert process.stdout is not None
            process.stdout.close()
        self.processes = []


@pytest.fixture(scope="module")
def racing() -> Iterator[Racers]:
    racers = Racers(2)
    yield racers
    racers.stop()


async def race(
    racers: Racers,
    place: LedgerPlace,
    requests: Sequence[DialRequest],
    *,
    policy: dict[str, object] | None = None,
) -> list[tuple[DecisionStatus, list[str]]]:
    """Deal the requests out to the processes, release them together, and collect every (status, rules)."""
    processes = racers.start()

    async def receive(process: subprocess.Popen[str]) -> str:
        assert process.stdout is not None
        return await anyio.to_thread.run_sync(process.stdout.readline, abandon_on_cancel=True)

    def send(process: subprocess.Popen[str], line: str) -> None:
        assert process.stdin is not None
        process.stdin.write(line + "\n")
        process.stdin.flush()

    try:
        with anyio.fail_after(60):
            for number, process in enumerate(processes):
                job = {
                    "place": {**vars(place), "state_dir": str(place.state_dir)}, "connections": 2,
                    "now": T0.isoformat(), "policy": policy,
                    "requests": [r.model_dump(mode="json") for r in requests[number :: len(processes)]],
                }  # fmt: skip
                send(process, json.dumps(job))
            for process in processes:
                assert await receive(process) == "ready\n"
            for process in processes:
                send(process, "go")
            results: list[tuple[DecisionStatus, list[str]]] = []
            for process in processes:
                results += [(status, rules) for status, rules in json.loads(await receive(process))]
    except BaseException:
        racers.stop(kill=True)  # out of step with this test: the next one starts fresh processes
        raise
    return results


def statuses(results: Sequence[tuple[DecisionStatus, list[str]]]) -> Counter[str]:
    return Counter(status for status, _ in results)


def numbers(count: int, first: int = 110) -> list[BoundArgs]:
    """Distinct destinations in one area, all inside the calling hours at T0."""
    return [BoundArgs(agent_id="agent_1", to_number=f"+14155550{first + i:03d}") for i in range(count)]


# One process, one connection.


async def test_concurrent_uses_of_one_token_in_one_process_claim_once(place: LedgerPlace) -> None:
    ledger = await place.open()
    consent = await single_consent(ledger, token=new_token())
    seen: list[DecisionStatus] = []

    async def confirm() -> None:
        seen.append((await ledger.decide(dial(consent=consent, use=token_use(consent)), allow, clock=Clock())).status)

    async with anyio.create_task_group() as group:
        for _ in range(20):
            group.start_soon(confirm)
    assert Counter(seen) == {"claimed": 1, "consent_used": 19}
    assert len(await ledger.intents_of(consent.consent_id)) == 1
    assert Counter(entry.kind for entry in await ledger.recent_audit()) == {"preview": 1, "dial": 1, "replay": 19}
    await ledger.aclose()


# Two connections on one file, in one process: SQLite's write lock is all that serializes them.


async def test_two_connections_racing_on_many_consents_claim_each_exactly_once(place: LedgerPlace) -> None:
    first, second = await place.open(), await place.open()
    consents = [await single_consent(first, token=new_token()) for _ in range(10)]
    claims: Counter[str] = Counter()
    used: Counter[str] = Counter()

    async def confirm(ledger: SqlLedger, consent_id: str) -> None:
        consent = await ledger.consent(consent_id)
        assert consent is not None
        decision = await ledger.decide(dial(consent=consent, use=token_use(consent)), allow, clock=Clock())
        (claims if decision.claimed else used)[consent_id] += 1

    async with anyio.create_task_group() as group:
        for consent in consents:
            for ledger in (first, second, first, second):
                group.start_soon(confirm, ledger, consent.consent_id)
    assert claims == {consent.consent_id: 1 for consent in consents}
    assert used == {consent.consent_id: 3 for consent in consents}
    await first.aclose()
    await second.aclose()


async def test_two_connections_racing_dials_to_one_number_claim_one_under_the_real_rules(place: LedgerPlace) -> None:
    policy = DispatchPolicy()
    for round_number in range(ROUNDS):
        round_place = place / f"round_{round_number}"
        first, second = await round_place.open(), await round_place.open()
        seen: list[DecisionStatus] = []

        async def dial_once(ledger: SqlLedger) -> None:
            seen.append((await ledger.decide(dial(), policy_rules(policy, ARGS), clock=Clock())).status)

        async with anyio.create_task_group() as group:
            for ledger in (first, second) * 4:
                group.start_soon(dial_once, ledger)
        assert Counter(seen) == {"claimed": 1, "refused": 7}, f"round {round_number}"
        await first.aclose()
        await second.aclose()


async def test_identical_questions_asked_at_once_on_two_connections_are_one_question(place: LedgerPlace) -> None:
    first, second = await place.open(), await place.open()
    ids: list[str] = []

    async def ask(ledger: SqlLedger) -> None:
        consent = single_consent_of(ARGS, mode="elicit")
        record = await ledger.open_consent(consent, now=T0, expires_at=T0 + timedelta(minutes=5), token=None)
        ids.append(record.consent_id)

    async with anyio.create_task_group() as group:
        for ledger in (first, second) * 5:
            group.start_soon(ask, ledger)
    assert len(ids) == 10 and len(set(ids)) == 1
    assert [entry.kind for entry in await first.recent_audit()] == ["question"]
    await first.aclose()
    await second.aclose()


# Separate OS processes on one state directory.


async def test_uses_of_one_token_from_two_processes_claim_once(place: LedgerPlace, racing: Racers) -> None:
    for round_number in range(ROUNDS):
        round_place = place / f"round_{round_number}"
        async with round_place.opened() as ledger:
            consent = await single_consent(ledger, token=new_token())
            requests = [dial(consent=consent, use=token_use(consent))] * 8
            results = await race(racing, round_place, requests)
            assert statuses(results) == {"claimed": 1, "consent_used": 7}, f"round {round_number}"
            assert len(await ledger.intents_of(consent.consent_id)) == 1


@pytest.mark.parametrize("how", ["tokens", "questions", "unattended"])
async def test_different_dials_to_one_number_from_two_processes_claim_one_and_the_rest_meet_the_cooldown(
    place: LedgerPlace, racing: Racers, how: str
) -> None:
    for round_number in range(ROUNDS):
        round_place = place / f"round_{round_number}"
        async with round_place.opened() as ledger:
            requests = await different_requests_for_one_number(ledger, how, 8)
            results = await race(racing, round_place, requests, policy={"redial_cooldown_minutes": 60})
            assert statuses(results) == {"claimed": 1, "refused": 7}, f"round {round_number}: {results}"
            assert {tuple(rules) for status, rules in results if status == "refused"} == {("cooldown",)}
            usage = await ledger.usage(ARGS.to_number, now=T0)
            assert (usage.calls_last_24h, usage.in_flight) == (1, True)


async def different_requests_for_one_number(ledger: SqlLedger, how: str, count: int) -> list[DialRequest]:
    """Dials to ARGS's number: each under its own preview, its own question (another contact), or none."""
    if how == "unattended":
        return [dial()] * count
    requests = []
    for contact in range(count):
        if how == "tokens":
            consent = await single_consent(ledger, token=new_token())
            requests.append(dial(consent=consent, use=token_use(consent)))
        else:
            target = BoundArgs(agent_id="agent_1", to_number=ARGS.to_number, contact_id=f"contact_{contact}")
            consent = await single_consent(ledger, target, token=None)
            requests.append(dial(target, consent=consent, use=form_use(consent, target)))
    return requests


@pytest.mark.parametrize("how", ["tokens", "unattended"])
async def test_the_last_call_of_the_daily_cap_raced_from_two_processes_is_claimed_once(
    place: LedgerPlace, racing: Racers, how: str
) -> None:
    cap = 3
    for round_number in range(ROUNDS):
        round_place = place / f"round_{round_number}"
        async with round_place.opened() as ledger:
            for number, earlier in enumerate(numbers(cap - 1, first=190)):
                await dialed(ledger, earlier, T0 - timedelta(hours=1), f"call_{number}")
            requests = []
            for target in numbers(8):
                if how == "tokens":
                    consent = await single_consent(ledger, target, token=new_token())
                    requests.append(dial(target, consent=consent, use=token_use(consent, target)))
                else:
                    requests.append(dial(target))
            results = await race(racing, round_place, requests, policy={"max_calls_per_day": cap})
            assert statuses(results) == {"claimed": 1, "refused": 7}, f"round {round_number}: {results}"
            assert {tuple(rules) for status, rules in results if status == "refused"} == {("daily_calls",)}
            assert (await ledger.usage(None, now=T0)).calls_last_24h == cap


# Waiting for the outcome of a dial decided elsewhere.


class ObservedLedger(SqlLedger):
    """A ledger that says when a waiter has read a consent's dials, so the test acts only after that."""

    def __init__(self, opened: SqlLedger, *, poll_interval: float) -> None:
        super().__init__(opened.backend, poll_interval=poll_interval, holder_id=opened.holder_id)
        self.reads = 0
        self.read = anyio.Event()

    @classmethod
    async def at(cls, place: LedgerPlace, *, poll_interval: float) -> ObservedLedger:
        """An observed ledger at this place."""
        return cls(await place.open(poll_interval=poll_interval), poll_interval=poll_interval)

    async def intents_of(self, consent_id: str) -> list[IntentRecord]:
        found = await super().intents_of(consent_id)
        self.reads += 1
        self.read.set()
        return found


async def claimed_under_a_consent(ledger: SqlLedger) -> tuple[str, IntentRecord]:
    """A consent used by a yes whose dial is claimed and still dialing: its id and the dial."""
    consent = await single_consent(ledger, token=new_token())
    decision = await ledger.decide(dial(consent=consent, use=token_use(consent)), allow, clock=Clock())
    return consent.consent_id, intent_of(decision)


async def test_a_waiter_in_the_same_process_is_woken_by_the_outcome_without_polling(place: LedgerPlace) -> None:
    ledger = await ObservedLedger.at(place, poll_interval=600)  # a poll would outlast the bound below
    consent_id, intent = await claimed_under_a_consent(ledger)
    seen: list[list[IntentRecord]] = []

    async def wait() -> None:
        seen.append(await ledger.wait_for_consent(consent_id, positions=1, timeout=600))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(wait)
            await ledger.read.wait()  # the waiter found it dialing and is now waiting
            await ledger.record_outcome(intent.intent_id, DialedOutcome(call_id="call_1"), now=T0)
    [[record]] = seen
    assert (record.state, record.call_id) == ("dialed", "call_1")
    await ledger.aclose()


async def test_a_waiter_on_another_connection_sees_the_outcome_by_polling(place: LedgerPlace) -> None:
    dialer, waiter = await place.open(), await ObservedLedger.at(place, poll_interval=0.01)
    consent_id, intent = await claimed_under_a_consent(dialer)
    seen: list[list[IntentRecord]] = []

    async def wait() -> None:
        seen.append(await waiter.wait_for_consent(consent_id, positions=1, timeout=30))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(wait)
            await waiter.read.wait()
            await dialer.record_outcome(intent.intent_id, DialedOutcome(call_id="call_1"), now=T0)
    [[record]] = seen
    assert record.call_id == "call_1" and waiter.reads >= 2
    await dialer.aclose()
    await waiter.aclose()


async def test_waiting_is_bounded_and_returns_the_dial_still_dialing(place: LedgerPlace) -> None:
    ledger = await place.open(poll_interval=0.01)
    consent_id, intent = await claimed_under_a_consent(ledger)
    with anyio.fail_after(10):
        [record] = await ledger.wait_for_consent(consent_id, positions=1, timeout=0.05)
    assert record == intent and record.state == "dialing"
    await ledger.aclose()


async def test_waiting_on_a_batch_returns_once_every_agreed_position_is_decided_and_settled(place: LedgerPlace) -> None:
    ledger = await ObservedLedger.at(place, poll_interval=600)
    first, second = numbers(2)
    consent = await batch_consent(ledger, [(first.to_number, True), (second.to_number, True)])
    await ledger.answer_consent(batch_use(consent), "accept", now=T0)
    one = await ledger.decide(dial(first, consent=consent, position=0), allow, clock=Clock())
    assert one.intent is not None
    await ledger.record_outcome(one.intent.intent_id, DialedOutcome(call_id="call_1"), now=T0)
    seen: list[list[IntentRecord]] = []

    async def wait() -> None:
        seen.append(await ledger.wait_for_consent(consent.consent_id, positions=2, timeout=600))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(wait)
            await ledger.read.wait()  # one position decided: not yet
            two = await ledger.decide(dial(second, consent=consent, position=1), allow, clock=Clock())
            assert two.intent is not None
            await ledger.record_outcome(two.intent.intent_id, DialedOutcome(call_id="call_2"), now=T0)
    [records] = seen
    assert [(r.position, r.call_id) for r in records] == [(0, "call_1"), (1, "call_2")]
    await ledger.aclose()


async def test_a_consent_and_its_dial_survive_a_restart(place: LedgerPlace) -> None:
    token = new_token()
    before = await place.open()
    consent = await single_consent(before, token=token)
    await before.aclose()
    after = await place.open()
    found = await after.consent_by_token(token)
    assert found == consent
    decision = await after.decide(
        dial(consent=consent, use=token_use(consent)), allow, clock=Clock(T0 + timedelta(minutes=1))
    )
    assert decision.intent is not None
    await after.record_outcome(
        decision.intent.intent_id, DialedOutcome(call_id="call_1"), now=T0 + timedelta(minutes=1)
    )
    await after.aclose()
    again = await place.open()
    replay = await again.decide(
        dial(consent=consent, use=token_use(consent)), allow, clock=Clock(T0 + timedelta(minutes=2))
    )
    assert replay.status == "consent_used"
    assert [i.call_id for i in await again.intents_of(consent.consent_id)] == ["call_1"]
    await again.aclose()


# Policy leases: processes sharing a ledger enforce the same rules.


def _policy(calls: int = 50, confirm: ConfirmMode = "auto") -> tuple[str, dict[str, str]]:
    policy = DispatchPolicy(max_calls_per_day=calls, confirm_mode=confirm)
    return policy.fingerprint(), policy.settings_summary()


async def test_a_second_process_with_a_different_policy_is_refused_naming_the_change(place: LedgerPlace) -> None:
    first, second = await place.open(), await place.open()
    await first.ensure_policy_fingerprint(*_policy(50), now=T0)
    with pytest.raises(PolicyMismatchError) as caught:
        await second.ensure_policy_fingerprint(*_policy(100), now=T0 + timedelta(minutes=1))
    assert caught.value.changes == {"OUTBOUNDCALLS_MAX_CALLS_PER_DAY": ("50", "100")}
    assert "OUTBOUNDCALLS_MAX_CALLS_PER_DAY" in str(caught.value)
    assert ("OUTBOUNDCALLS_STATE_DIR" if place.backend == "sqlite" else "OUTBOUNDCALLS_DATABASE_SCHEMA") in str(
        caught.value
    )
    await second.ensure_policy_fingerprint(*_policy(50), now=T0 + timedelta(minutes=1))
    await first.aclose()
    await second.aclose()


async def test_a_process_asking_by_form_cannot_share_a_ledger_with_one_that_mints_tokens(place: LedgerPlace) -> None:
    tokens, forms = await place.open(), await place.open()
    await tokens.ensure_policy_fingerprint(*_policy(confirm="token"), now=T0)
    with pytest.raises(PolicyMismatchError) as caught:
        await forms.ensure_policy_fingerprint(*_policy(confirm="elicit"), now=T0)
    assert caught.value.changes == {"OUTBOUNDCALLS_CONFIRM": ("token", "elicit")}
    await tokens.aclose()
    await forms.aclose()


async def test_a_changed_policy_is_accepted_once_the_old_process_has_left(place: LedgerPlace) -> None:
    old = await place.open()
    await old.ensure_policy_fingerprint(*_policy(50), now=T0)
    await old.aclose()
    new = await place.open()
    await new.ensure_policy_fingerprint(*_policy(100), now=T0 + timedelta(minutes=1))
    await new.aclose()


async def test_a_process_that_stopped_beating_no_longer_holds_the_policy(place: LedgerPlace) -> None:
    crashed, new = await place.open(), await place.open()
    await crashed.ensure_policy_fingerprint(*_policy(50), now=T0)
    await new.ensure_policy_fingerprint(*_policy(100), now=T0 + timedelta(minutes=6))
    with pytest.raises(PolicyMismatchError):
        await crashed.decide(dial(), allow, clock=Clock(T0 + timedelta(minutes=6)))
    await new.aclose()
    await crashed.aclose()


async def test_a_heartbeat_keeps_the_policy_held(place: LedgerPlace) -> None:
    alive, other = await place.open(), await place.open()
    await alive.ensure_policy_fingerprint(*_policy(50), now=T0)
    await alive.heartbeat(now=T0 + timedelta(minutes=4))
    with pytest.raises(PolicyMismatchError):
        await other.ensure_policy_fingerprint(*_policy(100), now=T0 + timedelta(minutes=6))
    await alive.aclose()
    await other.aclose()


async def test_dialing_refuses_and_changes_nothing_once_a_live_process_with_another_policy_shares_the_ledger(
    place: LedgerPlace,
) -> None:
    first, second = await place.open(), await place.open()
    await first.ensure_policy_fingerprint(*_policy(50), now=T0)
    consent = await single_consent(first, token=new_token())
    await second.ensure_policy_fingerprint(*_policy(100), now=T0 + timedelta(minutes=6))
    with pytest.raises(PolicyMismatchError):
        await first.decide(dial(consent=consent, use=token_use(consent)), allow, clock=Clock(T0 + timedelta(minutes=6)))
    record = await second.consent(consent.consent_id)
    assert record is not None and record.state == "open"
    assert await second.intents_of(consent.consent_id) == []
    assert (await second.usage(ARGS.to_number, now=T0 + timedelta(minutes=6))).calls_last_24h == 0
    await first.aclose()
    await second.aclose()


def test_the_racing_processes_use_the_product_rules_and_they_allow_a_first_dial_at_t0() -> None:
    # The cooldown and cap races mean something only if these rules allow the first dial of each round.
    for target in (ARGS, *numbers(8)):
        result = policy_rules(DispatchPolicy(), target)(UsageFacts(to_number=target.to_number), T0)
        assert result.allowed and result.estimated_credits_per_minute == RATE, target
