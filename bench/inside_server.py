"""`python -m bench.inside_server`: our server with timers around each tool and each upstream request.

Only the benchmark runs it, in a phase of its own (the timers cost a little): it splits a call's
time inside the server into the upstream request and our own code. Timings go to the JSON file
named by BENCH_INSIDE_OUT when the server exits.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import ContextVar
from typing import Any, ParamSpec, TypeVar

from mcp.server.mcpserver.tools.base import Tool

from outboundcalls.client import OutboundCallsClient

_in_request: ContextVar[list[float] | None] = ContextVar("bench_upstream_ms", default=None)
_timings: dict[str, list[tuple[float, float]]] = {}  # tool -> (tool ms, upstream ms)

P = ParamSpec("P")
R = TypeVar("R")


def _label(name: str, arguments: dict[str, Any]) -> str:
    """The tool's name, with the list size when there is one (as the report tells them apart)."""
    return f"{name} ({arguments['limit']})" if "limit" in arguments else name


def _timed_tool(run: Callable[..., Awaitable[Any]]) -> Callable[..., Coroutine[Any, Any, Any]]:
    @functools.wraps(run)
    async def wrapper(self: Tool, arguments: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        label = _label(self.name, arguments)
        upstream: list[float] = []
        token = _in_request.set(upstream)
        started = time.perf_counter()
        try:
            return await run(self, arguments, *args, **kwargs)
        finally:
            _timings.setdefault(label, []).append(((time.perf_counter() - started) * 1000, sum(upstream)))
            _in_request.reset(token)

    return wrapper


def _timed_request(send: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    @functools.wraps(send)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        started = time.perf_counter()
        try:
            return await send(*args, **kwargs)
        finally:
            spent = _in_request.get()
            if spent is not None:
                spent.append((time.perf_counter() - started) * 1000)

    return wrapper


def _dump() -> None:
    with open(os.environ["BENCH_INSIDE_OUT"], "w") as out:
        json.dump(_timings, out)


def main() -> int:
    """Install the timers and run the ordinary command line."""
    get, post = OutboundCallsClient._get, OutboundCallsClient._post
    Tool.run = _timed_tool(Tool.run)  # type: ignore[method-assign]  # timers patched in on purpose
    OutboundCallsClient._get = _timed_request(get)  # type: ignore[method-assign]  # timers patched in on purpose
    OutboundCallsClient._post = _timed_request(post)  # type: ignore[method-assign]  # timers patched in on purpose
    atexit.register(_dump)
    from outboundcalls_mcp.server.cli import main as cli_main

    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
