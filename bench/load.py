"""`python -m bench.load [--quick] [--replicas N --database-url URL]`: concurrent MCP sessions over HTTP.

The same load runs again with 5% of the API's answers 502s.

Three processes on loopback: the sandbox API (this module with --serve-sandbox, so that it can answer
a random share of requests with 502 and report its full request log), our server
(`python -m outboundcalls_mcp.server --transport http`, permissive policy, confirm=token), and this load generator.
Half the sessions speak the handshake era (stateful, SSE), half 2026-07-28. Reads are mixed with
confirmed dispatches (preview, then confirm by token, each to a new number); afterwards the ledger is
compared with what the sandbox received: one intent per dispatch, one call per dialed intent, no
number dialed twice, nothing left mid-dial.

With --database-url the ledger is PostgreSQL (a fresh schema per run, dropped after it) and
--replicas N starts N server processes on it; session i talks to replica i mod N, as a balancer
without affinity would spread them.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2

from bench.http_reads import HttpServer, free_port
from bench.stats import percentile
from bench.stdio_rpc import child_env

SANDBOX_FLAG = "--serve-sandbox"
READS = ("get_balance", "list_calls", "get_call", "list_agents", "get_agent", "list_contacts", "get_campaign")
PERMISSIVE = {
    "OUTBOUNDCALLS_CONFIRM": "token",
    "OUTBOUNDCALLS_CALLING_HOURS": "00:00-24:00",
    "OUTBOUNDCALLS_REDIAL_COOLDOWN_MINUTES": "0",
    "OUTBOUNDCALLS_MAX_CALLS_PER_DAY": "1000000",
    "OUTBOUNDCALLS_MAX_CREDITS_PER_DAY": "1000000000",
    "OUTBOUNDCALLS_HTTP_RATE_LIMIT": "0",  # one client address drives every session here
    "OUTBOUNDCALLS_LOG_LEVEL": "ERROR",
}
WARM_UP_SHARE = 0.1
Message = MutableMapping[str, Any]


# --- the sandbox process ----------------------------------------------------------------------


def serve_sandbox(fail_rate: float, seed: int) -> None:
    """Serve the sandbox on a free loopback port; print its base URL on stderr; 502 a `fail_rate` share at random."""
    import uvicorn

    from outboundcalls.sandbox import Fault, Faults, RealClock, Sandbox
    from outboundcalls.sandbox.standalone import serve

    bad_gateway = Fault(kind="status", status=502, times=None)

    class RandomFaults(Faults):
        """Every request has the same chance of a 502, drawn from a seeded generator."""

        def __init__(self) -> None:
            super().__init__()
            self.rng = random.Random(seed)

        def take(self, method: str, path: str) -> Fault | None:
            return bad_gateway if self.rng.random() < fail_rate else super().take(method, path)

    sandbox = Sandbox(clock=RealClock(), credits=1e12)
    sandbox.faults = RandomFaults()

    async def app(
        scope: Message, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
    ) -> None:
        if scope["type"] == "http" and scope["path"] == "/_load/log":
            # Unlike /_sandbox/requests, with what the API did and to which number: the ledger check needs both.
            log = [
                {
                    "method": r.method,
                    "path": r.path,
                    "status": r.status,
                    "handled": r.handled_status,
                    "to": r.body.get("toNumber") if isinstance(r.body, dict) else None,
                }
                for r in sandbox.requests
            ]
            body = json.dumps(log).encode()
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
            )
            await send({"type": "http.response.body", "body": body})
            return
        await sandbox.app(scope, receive, send)

    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", ws="none", http="h11", log_level="warning")
    server = uvicorn.Server(config)
    anyio.run(
        lambda: serve(sandbox, server, on_ready=lambda url: print(f"sandbox at {url}", file=sys.stderr, flush=True))
    )


@dataclass
class SandboxProcess:
    """This module's sandbox mode in a child process."""

    fail_rate: float
    seed: int = 7
    base_url: str = ""
    process: Any = None

    def __enter__(self) -> SandboxProcess:
        import subprocess

        argv = [sys.executable, "-m", "bench.load", SANDBOX_FLAG, str(self.fail_rate), str(self.seed)]
        self.process = subprocess.Popen(argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        first = self.process.stderr.readline()
        if " at " not in first:
            self.process.kill()
            raise RuntimeError(f"the sandbox did not start: {first.strip()!r}")
        self.base_url = first.rsplit(" at ", 1)[1].strip()
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)

    def log(self) -> list[dict[str, Any]]:
        """Every request the sandbox received, with the API's own status and the number dialed."""
        root = self.base_url.rsplit("/api/v1", 1)[0]
        response = httpx2.get(f"{root}/_load/log", timeout=60, trust_env=False)
        response.raise_for_status()
        entries: list[dict[str, Any]] = response.json()
        return entries


# --- the load generator ---------------------------------------------------------------------------


def destination_numbers(count: int) -> list[str]:
    """Distinct, valid, fictional US numbers (NPA-555-01XX), in a fixed order."""
    from outboundcalls.numbers import InvalidPhoneNumberError, parse_phone

    numbers: list[str] = []
    for area in range(201, 990):
        try:
            parse_phone(f"+1{area}5550150", "US")
        except InvalidPhoneNumberError:
            continue
        numbers += [f"+1{area}55501{n:02d}" for n in range(100)]
        if len(numbers) >= count:
            return numbers[:count]
    raise RuntimeError("not enough fictional numbers")


@dataclass
class Figures:
    """What the sessions saw."""

    latencies_ms: dict[str, list[float]] = field(default_factory=dict)
    tool_errors: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)  # exceptions: protocol errors, crashes, timeouts
    dispatches: Counter[str] = field(default_factory=Counter)
    previews: int = 0
    done: int = 0
    rss_mib: list[tuple[int, float]] = field(default_factory=list)

    def all_latencies(self) -> list[float]:
        """Every tool call's latency, all tools together."""
        return [ms for values in self.latencies_ms.values() for ms in values]


def rss_mib(pid: int) -> float:
    """The process's current resident set in MiB (Linux /proc)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def run_sessions(
    urls: list[str], sessions: int, total_calls: int, dispatch_share: float, pid: int
) -> tuple[Figures, float]:
    """Drive `sessions` concurrent clients (spread over the replicas' urls) until `total_calls` tool calls are done."""
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    from outboundcalls.sandbox import ManualClock, Sandbox

    ids = Sandbox(clock=ManualClock()).seed_ids  # the same seed, so the same ids as the served sandbox
    rng = random.Random(42)
    plan: list[str] = []
    while sum(2 if op == "dispatch" else 1 for op in plan) < total_calls:
        plan.append("dispatch" if rng.random() < dispatch_share / 2 else rng.choice(READS))
    numbers = iter(destination_numbers(plan.count("dispatch")))
    ops = iter(plan)
    figures = Figures()
    reads: dict[str, dict[str, Any]] = {
        "get_balance": {}, "list_calls": {"limit": 20}, "get_call": {"call_id": ids.completed_call_id},
        "list_agents": {}, "get_agent": {"agent_id": ids.deployed_agent_id}, "list_contacts": {"limit": 20},
        "get_campaign": {"campaign_id": ids.campaign_id},
    }  # fmt: skip
    warm_mark = int(total_calls * WARM_UP_SHARE)

    async def call(client: Any, name: str, args: dict[str, Any]) -> Any:
        started = time.perf_counter()
        try:
            result = await client.call_tool(name, args)
        except Exception as exc:
            figures.failures.append(f"{name}: {type(exc).__name__}: {exc}"[:300])
            return None
        figures.latencies_ms.setdefault(name, []).append((time.perf_counter() - started) * 1000)
        figures.done += 1
        if figures.done >= warm_mark * (len(figures.rss_mib) + 1):  # at 10%, 20%, ... of the run
            figures.rss_mib.append((figures.done, rss_mib(pid)))
        if result.is_error:
            figures.tool_errors[name] += 1
        return result

    async def dispatch(client: Any) -> None:
        args = {"agent_id": ids.deployed_agent_id, "to_number": next(numbers)}
        preview = await call(client, "dispatch_call", args)
        if preview is None or preview.is_error or not preview.structured_content:
            figures.dispatches["preview refused"] += 1
            return
        figures.previews += 1
        token = preview.structured_content["preview"]["confirmation_token"]
        result = await call(client, "dispatch_call", {**args, "confirmation_token": token})
        status = (
            "exception" if result is None else "tool error" if result.is_error else result.structured_content["status"]
        )
        figures.dispatches[status] += 1

    async def session(index: int) -> None:
        http = httpx2.AsyncClient(timeout=120, trust_env=False)
        mode = "legacy" if index % 2 == 0 else "auto"
        url = urls[index % len(urls)]
        async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
            for op in ops:  # one shared iterator: sessions take the next operation as they free up
                if op == "dispatch":
                    await dispatch(client)
                else:
                    await call(client, op, reads[op])

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for index in range(sessions):
            group.start_soon(session, index)
    seconds = time.perf_counter() - started
    figures.rss_mib.append((figures.done, rss_mib(pid)))
    return figures, seconds


def ledger_rows(state_dir: Path, database: tuple[str, str] | None) -> list[tuple[str, str, str | None]]:
    """Every intent's number, state and call id: from the SQLite file, or the run's PostgreSQL schema."""
    if database is not None:
        import psycopg

        url, schema = database
        with psycopg.connect(url) as conn:
            return [tuple(row) for row in conn.execute(f"SELECT to_number, state, call_id FROM {schema}.intents")]
    with closing(sqlite3.connect(f"file:{state_dir / 'ledger.sqlite3'}?mode=ro", uri=True)) as conn:
        return conn.execute("SELECT to_number, state, call_id FROM intents").fetchall()


def ledger_check(
    rows: list[tuple[str, str, str | None]], log: list[dict[str, Any]], figures: Figures
) -> dict[str, Any]:
    """The ledger against the sandbox's log: one intent per preview, one created call per dialed intent."""
    states = Counter(state for _, state, _ in rows)
    posts = [entry for entry in log if entry["method"] == "POST" and entry["path"] == "/calls"]
    created = [entry["to"] for entry in posts if entry["handled"] in (200, 201)]
    posts_per_number = Counter(entry["to"] for entry in posts)
    dialed = sorted(number for number, state, _ in rows if state == "dialed")
    intents_per_number = Counter(number for number, _, _ in rows)
    return {
        "intents": len(rows),
        "previews": figures.previews,
        "states": dict(states),
        "posts": len(posts),
        "created": len(created),
        "duplicate_intents": sum(1 for n in intents_per_number.values() if n > 1),
        "numbers_posted_twice": sum(1 for n in posts_per_number.values() if n > 1),
        "left_mid_dial": states.get("dialing", 0),
        "dialed_equals_created": dialed == sorted(created),
        "distinct_call_ids": len({call_id for _, state, call_id in rows if state == "dialed"}) == len(dialed),
    }


@dataclass
class Run:
    """One load run's settings and results."""

    label: str
    fail_rate: float
    figures: Figures
    seconds: float
    ledger: dict[str, Any]


def run_once(
    label: str,
    fail_rate: float,
    sessions: int,
    total_calls: int,
    dispatch_share: float,
    *,
    replicas: int = 1,
    database_url: str | None = None,
) -> Run:
    """Start the sandbox and our server(s), drive the load, and check the ledger."""
    import secrets
    from contextlib import ExitStack

    schema = f"bench_{secrets.token_hex(4)}"
    database = None if database_url is None else (database_url, schema)
    with tempfile.TemporaryDirectory() as state, SandboxProcess(fail_rate) as sandbox, ExitStack() as stack:
        env = child_env(PERMISSIVE | {
            "OUTBOUNDCALLS_BASE_URL": sandbox.base_url,
            "OUTBOUNDCALLS_API_KEY": "oc_test_sandbox_not_a_live_key_0000",
            "OUTBOUNDCALLS_STATE_DIR": state,
        } | ({} if database_url is None else {
            "OUTBOUNDCALLS_DATABASE_URL": database_url,
            "OUTBOUNDCALLS_DATABASE_SCHEMA": schema,
            "OUTBOUNDCALLS_REQUEST_STATE_KEY": secrets.token_hex(32),
        }))  # fmt: skip
        if database is not None:
            stack.callback(_drop_schema, *database)
        servers = []
        for _ in range(replicas):
            port = free_port()
            argv = [sys.executable, "-m", "outboundcalls_mcp.server", "--transport", "http", "--port", str(port)]
            servers.append(stack.enter_context(HttpServer(argv, port, env)))
        urls = [server.url for server in servers]
        figures, seconds = anyio.run(run_sessions, urls, sessions, total_calls, dispatch_share, servers[0].process.pid)
        for server in reversed(servers):  # stopped before the ledger is read: no dial still in flight
            server.__exit__(None, None, None)
        ledger = ledger_check(ledger_rows(Path(state), database), sandbox.log(), figures)
    return Run(label, fail_rate, figures, seconds, ledger)


def _drop_schema(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def report(runs: list[Run], sessions: int) -> str:
    """The figures as a Markdown table, with the machine they ran on."""
    lines = [
        f"machine: {platform.machine()}, {_cpus()} CPUs, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}; {sessions} concurrent sessions (half handshake era, half 2026-07-28)",
        "",
        "| run | tool calls | seconds | calls/s | p50 ms | p99 ms | exceptions | tool errors | dispatches (outcome) "
        "| server RSS at 10% → 50% → 100% (MiB) | ledger vs sandbox |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        f, led = run.figures, run.ledger
        every = f.all_latencies()
        (_, warm), (_, half), (_, end) = f.rss_mib[0], f.rss_mib[len(f.rss_mib) // 2], f.rss_mib[-1]
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(f.dispatches.items()))
        consistent = (
            led["intents"] == led["previews"] and led["duplicate_intents"] == 0 and led["numbers_posted_twice"] == 0
            and led["left_mid_dial"] == 0 and led["dialed_equals_created"] and led["distinct_call_ids"]
        )  # fmt: skip
        verdict = (
            f"{'consistent' if consistent else 'INCONSISTENT'}: "
            f"{led['intents']} intents for {led['previews']} previews "
            f"{led['states']}, {led['posts']} POST /calls, {led['created']} created, {led['numbers_posted_twice']} "
            f"numbers posted twice, {led['left_mid_dial']} left mid-dial"
        )
        lines.append(
            f"| {run.label} | {f.done} | {run.seconds:.1f} | {f.done / run.seconds:.0f} | {percentile(every, 50):.0f} "
            f"| {percentile(every, 99):.0f} | {len(f.failures)} | {sum(f.tool_errors.values())} "
            f"{dict(f.tool_errors) or ''} | {outcomes} | {warm:.0f} → {half:.0f} → {end:.0f} | {verdict} |"
        )
    for run in runs:
        for failure in run.figures.failures[:5]:
            lines.append(f"\n{run.label} exception: {failure}")
    return "\n".join(lines)


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


def main(argv: list[str] | None = None) -> int:
    """Run both load runs and print the table."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == [SANDBOX_FLAG]:
        serve_sandbox(float(args[1]), int(args[2]))
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--calls", type=int, default=10_000, help="tool calls per run")
    parser.add_argument("--dispatch-share", type=float, default=0.2, help="share of tool calls that are dispatch_call")
    parser.add_argument("--quick", action="store_true", help="10 sessions, 1,000 calls: a smoke run")
    parser.add_argument("--clean-only", action="store_true", help="skip the run with 502s (for long soak runs)")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw figures here")
    parser.add_argument(
        "--replicas", type=int, default=1, help="server processes sharing the ledger (needs --database-url past 1)"
    )
    parser.add_argument(
        "--database-url", default=None, help="postgresql://...: the ledger in PostgreSQL, a fresh schema per run"
    )
    options = parser.parse_args(args)
    if options.replicas > 1 and options.database_url is None:
        parser.error("--replicas past 1 needs --database-url: replicas share a PostgreSQL ledger")
    sessions, calls = (10, 1_000) if options.quick else (options.sessions, options.calls)
    shared = {"replicas": options.replicas, "database_url": options.database_url}
    where = "" if options.database_url is None else f", {options.replicas} replica(s) on PostgreSQL"
    runs = [run_once(f"clean upstream{where}", 0.0, sessions, calls, options.dispatch_share, **shared)]
    if not options.clean_only:
        runs.append(
            run_once(f"5% of upstream requests 502{where}", 0.05, sessions, calls, options.dispatch_share, **shared)
        )
    print(report(runs, sessions))
    if options.json is not None:
        options.json.write_text(json.dumps([_raw(run) for run in runs], indent=2))
    ok = all(not run.figures.failures and run.ledger["left_mid_dial"] == 0 and run.ledger["numbers_posted_twice"] == 0
             and run.ledger["intents"] == run.ledger["previews"] for run in runs)  # fmt: skip
    return 0 if ok else 1


def _raw(run: Run) -> dict[str, Any]:
    every = run.figures.all_latencies()
    return {
        "label": run.label, "fail_rate": run.fail_rate, "seconds": run.seconds, "calls": run.figures.done,
        "p50_ms": percentile(every, 50), "p99_ms": percentile(every, 99), "exceptions": run.figures.failures,
        "tool_errors": dict(run.figures.tool_errors), "dispatches": dict(run.figures.dispatches),
        "rss_mib": run.figures.rss_mib, "ledger": run.ledger,
        "per_tool_p50_ms": {name: percentile(v, 50) for name, v in run.figures.latencies_ms.items()},
    }  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
