"""`python -m bench [--quick]`: our server against the floor, side by side, one table on stdout."""

from __future__ import annotations

import argparse
import compileall
import os
import platform
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench.http_table import HttpSide, http_table
from bench.inside import InsideFigures, measure_inside
from bench.peers import find_peers, measure_peer_startups
from bench.report import Row, Table, latency_row, served_read_row, spread_row
from bench.startup import measure_startup
from bench.stats import paired_ratio, percentile, ratio
from bench.stdio_rpc import LEGACY, MODERN, StdioServer, child_env
from bench.tool_calls import RunFigures, measure_tool_calls
from bench.upstream import Upstream

ROOT = Path(__file__).resolve().parent.parent
OURS = [sys.executable, "-m", "outboundcalls_mcp.server"]
FLOOR = [sys.executable, "-m", "bench.floor_server"]
FLOOR_READ = [sys.executable, "-m", "bench.floor_read_server"]
# A policy that refuses nothing the benchmark does, so every dispatch is dialed.
PERMISSIVE = {
    "OUTBOUNDCALLS_CALLING_HOURS": "00:00-24:00",
    "OUTBOUNDCALLS_REDIAL_COOLDOWN_MINUTES": "0",
    "OUTBOUNDCALLS_MAX_CALLS_PER_DAY": "1000000",
    "OUTBOUNDCALLS_MAX_CREDITS_PER_DAY": "1000000000",
}
TARGET_SPAWN = 1.10
TARGET_BYTES_PER_TOOL = 700
TARGET_MODEL_BYTES_PER_TOOL = 400
TARGET_LIST_CALLS_BYTES_PER_CALL = 200
TARGET_RSS = 1.15
# The fewest upstream requests each call needs: one read; a preview reads the agent and the
# balance; a confirmation only posts the call (its pre-flight reads are reused).
MINIMUM_UPSTREAM = {
    "get_balance": 1,
    "list_calls (20)": 1,
    "list_calls (200)": 1,
    "get_call (long transcript)": 1,
    "preview": 2,
    "confirm": 1,
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds and a 5 s HTTP window (about a minute)")
    parser.add_argument("--rounds", type=int, default=None, help="spawn rounds per side and era (default 20; quick 3)")
    parser.add_argument("--call-rounds", type=int, default=None, help="tool-call rounds (default 5; quick 2)")
    parser.add_argument("--calls", type=int, default=None, help="calls per tool per round (default 40; quick 15)")
    parser.add_argument(
        "--dispatches", type=int, default=None, help="confirmed dispatches per round (default 8; quick 4)"
    )
    parser.add_argument("--http-seconds", type=float, default=None, help="HTTP window per side (default 30; quick 5)")
    parser.add_argument("--clients", type=int, default=50, help="concurrent HTTP clients (default 50)")
    parser.add_argument("--no-http", action="store_true", help="skip the HTTP load")
    parser.add_argument("--no-peers", action="store_true", help="skip other vendors' servers even when installed")
    return parser


def _pick(value: int | float | None, full: float, quick: float, is_quick: bool) -> float:
    return value if value is not None else (quick if is_quick else full)


def _progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _machine() -> str:
    """CPUs, CPU model, memory and Python, for the report's header."""
    cpu, memory = "unknown CPU", "unknown memory"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        total = next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
        memory = f"{int(total.split()[1]) / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    return f"{os.cpu_count()} CPUs ({cpu}), {memory}, Python {platform.python_version()}, {platform.system()}"


def main(argv: list[str] | None = None) -> int:
    """Run every measurement and print the table."""
    args = _parser().parse_args(argv)
    q = args.quick
    rounds = int(_pick(args.rounds, 20, 3, q))
    call_rounds = int(_pick(args.call_rounds, 5, 2, q))
    calls = int(_pick(args.calls, 40, 15, q))
    dispatches = int(_pick(args.dispatches, 8, 4, q))
    http_seconds = float(_pick(args.http_seconds, 30, 5, q))
    # Installed packages come with bytecode (pip compiles it); give our sources the same footing.
    for package in ("server", "tools", "outboundcalls", "bench"):
        compileall.compile_dir(ROOT / package, quiet=1)
    started = datetime.now(UTC)
    tables: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-state-") as state_dir, Upstream() as upstream:
        env = child_env({**upstream.server_env(), **PERMISSIVE, "OUTBOUNDCALLS_STATE_DIR": state_dir})
        floor_env = child_env()

        def ours(era: str) -> StdioServer:
            return StdioServer(OURS, era=era, env=env, cwd=str(ROOT))

        def floor(era: str) -> StdioServer:
            return StdioServer(FLOOR, era=era, env=floor_env, cwd=str(ROOT))

        _progress(f"sandbox at {upstream.base_url}; spawning each side {rounds}x per era")
        startup = measure_startup({"ours": ours, "floor": floor}, rounds, progress=_progress)
        _progress(f"tool calls: {call_rounds} rounds of {calls} calls per tool, {dispatches} dispatches")
        read_env = child_env({"BENCH_API_KEY": upstream.api_key})
        with (
            ours(LEGACY) as our_server,
            floor(LEGACY) as floor_server,
            StdioServer([*FLOOR_READ, upstream.base_url], env=read_env, cwd=str(ROOT)) as floor_read,
        ):
            run = measure_tool_calls(
                our_server,
                floor_server,
                upstream,
                floor_read=floor_read,
                rounds=call_rounds,
                calls_per_round=calls,
                dispatches_per_round=dispatches,
                progress=_progress,
            )
        _progress("inside the server: timers around each tool and each upstream request")
        inside = measure_inside(env, str(ROOT), _inside_calls(), repeat=calls)
        tables.append(_stdio_table(startup, run, inside))
        tables.append(_listing_table(startup["ours"].listing))
        if not args.no_http:
            # All sessions come from 127.0.0.1, which the per-address rate limit would count as one client.
            http_env = {**env, "OUTBOUNDCALLS_HTTP_RATE_LIMIT": "0"}

            def serve_ours(port: int) -> list[str]:
                return [*OURS, "--transport", "http", "--port", str(port)]

            sides = {
                "ours": HttpSide(serve_ours, http_env, "get_balance", {}),
                "floor": HttpSide(lambda port: [*FLOOR, "--http", str(port)], floor_env, "echo", {"text": "hello"}),
                # The same server, answering without the API: what the transport alone costs us.
                "ours_local": HttpSide(serve_ours, http_env, "get_call", {"call_id": "not/an/id"}, expect_error=True),
            }
            tables.append(http_table(sides, clients=args.clients, seconds=http_seconds, progress=_progress))
        if not args.no_peers:
            # As many rounds as the spawn phase: the lead over a peer is a difference of two noisy
            # medians, and ten rounds moved it by up to 9 points between runs of the same code.
            tables.append(_peers_table(ours, floor, rounds))
    print(f"## python -m bench{' --quick' if q else ''}: {started:%Y-%m-%d %H:%M} UTC\n")
    print(f"Machine: {_machine()}")
    print(
        f"Rounds: {rounds} spawns per side and era; {call_rounds} x {calls} calls per tool; "
        f"{call_rounds * dispatches} confirmed dispatches; HTTP {http_seconds:g} s per side, {args.clients} clients.\n"
    )
    print("\n\n".join(tables))
    return 0


def _inside_calls() -> list[tuple[str, dict[str, object]]]:
    from outboundcalls.sandbox import Sandbox

    ids = Sandbox(seed=0).seed_ids
    return [
        ("get_balance", {}),
        ("list_calls", {"limit": 20}),
        ("list_calls", {"limit": 200}),
        ("get_call", {"call_id": ids.long_transcript_call_id}),
    ]


def _stdio_table(startup: dict, run: RunFigures, inside: InsideFigures) -> str:
    table = Table(
        "stdio (ours = `python -m outboundcalls_mcp.server` against the sandbox on a loopback socket; "
        "floor = bench/floor_server.py)"
    )
    for era, first in ((LEGACY, "initialize"), (MODERN, "server/discover")):
        o, f = startup["ours"], startup["floor"]
        table.add(spread_row(f"spawn -> {first} [{era}]", o.first_answer[era], f.first_answer[era]))
        table.add(
            spread_row(f"spawn -> tools/list [{era}]", o.tools_list[era], f.tools_list[era], max_ratio=TARGET_SPAWN)
        )
        table.add(spread_row(f"  server CPU until tools/list [{era}]", o.tools_list_cpu[era], f.tools_list_cpu[era]))
    ol, fl = startup["ours"].listing, startup["floor"].listing
    table.add(Row("tools/list bytes (tools)", f"{ol.total:,} ({ol.tools})", f"{fl.total:,} ({fl.tools})"))
    table.add(
        Row(
            "tools/list bytes per tool",
            f"{ol.total / ol.tools:.0f}",
            f"{fl.total / fl.tools:.0f}",
            ratio(ol.total / ol.tools, fl.total / fl.tools),
            f"<= {TARGET_BYTES_PER_TOOL}",
            ol.total / ol.tools <= TARGET_BYTES_PER_TOOL,
        )
    )
    table.add(
        Row(
            "  what the model reads (name, description, inputSchema) per tool",
            f"{ol.model / ol.tools:.0f}",
            f"{fl.model / fl.tools:.0f}",
            None,
            f"<= {TARGET_MODEL_BYTES_PER_TOOL}",
            ol.model / ol.tools <= TARGET_MODEL_BYTES_PER_TOOL,
        )
    )
    table.add(
        Row("  the rest (outputSchema, annotations) per tool", f"{ol.rest / ol.tools:.0f}", f"{fl.rest / fl.tools:.0f}")
    )
    # Not a target: how much of the output schemas reaching the target per tool would have to go.
    table.add(
        Row(
            "  per tool if every outputSchema named only its required properties",
            f"{ol.required_only / ol.tools:.0f}",
            f"{fl.required_only / fl.tools:.0f}",
        )
    )
    table.add(
        Row(
            "tools with outputSchema / annotations",
            f"{ol.output_schemas}/{ol.tools} / {ol.annotated}/{ol.tools}",
            f"{fl.output_schemas}/{fl.tools} / {fl.annotated}/{fl.tools}",
        )
    )
    echo = run.calls["echo"].latencies_ms
    echo50 = percentile(echo, 50)
    for key, label in (
        ("get_balance", "get_balance"),
        ("list_calls (20)", "list_calls (20)"),
        ("list_calls (200)", "list_calls (200)"),
        ("get_call (long transcript)", "get_call (200 turns)"),
        ("preview", "dispatch_call preview"),
        ("confirm", "dispatch_call confirmed"),
    ):
        fig = run.calls[key]
        table.add(latency_row(label, fig.latencies_ms, echo, fig.round_trip_ms or None))
        if fig.minimal_read_ms:
            table.add(served_read_row(label, fig.latencies_ms, echo, fig.minimal_read_ms))
        if fig.structured_floor_ms is not None:
            # The target allows one echo over that minimal server's read; this much of it is spoken for.
            table.add(
                Row(
                    f"  {label}: the least a structured answer adds to it (decode + the SDK's passes, hot loop)",
                    f"{fig.structured_floor_ms:.2f}",
                    f"echo {echo50:.2f}",
                    ratio(fig.structured_floor_ms, echo50),
                )
            )
    firsts = [(fig.label, fig.first_ms) for key, fig in run.calls.items() if key != "echo" and fig.first_ms is not None]
    if firsts:
        # The first tool pays for the HTTP stack, the first dispatch for the number metadata: start-up work
        # left for first use, once per process.
        table.add(
            Row(
                "first call after spawn, in this order (ms): " + ", ".join(label for label, _ in firsts),
                ", ".join(f"{ms:.1f}" for _, ms in firsts),
                f"echo {run.calls['echo'].first_ms or 0:.1f}",
            )
        )
    for label in ("get_balance", "list_calls (20)", "list_calls (200)", "get_call"):
        if label in inside:
            tool, up, own = inside[label]
            table.add(
                Row(
                    f"{label}: inside the server p50, tool / upstream request / our code (ms)",
                    f"{tool:.2f} / {up:.2f} / {own:.2f}",
                    f"echo {echo50:.2f}",
                    ratio(own, echo50),
                    f"our code <= {echo50:.2f} (the floor's echo)",
                    own <= echo50,
                )
            )
    echo_cpu = run.calls["echo"].cpu_per_call
    for key, fig in run.calls.items():
        if key != "echo":
            table.add(
                Row(
                    f"{fig.label}: server CPU per call (ms)",
                    f"{fig.cpu_per_call:.2f}",
                    f"{echo_cpu:.2f}",
                    ratio(fig.cpu_per_call, echo_cpu),
                )
            )
    for key, fig in run.calls.items():
        if key == "echo":
            continue
        per_call = max(fig.upstream) if fig.upstream else 0
        paths = ", ".join(fig.upstream_paths)
        minimum = MINIMUM_UPSTREAM[key]
        table.add(
            Row(
                f"{fig.label}: upstream requests per call (most seen)",
                f"{per_call} ({paths})",
                "",
                None,
                f"<= {minimum}",
                per_call <= minimum,
            )
        )
    for key in ("list_calls (20)", "list_calls (200)", "get_call (long transcript)"):
        fig = run.calls[key]
        if fig.items:
            target = f"<= {TARGET_LIST_CALLS_BYTES_PER_CALL}" if fig.item_kind == "call" else ""
            per_item = fig.text_bytes / fig.items
            table.add(
                Row(
                    f"{fig.label}: result bytes per {fig.item_kind} (text the model reads; whole answer)",
                    f"{per_item:.0f}; {fig.wire_bytes / fig.items:.0f}",
                    "",
                    None,
                    target,
                    per_item <= TARGET_LIST_CALLS_BYTES_PER_CALL if target else None,
                )
            )
    errors = sum(fig.errors for fig in run.calls.values())
    table.add(Row("tool errors during the run", str(errors), "", None, "0", errors == 0))
    rss_o, rss_f = run.peak_rss_mib["ours"], run.peak_rss_mib["floor"]
    r = ratio(rss_o, rss_f)
    # The ratio also to four places: it sits within a few thousandths of its target, where the
    # table's two-place ratio reads "1.15x" either side of it.
    exact = "" if r is None else f" ({r:.4f}x)"
    table.add(
        Row(
            "peak RSS after the run (MiB, VmHWM)",
            f"{rss_o or 0:.2f}{exact}",
            f"{rss_f or 0:.2f}",
            r,
            f"<= {TARGET_RSS:.2f}x",
            None if r is None else r <= TARGET_RSS,
        )
    )
    return table.render()


def _listing_table(listing) -> str:
    lines = ["### tools/list bytes per tool (ours)", "", "| tool | bytes |", "|---|---|"]
    lines += [f"| {name} | {size:,} |" for name, size in listing.per_tool.items()]
    return "\n".join(lines)


def _peer_side(argv: list[str], env: dict[str, str]) -> Callable[[], StdioServer]:
    """A peer's side of the startup race: a fresh server with this command and these extra variables."""
    return lambda: StdioServer(argv, env=child_env(env))


def _peers_table(ours: Callable[[str], StdioServer], floor: Callable[[str], StdioServer], rounds: int) -> str:
    sides: dict[str, Callable[[], StdioServer]] = {"ours": lambda: ours(LEGACY), "floor": lambda: floor(LEGACY)}
    notes = []
    for peer in find_peers():
        if peer.argv is None:
            notes.append(f"- {peer.name} skipped: {peer.missing}")
        else:
            sides[peer.name] = _peer_side(peer.argv, peer.env)
    measured = measure_peer_startups(sides, rounds, progress=_progress)
    ours50 = percentile(measured["ours"].times_ms, 50)
    lines = [
        f"### peers (stdio, 2025-11-25, a dummy key and no network; "
        f"{rounds} interleaved rounds with ours and the floor)",
        "",
        "| server | spawn -> tools/list (ms) | ours / it | ours / it, paired | tools/list bytes | bytes/tool "
        "| outputSchema | annotations | peak RSS at tools/list (MiB) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, found in measured.items():
        if found.failure or found.listing is None:
            notes.append(f"- {name} {found.failure or 'listed no tools'}")
            continue
        ls, median = found.listing, percentile(found.times_ms, 50)
        paired = paired_ratio(measured["ours"].times_ms, found.times_ms)
        shown_paired = "" if paired is None else f"{paired:.2f}x"
        lines.append(
            f"| {name} | {median:,.0f} | {ours50 / median:.2f}x | {shown_paired} | {ls.total:,} "
            f"| {ls.total / ls.tools:,.0f} | "
            f"{ls.output_schemas}/{ls.tools} | {ls.annotated}/{ls.tools} | {found.rss_mib:.1f} |"
        )
    return "\n".join([*lines, "", *notes])


if __name__ == "__main__":
    sys.exit(main())
