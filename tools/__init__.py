"""The MCP tools: thin, typed, one module per resource; `build_tools` makes them for a server."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from mcp.server.mcpserver.tools import Tool
from mcp_types import ToolAnnotations

from outboundcalls_mcp.tools import account, agents, batch, calls, campaigns, contacts, dispatch

__all__ = ["READ_TOOLS", "WRITE_TOOLS", "build_tools", "catalogue"]

READ = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True)
ADD = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True)
DIAL = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=True)

READ_TOOLS = (
    "get_balance",
    "list_calls",
    "get_call",
    "wait_for_call",
    "wait_for_calls",
    "list_agents",
    "get_agent",
    "list_contacts",
    "get_campaign",
)
WRITE_TOOLS = ("add_contact", "dispatch_call", "dispatch_calls")


def catalogue() -> list[tuple[Callable[..., Any], ToolAnnotations]]:
    """Every tool function with its annotations, in the order tools/list shows them."""
    return [
        (account.get_balance, READ),
        (agents.list_agents, READ),
        (agents.get_agent, READ),
        (calls.list_calls, READ),
        (calls.get_call, READ),
        (calls.wait_for_call, READ),
        (calls.wait_for_calls, READ),
        (contacts.list_contacts, READ),
        (contacts.add_contact, ADD),
        (dispatch.dispatch_call, DIAL),
        (batch.dispatch_calls, DIAL),
        (campaigns.get_campaign, READ),
    ]


def build_tools(*, read_only: bool) -> list[Tool]:
    """Every tool (no writing tool at all when read_only), derived by the SDK from its signature."""
    return [
        Tool.from_function(
            fn, description=inspect.cleandoc(fn.__doc__ or ""), annotations=hints, structured_output=True
        )
        for fn, hints in catalogue()
        if not (read_only and fn.__name__ in WRITE_TOOLS)
    ]
