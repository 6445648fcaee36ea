"""Each bridge in server/sdk_patches.py still matches the SDK it bridges: a change there fails here, loudly."""

from __future__ import annotations

import inspect
from typing import Annotated

import pytest
from mcp import Client
from mcp.server import session as server_session
from mcp.server.mcpserver import MCPServer, resolve
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities import func_metadata
from mcp_types import TextContent
from pydantic import BaseModel, Field

from outboundcalls_mcp.server import sdk_patches
from outboundcalls_mcp.server.sdk_patches import OutboundCallsServer

pytestmark = pytest.mark.anyio


class Echo(BaseModel):
    limit: int


async def echo(limit: Annotated[int, Field(ge=1, le=200)] = 20) -> Echo:
    """Echo the limit."""
    return Echo(limit=limit)


def _server() -> OutboundCallsServer:
    return OutboundCallsServer("patched", tools=[Tool.from_function(echo, structured_output=True)])


def test_the_sdk_still_words_a_refused_confirmation_answer_the_way_the_patch_recognises() -> None:
    source = inspect.getsource(resolve)
    for wording in sdk_patches._SDK_ANSWER_REFUSALS:
        assert wording in source, f"the SDK no longer says {wording!r}: update server/sdk_patches.py"
    assert 'f"Resolver {key!r}' in source


def test_call_tool_and_list_tools_are_still_the_public_methods_requests_go_through() -> None:
    parameters = list(inspect.signature(MCPServer.call_tool).parameters)
    assert parameters == ["self", "name", "arguments", "context"]
    assert "self.call_tool(" in inspect.getsource(MCPServer._handle_call_tool)
    assert "self.list_tools()" in inspect.getsource(MCPServer._handle_list_tools)


def test_the_sdk_still_ignores_unknown_arguments_so_the_patch_is_still_needed() -> None:
    arguments = func_metadata.ArgModelBase.model_config.get("extra")
    assert arguments in (None, "ignore"), "the SDK now decides about unknown arguments: revisit sdk_patches.call_tool"


async def test_an_unknown_argument_is_refused_naming_what_the_tool_takes() -> None:
    async with Client(_server()) as client:
        result = await client.call_tool("echo", {"limt": 5})
    assert result.is_error
    [block] = result.content
    assert isinstance(block, TextContent)
    assert (
        block.text == "Error executing tool echo: limt is not an argument of echo, which takes limit; nothing was sent."
    )


async def test_a_refused_argument_is_said_in_one_sentence_from_the_cause_the_sdk_keeps() -> None:
    async with Client(_server()) as client:
        result = await client.call_tool("echo", {"limit": 0})
    [block] = result.content
    assert isinstance(block, TextContent)
    assert block.text.startswith(
        "Error executing tool echo: limit 0 is not accepted: it must be greater than or equal to 1"
    )


async def test_the_listed_schemas_are_compacted() -> None:
    async with Client(_server()) as client:
        [tool] = (await client.list_tools()).tools
    assert "title" not in tool.input_schema and "title" not in tool.input_schema["properties"]["limit"]
    assert tool.output_schema is not None and "title" not in tool.output_schema


def test_the_legacy_subscription_bridge_still_finds_its_private_hooks() -> None:
    server = MCPServer("bridged")
    lowlevel = server._lowlevel_server
    assert callable(lowlevel.add_request_handler)
    sdk_patches.serve_legacy_subscriptions(
        server, subscribe=lambda uri, session: None, unsubscribe=lambda uri, session: None
    )
    assert lowlevel.get_request_handler("resources/subscribe") is not None
    assert "self._connection = connection" in inspect.getsource(server_session.ServerSession.__init__)
