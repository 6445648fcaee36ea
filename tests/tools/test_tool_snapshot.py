"""What the assistant sees of every tool, pinned: a change to a name, description, schema or annotation is reviewed.

The snapshot is tests/tools/snapshots/tools.json. After an intended change, regenerate it with
`UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest tests/tools/test_tool_snapshot.py`, then review
and commit the diff; without the variable the test only compares.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from outboundcalls_mcp.server.app import build_server
from outboundcalls_mcp.server.settings import Settings
from outboundcalls_mcp.tools import READ_TOOLS, WRITE_TOOLS

pytestmark = pytest.mark.anyio

SNAPSHOT = Path(__file__).parent / "snapshots" / "tools.json"


async def _served_tools(state_dir: Path, mode: str) -> list[dict[str, Any]]:
    """tools/list as a client receives it, in wire form (camelCase), without per-response metadata."""
    server = build_server(Settings(state_dir=state_dir))
    async with Client(server, mode=mode) as client:
        tools = (await client.list_tools()).tools
    served = [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in tools]
    for tool in served:
        tool.pop("_meta", None)
    return served


async def test_tools_list_matches_the_committed_snapshot(tmp_path: Path) -> None:
    served = await _served_tools(tmp_path, "legacy")
    rendered = json.dumps({"tools": served}, indent=2, ensure_ascii=False) + "\n"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(rendered, encoding="utf-8")
    assert SNAPSHOT.exists(), "no snapshot yet: run with UPDATE_SNAPSHOTS=1 and commit it"
    pinned = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    assert {"tools": served} == pinned, (
        "tools/list changed; if intended, regenerate with UPDATE_SNAPSHOTS=1 and review the diff"
    )


async def test_both_protocol_eras_serve_the_same_tools(tmp_path: Path) -> None:
    assert await _served_tools(tmp_path / "a", "legacy") == await _served_tools(tmp_path / "b", "auto")


async def test_the_snapshot_pins_every_registered_tool_with_its_schemas(tmp_path: Path) -> None:
    pinned = json.loads(SNAPSHOT.read_text(encoding="utf-8"))["tools"]
    assert sorted(t["name"] for t in pinned) == sorted([*READ_TOOLS, *WRITE_TOOLS])
    for tool in pinned:
        assert tool["description"] and tool["inputSchema"]["type"] == "object"
        assert tool["outputSchema"]["type"] == "object", f"{tool['name']} publishes no outputSchema"


EXPECTED_ANNOTATIONS = {
    **{
        name: {"readOnlyHint": True, "destructiveHint": False, "idempotentHint": True, "openWorldHint": True}
        for name in READ_TOOLS
    },
    "add_contact": {"readOnlyHint": False, "destructiveHint": False, "idempotentHint": False, "openWorldHint": True},
    "dispatch_call": {"readOnlyHint": False, "destructiveHint": True, "idempotentHint": False, "openWorldHint": True},
    "dispatch_calls": {"readOnlyHint": False, "destructiveHint": True, "idempotentHint": False, "openWorldHint": True},
}


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_every_tool_sets_all_four_annotations_explicitly(tmp_path: Path, mode: str) -> None:
    served = await _served_tools(tmp_path, mode)
    assert {t["name"]: t.get("annotations") for t in served} == EXPECTED_ANNOTATIONS
