"""The MCP tools: thin, typed, one module per resource; `register_tools` adds them to a server."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations
from pydantic import BaseModel, ConfigDict

from tools.schema import compact_schema

__all__ = ["READ_TOOLS", "WRITE_TOOLS", "register_tools"]

READ = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True)
ADD = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True)
DIAL = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=True)

READ_TOOLS = (
    "get_balance", "list_calls", "get_call", "wait_for_call", "wait_for_calls", "list_agents", "get_agent",
    "list_contacts", "get_campaign",
)
WRITE_TOOLS = ("add_contact", "dispatch_call", "dispatch_calls")


def _catalogue() -> list[tuple[Callable[..., Any], ToolAnnotations]]:
    from tools import account, agents, batch, calls, campaigns, contacts, dispatch

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


def register_tools(mcp: MCPServer[Any], *, read_only: bool) -> None:
    """Register every tool (no writing tool at all when read_only), with lean schemas."""
    for fn, hints in _catalogue():
        if read_only and fn.__name__ in WRITE_TOOLS:
            continue
        description = inspect.cleandoc(fn.__doc__ or "")
        mcp.add_tool(fn, description=description, annotations=hints, structured_output=True)
    for tool in mcp._tool_manager.list_tools():  # noqa: SLF001 - no public hook to post-process schemas
        tool.fn_metadata.arg_model = _refusing_unknown(tool.fn_metadata.arg_model)
        tool.parameters = compact_schema(tool.parameters)
        if tool.output_schema is not None:
            tool.__dict__["output_schema"] = compact_schema(tool.output_schema, output=True)


def _refusing_unknown(arg_model: type[BaseModel]) -> type[BaseModel]:
    """The SDK's argument model, refusing unknown names: its default ignores them, so `limt=5` would be a silent 20."""
    config = ConfigDict(**{**arg_model.model_config, "extra": "forbid"})
    return type(arg_model.__name__, (arg_model,), {"model_config": config, "__module__": arg_model.__module__})
