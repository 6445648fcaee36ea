"""Where the MCP SDK (2.3) has no public route for a behaviour we need, the one place that bridges it.

Each hook here has a test in tests/server/test_sdk_patches.py that fails loudly when the SDK
changes what the hook relies on; the SDK's minor version is pinned in pyproject.toml.

- Arguments that fail a tool's input model: the SDK puts pydantic's printed report in the tool error
  (its internal model name, every rejected value, a documentation link); we say each refused
  argument as one sentence instead (tools/argument_errors.py), from the ValidationError the SDK
  keeps as the error's cause.
- A confirmation answer the SDK refuses before our code sees it (accepted with no content, or
  content that is not the form's boolean) becomes a tool error that names no internal resolver:
  the SDK words it after the resolver's module path (`Resolver 'outboundcalls_mcp.tools.dispatch:ask_consent' ...`).
"""

from __future__ import annotations

from typing import Any, Final

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, InputRequiredResult
from pydantic import ValidationError

from outboundcalls_mcp.tools.argument_errors import describe_argument_errors

__all__ = ["CONFIRMATION_NOT_ANSWERED", "OutboundCallsServer", "readable_tool_error"]

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


class OutboundCallsServer(MCPServer[Any]):
    """MCPServer whose tool errors in the SDK's internal words are said the way a person reads them."""

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        """MCPServer.call_tool, with SDK-worded refusals reworded (see readable_tool_error)."""
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(cause, ValidationError) and type(exc) is ToolError:
                takes = await self._argument_names(name)
                readable: str | None = describe_argument_errors(name, cause, arguments=takes)
            else:
                readable = readable_tool_error(exc)
            if readable is None:
                raise
            raise ToolError(f"Error executing tool {name}: {readable}") from cause

    async def _argument_names(self, tool: str) -> list[str]:
        """The argument names a tool publishes in its input schema."""
        for listed in await self.list_tools():
            if listed.name == tool:
                return sorted((listed.input_schema or {}).get("properties", {}))
        return []
