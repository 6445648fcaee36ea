"""One sandbox account per state directory: process B waits for and reads process A's call; a reset empties both."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from outboundcalls.sandbox import Sandbox
from outboundcalls_mcp.server.ledger_sqlite import read_audit
from outboundcalls_mcp.server.sandbox_mode import sandbox_account_path
from tests.harness import console_script
from tests.server.dispatch_kit import US_NUMBER, call_id_of, confirm, preview_token, text_of

pytestmark = pytest.mark.anyio

TERMINAL = {"completed", "voicemail", "no_answer", "busy", "failed"}


def _env(tmp_path: Path) -> dict[str, str]:
    """A console script's environment: its own state directory, the token flow, calling at any hour."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "OUTBOUNDCALLS_STATE_DIR": str(tmp_path / "state"),
        "OUTBOUNDCALLS_CONFIRM": "token",
        # The processes dial on the wall clock: the hours must not depend on when the test runs.
        "OUTBOUNDCALLS_CALLING_HOURS": "00:00-24:00",
    }


def _server(tmp_path: Path) -> Client:
    """A new `outboundcalls-mcp --sandbox` process over stdio, as a host spawns it."""
    params = StdioServerParameters(command=console_script(), args=["--sandbox"], env=_env(tmp_path), cwd=str(tmp_path))
    return Client(params, mode="legacy")


async def _cli(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    """Run the console script with `args` and stdin closed; its exit status, stdout and stderr."""
    done = await anyio.run_process([console_script(), *args], env=_env(tmp_path), cwd=tmp_path, check=False, stdin=None)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def _data(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error and result.structured_content is not None, text_of(result)
    return dict(result.structured_content)


async def _dial(client: Client) -> str:
    """Preview, then confirm with the token, a call through the account's first deployed agent."""
    agents = (await _data(client, "list_agents", {"status": "deployed"}))["agents"]
    args = {"agent_id": agents[0]["id"], "to_number": US_NUMBER}
    return call_id_of(await confirm(client, args, await preview_token(client, args)))


async def test_process_b_waits_for_and_reads_the_call_process_a_dialed_and_reset_empties_account_and_ledger(
    tmp_path: Path,
) -> None:
    sandbox_dir = tmp_path / "state" / "sandbox"
    with anyio.fail_after(120):
        async with _server(tmp_path) as process_a:
            call_id = await _dial(process_a)
        # The account's time moves on a minute for every process sharing it: the call ends without a wall-clock wait.
        shared = Sandbox.persistent(sandbox_account_path(sandbox_dir))
        try:
            await shared.advance(60)
        finally:
            shared.close()

        async with _server(tmp_path) as process_b:
            waited = await _data(process_b, "wait_for_call", {"call_id": call_id, "timeout_seconds": 30})
            detail = await _data(process_b, "get_call", {"call_id": call_id})
            listed = await _data(process_b, "list_calls", {"limit": 5})
            # While B runs, it holds the sandbox ledger: a reset is refused and says how to stop it.
            refused = await _cli(tmp_path, "sandbox", "reset", "--yes")
        assert waited["timed_out"] is False and waited["call"]["status"] in TERMINAL
        assert detail["id"] == call_id and detail["transcript"], detail
        assert listed["calls"][0]["id"] == call_id
        assert refused[0] == 1 and "stop it" in refused[2] and refused[2].count("\n") == 1

        code, shown, _ = await _cli(tmp_path, "sandbox", "status")
        assert code == 0 and "Calls dialed: 1" in shown and f"{call_id}  {US_NUMBER}  " in shown
        assert [entry.kind for entry in await read_audit(sandbox_dir)]

        code, said, _ = await _cli(tmp_path, "sandbox", "reset", "--yes")
        assert code == 0, said
        code, shown, _ = await _cli(tmp_path, "sandbox", "status")
        assert code == 0 and "Calls dialed: 0" in shown and call_id not in shown
        assert await read_audit(sandbox_dir) == []

        # A fresh ledger knows no cooldown for the number, and a fresh account never reuses the old call id.
        async with _server(tmp_path) as process_c:
            again = await _dial(process_c)
            gone = await process_c.call_tool("get_call", {"call_id": call_id})
        assert again != call_id
        assert gone.is_error and "404" in text_of(gone)
