"""Where the MCP SDK (2.3) has no public route for a behaviour we need, the one place that bridges it.

Each hook here has a test in tests/server/test_sdk_patches.py that fails loudly when the SDK
changes what the hook relies on; the SDK's minor version is pinned in pyproject.toml.

- Unknown tool arguments: the SDK's argument models ignore names they do not know, so `limt=5`
  would silently be the default; `OutboundCallsServer.call_tool` refuses them before the tool runs,
  naming what the tool takes (the names come from each Tool's public `parameters`).
- Arguments that fail a tool's input model: the SDK puts pydantic's printed report in the tool error
  (its internal model name, every rejected value, a documentation link); we say each refused
  argument as one sentence instead (tools/argument_errors.py), from the ValidationError the SDK
  keeps as the error's cause.
- A confirmation answer the SDK refuses before our code sees it (accepted with no content, or
  content that is not the form's boolean) becomes a tool error that names no internal resolver:
  the SDK words it after the resolver's module path (`Resolver 'outboundcalls_mcp.tools.dispatch:ask_consent' ...`).
- Handshake-era `resources/subscribe`: MCPServer registers no handler for it and offers no public
  way to add one, nor to tell one client connection from another across its requests.

`OutboundCallsServer.list_tools` (a public method) publishes each tool's schemas compacted
(tools/schema.py): every byte of tools/list is read by the assistant on every turn.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp.shared.exceptions import MCPError
from pydantic import ValidationError

from outboundcalls_mcp.tools.argument_errors import describe_argument_errors
from outboundcalls_mcp.tools.schema import compact_schema
from outboundcalls_mcp.tools.uris import SCHEME

__all__ = [
    "CONFIRMATION_NOT_ANSWERED",
    "OutboundCallsServer",
    "connection_key",
    "readable_tool_error",
    "serve_legacy_subscriptions",
]

CONFIRMATION_NOT_ANSWERED: Final = (
    "The confirmation came back without a yes or a no: its one field, confirm, must be true (place the call) or "
    "false. Nothing was dialed; ask the person again."
)
# How the SDK words a resolver's answer it refused (mcp/server/mcpserver/resolve.py, _fulfil).
_SDK_RESOLVER_PREFIX: Final = "Resolver "
_SDK_ANSWER_REFUSALS: Final = (
    "received an accepted elicitation with no content",
    "received an accepted elicitation whose content does not match the requested schema",
    "received a non-elicitation response",
    "received an invalid elicitation response",
)


def readable_tool_error(exc: ToolError) -> str | None:
    """A person's wording for a tool error the SDK raised in its own words, or None to keep it."""
    cause = exc.__cause__
    said = str(cause) if isinstance(cause, ToolError) else ""
    if said.startswith(_SDK_RESOLVER_PREFIX) and any(refusal in said for refusal in _SDK_ANSWER_REFUSALS):
        return CONFIRMATION_NOT_ANSWERED
    return None


def _unknown_arguments(tool: str, arguments: Mapping[str, Any], takes: frozenset[str]) -> ValidationError | None:
    """The names `arguments` has that the tool does not take, as pydantic reports an extra field."""
    unknown = [name for name in arguments if name not in takes]
    if not unknown:
        return None
    return ValidationError.from_exception_data(
        tool, [{"type": "extra_forbidden", "loc": (name,), "input": arguments[name]} for name in unknown]
    )


class OutboundCallsServer(MCPServer[Any]):
    """MCPServer that refuses unknown tool arguments, words SDK refusals for a person, and lists lean schemas."""

    def __init__(self, name: str, *, tools: Sequence[Tool], **settings: Any) -> None:
        super().__init__(name, tools=list(tools), **settings)
        self.tool_arguments: Mapping[str, frozenset[str]] = {
            tool.name: frozenset(tool.parameters.get("properties", {})) for tool in tools
        }

    async def list_tools(self) -> list[types.Tool]:
        """MCPServer.list_tools, each schema compacted (tools/schema.py)."""
        return [
            tool.model_copy(
                update={
                    "input_schema": compact_schema(tool.input_schema),
                    "output_schema": None
                    if tool.output_schema is None
                    else compact_schema(tool.output_schema, output=True),
                }
            )
            for tool in await super().list_tools()
        ]

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> types.CallToolResult | types.InputRequiredResult:
        """MCPServer.call_tool, with unknown arguments refused and SDK-worded refusals reworded."""
        takes = self.tool_arguments.get(name)
        unknown = None if takes is None else _unknown_arguments(name, arguments, takes)
        if unknown is not None:
            raise ToolError(
                f"Error executing tool {name}: {describe_argument_errors(name, unknown, arguments=takes or ())}"
            ) from unknown
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(cause, ValidationError) and type(exc) is ToolError:
                readable: str | None = describe_argument_errors(name, cause, arguments=takes or ())
            else:
                readable = readable_tool_error(exc)
            if readable is None:
                raise
            raise ToolError(f"Error executing tool {name}: {readable}") from cause


def connection_key(session: Any) -> int:
    """One number per client connection: the SDK builds a ServerSession per request, around one connection."""
    return id(getattr(session, "_connection", session))


def serve_legacy_subscriptions(
    mcp: MCPServer[Any],
    *,
    subscribe: Callable[[str, Any], None],
    unsubscribe: Callable[[str, Any], None],
) -> None:
    """Serve handshake-era resources/subscribe and unsubscribe for `outboundcalls://` URIs (may raise OverflowError)."""

    async def on_subscribe(
        ctx: ServerRequestContext[Any, Any], params: types.SubscribeRequestParams
    ) -> types.EmptyResult:
        uri = str(params.uri)
        if not uri.startswith(SCHEME):
            raise MCPError(types.INVALID_PARAMS, f"only {SCHEME} resources can be subscribed to", {"uri": uri})
        try:
            subscribe(uri, ctx.session)
        except OverflowError:
            raise MCPError(types.INVALID_REQUEST, "too many resource subscriptions on this server") from None
        return types.EmptyResult()

    async def on_unsubscribe(
        ctx: ServerRequestContext[Any, Any], params: types.UnsubscribeRequestParams
    ) -> types.EmptyResult:
        unsubscribe(str(params.uri), ctx.session)
        return types.EmptyResult()

    lowlevel = mcp._lowlevel_server
    lowlevel.add_request_handler("resources/subscribe", types.SubscribeRequestParams, on_subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", types.UnsubscribeRequestParams, on_unsubscribe)
