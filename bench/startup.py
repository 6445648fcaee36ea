"""Spawn -> first answer and spawn -> tools/list over stdio, both eras; what tools/list costs in bytes."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.stdio_rpc import LEGACY, MODERN, StdioServer, cpu_ms, peak_rss_mib

__all__ = ["ListingSize", "StartupTimes", "listing_size", "measure_startup"]

ERAS = (LEGACY, MODERN)
MODEL_KEYS = ("name", "description", "inputSchema")


def _size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


@dataclass(frozen=True)
class ListingSize:
    """tools/list in bytes: all of it, and the part a host puts in the model's context."""

    tools: int
    total: int
    model: int  # name, description, inputSchema
    output_schemas: int
    annotated: int
    per_tool: dict[str, int]
    # All of it again with each outputSchema cut to the properties marked required, at every level:
    # how far output schemas that name only what is always present would bring the total down.
    required_only: int = 0

    @property
    def rest(self) -> int:
        """outputSchema, annotations and anything else a host keeps for itself."""
        return self.total - self.model


def _required_only(schema: Any) -> Any:
    """The schema with only its required properties, recursively."""
    if isinstance(schema, list):
        return [_required_only(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    kept = set(schema.get("required") or ())
    return {
        key: (
            {name: _required_only(sub) for name, sub in value.items() if name in kept}
            if key == "properties" and isinstance(value, dict)
            else _required_only(value)
        )
        for key, value in schema.items()
    }


def listing_size(tools: Sequence[dict[str, Any]]) -> ListingSize:
    """Measure a tools/list result's tool array, each tool as sent (compact JSON)."""
    per_tool = {tool["name"]: _size(tool) for tool in tools}
    model = sum(_size({k: tool[k] for k in MODEL_KEYS if k in tool}) for tool in tools)
    return ListingSize(
        tools=len(tools),
        total=sum(per_tool.values()),
        model=model,
        output_schemas=sum(1 for tool in tools if tool.get("outputSchema")),
        annotated=sum(1 for tool in tools if tool.get("annotations")),
        per_tool=per_tool,
        required_only=sum(
            _size({**tool, "outputSchema": _required_only(tool["outputSchema"])} if "outputSchema" in tool else tool)
            for tool in tools
        ),
    )


@dataclass
class StartupTimes:
    """Milliseconds from spawn, per era, one entry per round."""

    first_answer: dict[str, list[float]] = field(default_factory=lambda: {era: [] for era in ERAS})
    tools_list: dict[str, list[float]] = field(default_factory=lambda: {era: [] for era in ERAS})
    # CPU the server used until it answered tools/list: the work itself, much less disturbed by load.
    tools_list_cpu: dict[str, list[float]] = field(default_factory=lambda: {era: [] for era in ERAS})
    rss_at_list: list[float] = field(default_factory=list)  # VmHWM (MiB) when tools/list was answered
    listing: ListingSize | None = None


def spawn_once(server: StdioServer) -> tuple[float, float, float, float, list[dict[str, Any]]]:
    """(spawn -> handshake answer, spawn -> tools/list answer, CPU until then) in ms, peak RSS, and the tools."""
    with server:
        first = server.handshake()
        first.result  # noqa: B018  # raises on a JSON-RPC error
        listed = server.request("tools/list")
        cpu = cpu_ms(server.pid)
        rss = peak_rss_mib(server.pid) or 0.0
        tools: list[dict[str, Any]] = listed.result["tools"]
    return first.since_spawn * 1000, listed.since_spawn * 1000, cpu, rss, tools


def measure_startup(
    sides: dict[str, Callable[[str], StdioServer]], rounds: int, *, progress: Callable[[str], None]
) -> dict[str, StartupTimes]:
    """Spawn each side `rounds` times per era, interleaving sides and alternating who goes first."""
    times = {name: StartupTimes() for name in sides}
    names = list(sides)
    for round_no in range(rounds):
        order = names if round_no % 2 == 0 else names[::-1]
        for era in ERAS:
            for name in order:
                first, listed, cpu, rss, tools = spawn_once(sides[name](era))
                times[name].rss_at_list.append(rss)
                times[name].first_answer[era].append(first)
                times[name].tools_list[era].append(listed)
                times[name].tools_list_cpu[era].append(cpu)
                if times[name].listing is None and era == LEGACY:
                    times[name].listing = listing_size(tools)
        progress(f"startup round {round_no + 1}/{rounds}")
    return times
