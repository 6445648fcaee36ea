"""The streamable-HTTP part of the report: ours and the floor under the same concurrent load."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio

from bench.http_reads import HttpFigures, HttpServer, free_port, run_clients
from bench.report import Row, Table
from bench.stats import percentile, ratio
from bench.stdio_rpc import cpu_ms

__all__ = ["TARGET_HTTP", "HttpSide", "http_table"]

TARGET_HTTP = 0.8


@dataclass
class HttpSide:
    """One server under load: how to start it, what each session calls, and what it measured."""

    argv: Callable[[int], list[str]]
    env: dict[str, str]
    tool: str
    arguments: dict[str, Any]
    expect_error: bool = False
    runs: list[HttpFigures] = field(default_factory=list)
    cpu_ms: float = 0.0

    def run(self, *, clients: int, seconds: float) -> None:
        """Start the server, load it for `seconds`, and keep the figures and the server's CPU."""
        port = free_port()
        with HttpServer(self.argv(port), port, env=self.env) as server:
            started = cpu_ms(server.process.pid)
            figures = anyio.run(
                lambda: run_clients(
                    server.url,
                    self.tool,
                    self.arguments,
                    clients=clients,
                    seconds=seconds,
                    expect_error=self.expect_error,
                )
            )
            self.cpu_ms += cpu_ms(server.process.pid) - started
        self.runs.append(figures)

    @property
    def latencies(self) -> list[float]:
        """Every completed call's latency, all rounds."""
        return [x for run in self.runs for x in run.latencies_ms]

    @property
    def throughput(self) -> float:
        """Completed calls per second over all rounds."""
        seconds = sum(run.seconds for run in self.runs)
        return len(self.latencies) / seconds if seconds else 0.0

    @property
    def errors(self) -> int:
        """Failed calls, all rounds."""
        return sum(run.errors for run in self.runs)

    def errors_shown(self) -> str:
        """The count, and the first failure's description."""
        why = next((run.first_error for run in self.runs if run.first_error), None)
        return f"{self.errors}" + (f" ({why[:120]})" if why else "")

    def cpu_per_call(self) -> float:
        """Server CPU per completed call, in ms (warm-up included, so slightly high)."""
        done = len(self.latencies)
        return self.cpu_ms / done if done else 0.0

    def latency_shown(self) -> str:
        """p50 / p99 in ms."""
        lat = self.latencies
        return f"{percentile(lat, 50):.1f} / {percentile(lat, 99):.1f}" if lat else "-"


def http_table(sides: dict[str, HttpSide], *, clients: int, seconds: float, progress: Callable[[str], None]) -> str:
    """Load `ours`, `floor` and `ours_local` in two interleaved rounds; one table."""
    for round_no, order in enumerate((("floor", "ours", "ours_local"), ("ours_local", "ours", "floor"))):
        for name in order:
            share = seconds / 2 if name != "ours_local" else seconds / 4
            progress(f"HTTP round {round_no + 1}/2: {name}, {share:g} s")
            sides[name].run(clients=clients, seconds=share)
    ours, floor, local = sides["ours"], sides["floor"], sides["ours_local"]
    table = Table(f"streamable HTTP, {clients} concurrent sessions (2025-11-25), uvicorn on loopback")
    r = ratio(ours.throughput, floor.throughput)
    table.add(
        Row(
            "reads per second (ours get_balance, floor echo)",
            f"{ours.throughput:,.0f}",
            f"{floor.throughput:,.0f}",
            r,
            f">= {TARGET_HTTP:.2f}x",
            None if r is None else r >= TARGET_HTTP,
        )
    )
    table.add(
        Row(
            "latency p50 / p99 (ms)",
            ours.latency_shown(),
            floor.latency_shown(),
            ratio(percentile(ours.latencies, 50), percentile(floor.latencies, 50))
            if ours.latencies and floor.latencies
            else None,
        )
    )
    table.add(
        Row(
            "server CPU per call (ms)",
            f"{ours.cpu_per_call():.2f}",
            f"{floor.cpu_per_call():.2f}",
            ratio(ours.cpu_per_call(), floor.cpu_per_call()),
        )
    )
    table.add(Row("errors", ours.errors_shown(), floor.errors_shown(), None, "0", ours.errors == 0))
    table.add(
        Row(
            "ours, a call refused before any API request: calls per second; CPU per call (ms)",
            f"{local.throughput:,.0f}; {local.cpu_per_call():.2f}",
            f"{floor.throughput:,.0f}; {floor.cpu_per_call():.2f}",
            ratio(local.throughput, floor.throughput),
        )
    )
    return table.render()
