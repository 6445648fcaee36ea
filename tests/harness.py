"""Shared test wiring: a sandbox on a manual clock, settings, and a server built on them."""

from __future__ import annotations

import shutil
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import mcp_types as types
from mcp import Client
from mcp.server.mcpserver import MCPServer

from outboundcalls.retry import RetryPolicy
from outboundcalls.sandbox import SANDBOX_API_KEY, ManualClock, Sandbox
from outboundcalls_mcp.server.app import build_server
from outboundcalls_mcp.server.settings import Settings
from tests.places import LedgerPlace

ElicitationCallback = Callable[..., Awaitable[Any]]
# What a person can answer to a question, as mcp_types.ElicitResult spells it.
ElicitAction = Literal["accept", "decline", "cancel"]

# Noon in New York, so that US numbers are inside the default calling hours.
NOON_NEW_YORK = "2026-11-30T17:00:00+00:00"


def make_settings(where: Path | LedgerPlace, **overrides: Any) -> Settings:
    """Settings for a sandbox-backed server whose ledger lives in a state directory, or at a place of either backend."""
    values: dict[str, Any] = {"api_key": SANDBOX_API_KEY, "sandbox": True}
    values.update(where.settings() if isinstance(where, LedgerPlace) else {"state_dir": where})
    values.update(overrides)
    return Settings.model_validate(values)


@dataclass
class Rig:
    """A sandbox and a server wired to it; the server's clock and sleeps are the sandbox's."""

    sandbox: Sandbox
    settings: Settings
    server: MCPServer[Any]

    def client(self, mode: str = "auto", **kwargs: Any) -> Client:
        """An in-memory MCP client of this rig's server (mode 'legacy' = handshake era)."""
        return Client(self.server, mode=mode, **kwargs)

    def posts(self) -> int:
        """How many POST /calls reached the sandbox."""
        return self.sandbox.count("POST", "/calls")


def make_rig(state_dir: Path | LedgerPlace, *, sandbox: Sandbox | None = None, **overrides: Any) -> Rig:
    """A server on a fresh (or given) sandbox; waits advance the sandbox clock instead of sleeping."""
    from datetime import datetime

    sb = sandbox or Sandbox(clock=ManualClock(datetime.fromisoformat(NOON_NEW_YORK)))
    settings = make_settings(state_dir, **overrides)

    async def sleep(seconds: float) -> None:
        await sb.advance(seconds)

    # GET retries back off on the sandbox clock too, with the jitter pinned, so they never sleep.
    retry = RetryPolicy(sleep=sleep, random=lambda: 1.0)
    server = build_server(settings, transport=sb.transport(), now=sb.clock.now, sleep=sleep, retry=retry)
    return Rig(sandbox=sb, settings=settings, server=server)


def first_text(result: types.CallToolResult) -> str:
    """The text of a tool result's first content block, which must be text."""
    block = result.content[0]
    assert isinstance(block, types.TextContent), block
    return block.text


@asynccontextmanager
async def connected(rig: Rig, mode: str = "auto", **kwargs: Any) -> AsyncIterator[Client]:
    """An open client session on the rig."""
    async with rig.client(mode, **kwargs) as client:
        yield client


def console_script() -> str:
    """The console script installed in this venv, next to the interpreter running the tests."""
    found = shutil.which("outboundcalls-mcp", path=str(Path(sys.executable).parent))
    assert found is not None, "outboundcalls-mcp is not installed in this venv: pip install -e '.[test]'"
    return found
