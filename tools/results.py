"""Tool results: pydantic models sent as structured content plus one compact JSON text block."""

from __future__ import annotations

from typing import Any, TypeVar, cast

from mcp_types import CallToolResult, TextContent
from pydantic import BaseModel, ConfigDict
from pydantic_core import to_json

__all__ = ["ToolModel", "structured"]

M = TypeVar("M", bound=BaseModel)


class ToolModel(BaseModel):
    """Base of every tool output; unset optional fields are left out on the wire, never sent as null."""

    # Validators are built on a model's first use, not at import: a host that spawns the server
    # only to list its tools never pays for them (their JSON Schemas are published from a file).
    model_config = ConfigDict(extra="forbid", defer_build=True)


def structured(model: M) -> M:
    """Send `model` as structuredContent and the same JSON, compact, as text.

    The SDK's default text block is the JSON indented by two spaces; for a list of 200 calls
    that indentation alone costs the assistant thousands of tokens.
    """
    data: dict[str, Any] = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    # The same JSON as model_dump_json, from the dump just made: for 200 calls about 40% faster
    # than walking the model a second time.
    text = to_json(data).decode()
    result = CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)
    # The annotation stays the model's: the published outputSchema is derived from it
    # (tools/published_schemas.json), and clients check structuredContent against that.
    return cast(M, result)
