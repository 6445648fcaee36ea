"""structured(): the model's JSON twice, as structuredContent and as one compact text block, exactly alike."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

from mcp.server.mcpserver.tools import Tool
from mcp_types import CallToolResult, TextContent

from outboundcalls_mcp.tools.calls import CallItem, CallList, CallView, Turn
from outboundcalls_mcp.tools.results import structured


def _sent(model: CallList | CallView) -> CallToolResult:
    return structured(model)


def test_the_text_block_is_the_models_own_compact_json_and_the_same_data_as_structured_content() -> None:
    view = CallView(
        id="c1",
        status="completed",
        to="+14155550100",
        created_at=datetime(2026, 12, 6, 9, 30, 0, 250000, tzinfo=UTC),
        duration_s=48.0,
        credits=15.96,
        summary='Café \u201cbooked\u201d \U0001f4de, line\nbreak "quoted"',
        extracted_data={"slot": "Tue 10:00", "party": 4, "confirmed": True, "notes": None},
        transcript=[Turn(role="agent", text="Hello", t=0.0), Turn(role="user", text="Hi </script>", t=1.5)],
    )
    listing = CallList(calls=[CallItem(id=f"c{n}", status="queued", credits=n / 3) for n in range(3)])
    for model in (view, listing):
        result = _sent(model)
        [block] = result.content
        assert isinstance(block, TextContent)
        assert block.text == model.model_dump_json(by_alias=True, exclude_none=True)
        assert json.loads(block.text) == result.structured_content
        assert '"agent_id"' not in block.text  # unset optional fields are left out, not sent as null


def test_an_empty_list_is_sent_as_an_empty_list() -> None:
    result = _sent(CallList(calls=[]))
    assert result.structured_content == {"calls": []}
    assert isinstance(result.content[0], TextContent) and result.content[0].text == '{"calls":[]}'


def test_a_tool_annotated_with_its_model_publishes_the_models_schema() -> None:
    async def listing() -> Annotated[CallToolResult, CallList]:
        """A structured result."""
        return structured(CallList(calls=[]))

    tool = Tool.from_function(listing, structured_output=True)
    assert tool.output_schema is not None and tool.output_schema["title"] == "CallList"
