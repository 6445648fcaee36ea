"""Each bridge in server/sdk_patches.py still matches the SDK it bridges: a change there fails here, loudly."""

from __future__ import annotations

import inspect

from mcp.server.mcpserver import resolve

from outboundcalls_mcp.server import sdk_patches


def test_the_sdk_still_words_a_refused_confirmation_answer_the_way_the_patch_recognises() -> None:
    source = inspect.getsource(resolve)
    for wording in sdk_patches._SDK_ANSWER_REFUSALS:  # noqa: SLF001 - the patch's own recognition table
        assert wording in source, f"the SDK no longer says {wording!r}: update server/sdk_patches.py"
    assert 'f"Resolver {key!r}' in source


def test_call_tool_is_still_the_public_method_tool_calls_go_through() -> None:
    parameters = list(inspect.signature(sdk_patches.MCPServer.call_tool).parameters)
    assert parameters == ["self", "name", "arguments", "context"]
    assert "self.call_tool(" in inspect.getsource(sdk_patches.MCPServer._handle_call_tool)  # noqa: SLF001
