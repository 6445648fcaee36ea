"""The least any server on this SDK adds to a read when it returns the answer as structured content.

The read-latency target allows one echo on top of a minimal server that returns the API's body
unparsed as text. A server that returns structured content cannot avoid two things that server
skips: decoding the body, and the SDK's own passes over structuredContent between the tool's
return and the bytes on the wire (dump the result, validate and dump it for the protocol version,
serialise the JSON-RPC message). Both are timed here in a hot loop, so the figure is a lower bound.
"""

from __future__ import annotations

import time
from typing import Any

import mcp_types
from mcp_types.methods import serialize_server_result
from pydantic_core import from_json

from bench.stats import percentile
from bench.stdio_rpc import LEGACY

__all__ = ["structured_floor_ms"]

SAMPLES = 200


def _to_wire(result: mcp_types.CallToolResult) -> bytes:
    """What the SDK does with a tool's result before it is written (mcp.server.runner, JSON-RPC dispatcher)."""
    dumped = result.model_dump(by_alias=True, mode="json", exclude_none=True)
    shaped = serialize_server_result("tools/call", LEGACY, dumped)
    message = mcp_types.JSONRPCResponse(jsonrpc="2.0", id=1, result=shaped)
    return message.model_dump_json(by_alias=True, exclude_unset=True).encode()


def _median_ms(work: Any) -> float:
    work()
    samples = []
    for _ in range(SAMPLES):
        started = time.perf_counter()
        work()
        samples.append((time.perf_counter() - started) * 1000)
    return percentile(samples, 50)


def structured_floor_ms(body: bytes, structured: dict[str, Any]) -> float:
    """Decoding `body` plus the SDK's passes over `structured` alone (an empty result's passes subtracted), p50 ms."""
    with_structured = mcp_types.CallToolResult(content=[], structured_content=structured)
    empty = mcp_types.CallToolResult(content=[])
    decode = _median_ms(lambda: from_json(body))
    passes = _median_ms(lambda: _to_wire(with_structured)) - _median_ms(lambda: _to_wire(empty))
    return decode + passes
