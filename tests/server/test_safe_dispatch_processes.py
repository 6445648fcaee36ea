"""Two server processes on one state directory: one token, one call, whichever process confirms it."""

from __future__ import annotations

import functools
import os
import shutil
import sys
from pathlib import Path

import anyio
import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters

from outboundcalls.sandbox import SANDBOX_API_KEY, Sandbox
from outboundcalls.sandbox.standalone import create_server, serve
from outboundcalls_mcp.server.app import build_server
from outboundcalls_mcp.server.settings import Settings
from tests.server.dispatch_kit import US_NUMBER, call_id_of, confirm, preview_token

pytestmark = pytest.mark.anyio


async def test_a_token_confirmed_at_once_by_two_os_processes_places_one_call(tmp_path: Path) -> None:
    sandbox = Sandbox()
    http = create_server(sandbox, host="127.0.0.1", port=0, log_level="critical", shutdown_grace_seconds=0)
    ready: list[str] = []
    async with anyio.create_task_group() as group:
        group.start_soon(functools.partial(serve, sandbox, http, on_ready=ready.append))
        with anyio.fail_after(10):
            while not ready:
                await anyio.sleep(0)
        # Both processes run on the wall clock here, so the hours must not depend on when the test runs.
        env = {
            "OUTBOUNDCALLS_API_KEY": SANDBOX_API_KEY,
            "OUTBOUNDCALLS_BASE_URL": ready[0],
            "OUTBOUNDCALLS_STATE_DIR": str(tmp_path / "state"),
            "OUTBOUNDCALLS_CALLING_HOURS": "00:00-24:00",
        }
        here = build_server(Settings.model_validate({name.removeprefix("OUTBOUNDCALLS_").lower(): value
                                                      for name, value in env.items()}))
        script = shutil.which("outboundcalls-mcp", path=str(Path(sys.executable).parent))
        assert script is not None
        other = StdioServerParameters(command=script, args=[], cwd=str(tmp_path),
                                      env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)} | env)
        args = {"agent_id": sandbox.seed_ids.deployed_agent_id, "to_number": US_NUMBER}
        results: list[types.CallToolResult] = []
        async with Client(here, mode="legacy") as mine, Client(other, mode="legacy") as theirs:
            token = await preview_token(mine, args)

            async def confirm_on(client: Client) -> None:
                results.append(await confirm(client, args, token))

            with anyio.fail_after(60):
                async with anyio.create_task_group() as confirmations:
                    confirmations.start_soon(confirm_on, theirs)
                    confirmations.start_soon(confirm_on, mine)
        http.should_exit = True
    assert len(results) == 2
    assert len({call_id_of(result) for result in results}) == 1
    assert (sandbox.count("POST", "/calls"), sandbox.dispatched) == (1, 1)
