"""A call's time inside our server, split into the upstream request and our own code."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.stats import percentile
from bench.stdio_rpc import StdioServer

__all__ = ["InsideFigures", "measure_inside"]

# label -> (tool p50, upstream p50, ours p50) in ms, ours being the tool's time minus its requests
InsideFigures = dict[str, tuple[float, float, float]]


def measure_inside(
    env: dict[str, str], cwd: str, calls: list[tuple[str, dict[str, Any]]], repeat: int
) -> InsideFigures:
    """Run each read `repeat` times on the instrumented server (`bench.inside_server`) and read its timers."""
    # Reads only: a dispatch's pre-flight reads run outside the tool call's context, so the timers
    # would count them as our code.
    with tempfile.TemporaryDirectory(prefix="bench-inside-") as scratch:
        out = Path(scratch) / "timings.json"
        server = StdioServer(
            [sys.executable, "-m", "bench.inside_server"], env={**env, "BENCH_INSIDE_OUT": str(out)}, cwd=cwd
        )
        with server:
            server.handshake().result  # noqa: B018  # raises on a JSON-RPC error
            for _ in range(repeat):
                for name, arguments in calls:
                    server.call_tool(name, arguments).result  # noqa: B018  # raises on a JSON-RPC error
        timings: dict[str, list[list[float]]] = json.loads(out.read_text())
    figures: InsideFigures = {}
    for label, samples in timings.items():
        figures[label] = (
            percentile([tool for tool, _ in samples], 50),
            percentile([upstream for _, upstream in samples], 50),
            percentile([tool - upstream for tool, upstream in samples], 50),
        )
    return figures
