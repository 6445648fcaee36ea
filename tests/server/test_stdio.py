"""The installed console script served over stdio, as a host starts it: one spawn per protocol era (each costs ~1 s)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from outboundcalls_mcp.tools import READ_TOOLS, WRITE_TOOLS
from tests.harness import console_script

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_the_installed_script_serves_every_tool_over_stdio_and_says_it_is_the_sandbox(
    tmp_path: Path, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    params = StdioServerParameters(
        command=console_script(),
        args=["--sandbox"],
        # The stdio client passes the child almost nothing of ours; the state dir keeps the ledger in tmp.
        env={"OUTBOUNDCALLS_STATE_DIR": str(tmp_path), "HOME": str(tmp_path), "PATH": os.environ.get("PATH", "")},
        cwd=str(tmp_path),
    )
    async with Client(params, mode=mode) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        balance = await client.call_tool("get_balance", {})
        instructions = client.instructions
    assert names >= {*READ_TOOLS, *WRITE_TOOLS}
    assert not balance.is_error and balance.structured_content is not None
    assert balance.structured_content["sandbox"] is True and balance.structured_content["can_dispatch"] is True
    assert instructions is not None and "SANDBOX" in instructions
    # Anything but protocol messages on stdout makes the SDK client log a parse failure.
    assert not [r for r in caplog.records if r.name.startswith("mcp.client") and r.levelno >= logging.WARNING]
    assert (tmp_path / "sandbox").is_dir(), "the ledger went somewhere other than OUTBOUNDCALLS_STATE_DIR"
