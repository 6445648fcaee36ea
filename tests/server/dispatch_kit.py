"""What the safe-dispatch tests share: arguments, answers a person gives, and reading results."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.session import ClientRequestContext

from outboundcalls.sandbox import ManualClock, Sandbox
from outboundcalls_mcp.server.app import build_server
from outboundcalls_mcp.server.ledger import AuditEntry
from outboundcalls_mcp.server.ledger_place import read_audit_trail
from tests.harness import NOON_NEW_YORK, ElicitAction, Rig, make_settings
from tests.places import LedgerPlace

ERAS = ["legacy", "auto"]  # the handshake era (today's hosts) and 2026-07-28
US_NUMBER = "+14155550134"  # San Francisco: 09:00 at the harness's noon in New York
OTHER_US_NUMBER = "+14155550135"
PREMIUM_NUMBER = "+19005550100"


def sandbox_at(moment: str) -> Sandbox:
    """A fresh sandbox whose manual clock starts at an ISO time."""
    return Sandbox(clock=ManualClock(datetime.fromisoformat(moment)))


def dispatch_args(rig: Rig, to_number: str = US_NUMBER, **extra: Any) -> dict[str, Any]:
    """dispatch_call arguments through the sandbox's deployed agent."""
    return {"agent_id": rig.sandbox.seed_ids.deployed_agent_id, "to_number": to_number, **extra}


def text_of(result: types.CallToolResult) -> str:
    """A tool result's text, as the assistant reads it."""
    return " ".join(block.text for block in result.content if isinstance(block, types.TextContent))


async def preview_token(client: Client, args: dict[str, Any]) -> str:
    """Ask for a preview (token flow) and return its confirmation token."""
    result = await client.call_tool("dispatch_call", args)
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    assert result.structured_content["status"] == "needs_confirmation", result.structured_content
    token = result.structured_content["preview"]["confirmation_token"]
    assert isinstance(token, str)
    return token


async def confirm(client: Client, args: dict[str, Any], token: str) -> types.CallToolResult:
    """Confirm a preview with its token."""
    return await client.call_tool("dispatch_call", {**args, "confirmation_token": token})


def call_id_of(result: types.CallToolResult) -> str:
    """The call id of a dialed result."""
    assert not result.is_error, text_of(result)
    content = result.structured_content
    assert content is not None and content["status"] == "dialed", content
    call_id = content["call"]["id"]
    assert isinstance(call_id, str)
    return call_id


class Person:
    """An elicitation callback that answers every question the same way and counts the questions."""

    def __init__(self, action: ElicitAction = "accept", confirm: bool = True) -> None:
        self.action = action
        self.confirm = confirm
        self.questions: list[str] = []

    async def __call__(self, context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        assert isinstance(params, types.ElicitRequestFormParams)
        self.questions.append(params.message)
        return types.ElicitResult(
            action=self.action, content={"confirm": self.confirm} if self.action == "accept" else None
        )


async def audit_of(rig: Rig, limit: int = 100) -> list[AuditEntry]:
    """The rig's audit trail, oldest first."""
    return list(reversed(await read_audit_trail(rig.settings, limit)))


def kinds(entries: list[AuditEntry]) -> list[str]:
    """The audit entries' kinds, in order."""
    return [entry.kind for entry in entries]


class Gate(httpx2.AsyncBaseTransport):
    """Holds the next matching request at the door until released, so a race can be staged in order."""

    def __init__(self, inner: httpx2.AsyncBaseTransport, method: str, path_end: str) -> None:
        self.inner, self.method, self.path_end = inner, method, path_end
        self.armed = False
        self.arrived = anyio.Event()
        self.released = anyio.Event()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        """Pass the request on, after waiting for release if it is the one held."""
        if self.armed and request.method == self.method and request.url.path.endswith(self.path_end):
            self.armed = False
            self.arrived.set()
            await self.released.wait()
        return await self.inner.handle_async_request(request)


def gated_rig(state_dir: Path | LedgerPlace, method: str, path_end: str, **overrides: Any) -> tuple[Rig, Gate]:
    """A rig whose API requests pass through a Gate (armed by the test)."""
    sandbox = sandbox_at(NOON_NEW_YORK)
    settings = make_settings(state_dir, **overrides)
    gate = Gate(sandbox.transport(), method, path_end)
    server = build_server(settings, transport=gate, now=sandbox.clock.now, sleep=sandbox.advance)
    return Rig(sandbox=sandbox, settings=settings, server=server), gate
