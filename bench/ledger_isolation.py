"""`python -m bench.ledger_isolation --database-url URL`: PostgreSQL decisions, advisory lock vs SERIALIZABLE.

Replicas are simulated by separate ledgers (one pool each) on one schema; workers spread over
them decide unattended dials under the product's own rules (a cooldown, a daily cap) to numbers
drawn from a small set, so decisions contend, then record each claim's outcome. Two variants of
the write transaction: the product's (READ COMMITTED behind pg_advisory_xact_lock on the schema's
key) and SERIALIZABLE with retry on serialization failure (no lock), the latter also without the
policy lease every decision renews. Reported: decisions per
second, decide latency p50/p99, retries, errors, and whether any number was claimed twice.
"""

from __future__ import annotations

import argparse
import random
import secrets
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

import anyio

from bench.stats import percentile
from outboundcalls_mcp.server.ledger import BoundArgs, DialedOutcome, DialRequest, LedgerUnavailableError
from outboundcalls_mcp.server.ledger_postgres import PostgresBackend, PostgresLedger
from outboundcalls_mcp.server.ledger_sql import LedgerTx
from outboundcalls_mcp.server.policy import DEPLOYED_STATUS, DispatchPolicy
from outboundcalls_mcp.server.preflight import AgentFacts, PreflightResult, UsageFacts

MAX_RETRIES: Final = 50
_T = TypeVar("_T")


class SerializableBackend(PostgresBackend):
    """The comparison: writes as SERIALIZABLE transactions, retried on a serialization failure, with no lock."""

    retries = 0

    async def write(self, work: Callable[[LedgerTx], Coroutine[Any, Any, _T]]) -> _T:
        import psycopg
        from psycopg import errors

        from outboundcalls_mcp.server.ledger_postgres import _PostgresTx  # the bench alone needs the adapter itself

        for attempt in range(MAX_RETRIES):
            try:
                with anyio.CancelScope(shield=True):
                    async with self.pool.connection() as conn:
                        async with conn.transaction():
                            await conn.execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
                            result = await work(_PostgresTx(conn))
                return result
            except (errors.SerializationFailure, errors.DeadlockDetected):
                SerializableBackend.retries += 1
                await anyio.sleep(random.uniform(0, 0.002 * (attempt + 1)))
            except psycopg.OperationalError:
                raise LedgerUnavailableError(self.location) from None
        raise RuntimeError(f"no commit after {MAX_RETRIES} serialization failures")


@dataclass
class Result:
    """What one variant did."""

    variant: str
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    retries: int = 0
    claimed_twice: int = 0


def rules_for(policy: DispatchPolicy, target: BoundArgs) -> Callable[[UsageFacts, datetime], PreflightResult]:
    agent = AgentFacts(agent_id=target.agent_id, exists=True, status=DEPLOYED_STATUS)

    def evaluate(usage: UsageFacts, now: datetime) -> PreflightResult:
        return policy.evaluate(raw=target.to_number, now=now, agent=agent, balance=1e9, usage=usage)

    return evaluate


async def run_variant(url: str, variant: str, replicas: int, workers: int, decisions: int, numbers: int) -> Result:
    """One variant on a fresh schema, dropped afterwards."""
    import psycopg

    schema = f"bench_{secrets.token_hex(4)}"
    policy = DispatchPolicy.from_values(
        calling_hours="00:00-24:00", redial_cooldown_minutes=60, max_calls_per_day=1_000_000, max_credits_per_day=1e12
    )
    result = Result(variant)
    ledgers = []
    try:
        for _ in range(replicas):
            ledger = await PostgresLedger.open(url, schema)
            if variant.startswith("serializable"):
                base = ledger.backend
                ledger.backend = SerializableBackend(base.pool, base.schema, base.location)
            if "no lease" not in variant:  # without a policy, no decision renews a lease: fewer rows in common
                await ledger.ensure_policy_fingerprint(
                    policy.fingerprint(), policy.settings_summary(), now=datetime.now(UTC)
                )
            ledgers.append(ledger)
        pool = [f"+1415555{n:04d}" for n in range(1000, 1000 + numbers)]
        rng = random.Random(7)
        plan = iter(rng.choice(pool) for _ in range(decisions))
        SerializableBackend.retries = 0

        async def worker(index: int) -> None:
            ledger = ledgers[index % replicas]
            for number in plan:
                target = BoundArgs(agent_id="agent_1", to_number=number)
                request = DialRequest(target=target, estimate_per_minute=1.0, mode="none")
                started = time.perf_counter()
                try:
                    decision = await ledger.decide(request, rules_for(policy, target), clock=lambda: datetime.now(UTC))
                except Exception as exc:
                    result.errors.append(f"{type(exc).__name__}: {exc}"[:200])
                    continue
                result.latencies_ms.append((time.perf_counter() - started) * 1000)
                result.statuses[decision.status] += 1
                if decision.claimed and decision.intent is not None:
                    call_id = "call_" + secrets.token_hex(6)
                    await ledger.record_outcome(
                        decision.intent.intent_id, DialedOutcome(call_id=call_id), now=datetime.now(UTC)
                    )

        started = time.perf_counter()
        async with anyio.create_task_group() as group:
            for index in range(workers):
                group.start_soon(worker, index)
        result.seconds = time.perf_counter() - started
        result.retries = SerializableBackend.retries
        async with await psycopg.AsyncConnection.connect(url) as conn:
            cursor = await conn.execute(
                f"SELECT COUNT(*) FROM (SELECT to_number FROM {schema}.intents WHERE state != 'refused' "
                "GROUP BY to_number HAVING COUNT(*) > 1) AS twice"
            )
            row = await cursor.fetchone()
            result.claimed_twice = int(row[0]) if row else -1
    finally:
        for ledger in ledgers:
            await ledger.aclose()
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ledger_isolation", description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--workers", type=int, default=48)
    parser.add_argument("--decisions", type=int, default=3000)
    parser.add_argument("--numbers", type=int, default=500, help="distinct numbers the decisions draw from")
    options = parser.parse_args()
    print(
        f"{options.replicas} ledgers (replicas), {options.workers} workers, {options.decisions} decisions over "
        f"{options.numbers} numbers, cooldown 60 min\n"
    )
    print("| variant | decisions/s | p50 ms | p99 ms | claimed | refused | retries | errors | numbers claimed twice |")
    print("|---|---|---|---|---|---|---|---|---|")
    for variant in ("advisory lock", "serializable", "serializable (no lease)"):
        r = anyio.run(
            run_variant,
            options.database_url,
            variant,
            options.replicas,
            options.workers,
            options.decisions,
            options.numbers,
        )
        done = sum(r.statuses.values())
        print(
            f"| {r.variant} | {done / r.seconds:.0f} | {percentile(r.latencies_ms, 50):.1f} | "
            f"{percentile(r.latencies_ms, 99):.1f} | {r.statuses['claimed']} | {r.statuses['refused']} | {r.retries} | "
            f"{len(r.errors)} | {r.claimed_twice} |"
        )
        for error in r.errors[:3]:
            print(f"  {r.variant} error: {error}")


if __name__ == "__main__":
    main()
