"""Per-tool latency over stdio against the sandbox on a loopback socket; upstream requests; result sizes."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from bench.result_floor import structured_floor_ms
from bench.stdio_rpc import Reply, StdioServer, cpu_ms
from bench.upstream import Upstream

__all__ = ["CallFigures", "RunFigures", "measure_tool_calls"]

ECHO = "echo"
WARMUP_CALLS = 5
WARMUP_DISPATCHES = 2


@dataclass
class CallFigures:
    """One kind of call: its latencies, its upstream cost, and the size of what it returned."""

    label: str
    latencies_ms: list[float] = field(default_factory=list)
    upstream: list[int] = field(default_factory=list)  # API requests per call
    upstream_paths: list[str] = field(default_factory=list)  # of the first call
    wire_bytes: int = 0  # the whole JSON-RPC answer
    text_bytes: int = 0  # the text block, which is what a host shows the model
    items: int | None = None  # calls listed, or transcript turns returned
    item_kind: str = ""
    round_trip_ms: list[float] = field(default_factory=list)  # the same upstream request, sent directly
    minimal_read_ms: list[float] = field(default_factory=list)  # the same request from a minimal MCPServer's tool
    errors: int = 0
    cpu_ms: float = 0.0  # server CPU over all calls (robust to load, unlike wall time)
    first_ms: float | None = None  # the first call after spawn, before any warm-up (not in latencies_ms)
    result: dict[str, Any] | None = None  # the first timed call's result, as received
    structured_floor_ms: float | None = None  # see bench.result_floor: the least a structured answer adds

    @property
    def cpu_per_call(self) -> float:
        """Server CPU per call, in ms."""
        return self.cpu_ms / len(self.latencies_ms) if self.latencies_ms else 0.0


@dataclass
class RunFigures:
    """Everything one latency run measured, per side."""

    calls: dict[str, CallFigures]
    peak_rss_mib: dict[str, float | None]


def _text(reply: Reply) -> str:
    blocks = reply.result.get("content") or []
    return "".join(block.get("text", "") for block in blocks if block.get("type") == "text")


def _record(figures: CallFigures, reply: Reply, upstream: Upstream | None, before: int) -> dict[str, Any]:
    figures.latencies_ms.append(reply.seconds * 1000)
    result = reply.result
    if result.get("isError"):
        figures.errors += 1
    if upstream is not None:
        if not figures.upstream_paths and not figures.upstream:
            figures.upstream_paths = upstream.requests_since(before)
        figures.upstream.append(upstream.request_count() - before)
    if not figures.wire_bytes:
        figures.result = result
        figures.wire_bytes = reply.raw_bytes
        figures.text_bytes = len(_text(reply).encode())
    structured: dict[str, Any] = result.get("structuredContent") or {}
    return structured


@dataclass
class _Case:
    label: str
    tool: str
    arguments: dict[str, Any]
    items: Callable[[dict[str, Any]], int | None] = lambda _: None
    item_kind: str = ""
    direct: tuple[str, dict[str, str] | None] | None = None


def _cases(ids: Any) -> list[_Case]:
    long_call = ids.long_transcript_call_id
    return [
        _Case("get_balance", "get_balance", {}, direct=("/me", None)),
        _Case(
            "list_calls (20)",
            "list_calls",
            {"limit": 20},
            lambda s: len(s.get("calls", [])),
            "call",
            ("/calls", {"limit": "20"}),
        ),
        _Case(
            "list_calls (200)",
            "list_calls",
            {"limit": 200},
            lambda s: len(s.get("calls", [])),
            "call",
            ("/calls", {"limit": "200"}),
        ),
        _Case(
            "get_call (long transcript)",
            "get_call",
            {"call_id": long_call},
            lambda s: len(s.get("transcript") or []),
            "turn",
            (f"/calls/{long_call}", None),
        ),
    ]


def _dial_args(agent_id: str, dial_no: int) -> dict[str, Any]:
    return {"agent_id": agent_id, "to_number": f"+1415555{dial_no % 10000:04d}"}


def _preview_token(structured: dict[str, Any]) -> str:
    token: str | None = (structured.get("preview") or {}).get("confirmation_token")
    if not token:
        raise RuntimeError(f"dispatch_call gave no preview token: {json.dumps(structured)[:300]}")
    return token


def _check_dialed(structured: dict[str, Any]) -> None:
    if structured.get("status") != "dialed":
        raise RuntimeError(f"the confirmed dispatch did not dial: {json.dumps(structured)[:300]}")


def _dispatch(server: StdioServer, agent_id: str, dial_no: int, upstream: Upstream) -> list[tuple[Reply, list[str]]]:
    """A preview and its confirmation by token, each with the API requests it made (for warm-up)."""
    args = _dial_args(agent_id, dial_no)
    before = upstream.request_count()
    shown = server.call_tool("dispatch_call", args)
    shown_sent = upstream.requests_since(before)
    token = _preview_token(shown.result.get("structuredContent") or {})
    before = upstream.request_count()
    done = server.call_tool("dispatch_call", {**args, "confirmation_token": token})
    _check_dialed(done.result.get("structuredContent") or {})
    return [(shown, shown_sent), (done, upstream.requests_since(before))]


def measure_tool_calls(
    ours: StdioServer,
    floor: StdioServer,
    upstream: Upstream,
    *,
    floor_read: StdioServer | None = None,
    rounds: int,
    calls_per_round: int,
    dispatches_per_round: int,
    progress: Callable[[str], None],
) -> RunFigures:
    """Interleave rounds of the floor's echo and each of our tools; both servers stay up throughout."""
    from outboundcalls.sandbox import Sandbox

    ids = Sandbox(seed=0).seed_ids  # the standalone sandbox is seeded the same way (seed 0)
    cases = _cases(ids)
    echo = CallFigures("echo (floor)")
    figures = {case.label: CallFigures(case.label, item_kind=case.item_kind) for case in cases}
    preview = CallFigures("dispatch_call preview")
    confirm = CallFigures("dispatch_call confirmed")
    for server in (ours, floor, *([floor_read] if floor_read else [])):
        server.handshake().result  # noqa: B018  # raises on a JSON-RPC error
        server.request("tools/list").result  # noqa: B018  # raises on a JSON-RPC error
    # What a host waits for on its first call of each kind: the work left out of start-up (the HTTP
    # stack, number metadata, validators built on first use) is paid here, once per process.
    echo.first_ms = floor.call_tool(ECHO, {"text": "hello"}).seconds * 1000
    for case in cases:
        figures[case.label].first_ms = ours.call_tool(case.tool, case.arguments).seconds * 1000
    dial_no = 0
    for warm in range(WARMUP_DISPATCHES):
        dial_no += 1
        steps = _dispatch(ours, ids.deployed_agent_id, dial_no, upstream)
        if warm == 0:
            for fig, (reply, sent) in zip((preview, confirm), steps, strict=True):
                fig.first_ms = reply.seconds * 1000
                # Pre-flight reads are cached briefly: only the first preview shows what one needs
                # upstream; the timed previews that follow within the cache's life read nothing.
                fig.upstream_paths, fig.upstream = sent, [len(sent)]
    for _ in range(WARMUP_CALLS):
        floor.call_tool(ECHO, {"text": "hello"})
        if floor_read is not None:
            floor_read.call_tool("read", {"path": "/me"})
        for case in cases:
            ours.call_tool(case.tool, case.arguments)
    for round_no in range(rounds):
        cpu = cpu_ms(floor.pid)
        for _ in range(calls_per_round):
            _record(echo, floor.call_tool(ECHO, {"text": "hello"}), None, 0)
        echo.cpu_ms += cpu_ms(floor.pid) - cpu
        for case in cases:
            fig = figures[case.label]
            if case.direct is not None:
                # Sampled in every round, next to the calls, so both see the same load on the machine.
                path, params = case.direct
                fig.round_trip_ms += upstream.round_trip_ms(path, params, samples=calls_per_round)
                if floor_read is not None:
                    # The same GET as the last step of a tool call on a server that sat idle in between,
                    # which is how our server sends it; a back-to-back loop keeps every process hot.
                    target = f"{path}?{urlencode(params)}" if params else path
                    for _ in range(calls_per_round):
                        fig.minimal_read_ms.append(floor_read.call_tool("read", {"path": target}).seconds * 1000)
            cpu = cpu_ms(ours.pid)
            for _ in range(calls_per_round):
                before = upstream.request_count()
                structured = _record(fig, ours.call_tool(case.tool, case.arguments), upstream, before)
                if fig.items is None:
                    fig.items = case.items(structured)
            fig.cpu_ms += cpu_ms(ours.pid) - cpu
        for _ in range(dispatches_per_round):
            dial_no += 1
            args = _dial_args(ids.deployed_agent_id, dial_no)
            before, cpu = upstream.request_count(), cpu_ms(ours.pid)
            shown = _record(preview, ours.call_tool("dispatch_call", args), upstream, before)
            preview.cpu_ms += cpu_ms(ours.pid) - cpu
            token = _preview_token(shown)
            before, cpu = upstream.request_count(), cpu_ms(ours.pid)
            done = _record(
                confirm, ours.call_tool("dispatch_call", {**args, "confirmation_token": token}), upstream, before
            )
            confirm.cpu_ms += cpu_ms(ours.pid) - cpu
            _check_dialed(done)
        progress(f"tool-call round {round_no + 1}/{rounds}")
    rss = {"ours": ours.peak_rss_mib(), "floor": floor.peak_rss_mib()}
    for case in cases:
        fig = figures[case.label]
        if case.direct is not None and fig.result is not None and fig.result.get("structuredContent"):
            fig.structured_floor_ms = structured_floor_ms(upstream.body(*case.direct), fig.result["structuredContent"])
    return RunFigures(calls={"echo": echo, **figures, "preview": preview, "confirm": confirm}, peak_rss_mib=rss)
