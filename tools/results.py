"""Tool results: a model sent as structured content plus one compact JSON text block."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any, TypeVar

from mcp_types import CallToolResult, TextContent
from pydantic import BaseModel, ConfigDict, TypeAdapter
from pydantic_core import to_json

__all__ = ["READ_FROM_API", "read_all", "structured"]

M = TypeVar("M", bound=BaseModel)


# Config of a private subclass of a tool model that reads it straight from an API model: attributes
# (from_attributes) under the API's names (validation aliases) and never the tool's own names, so an
# unknown field the vendor sent under a tool's name is not read. Subclassing keeps the published
# schema, derived from the tool model, in the tool's names.
READ_FROM_API = ConfigDict(from_attributes=True, validate_by_name=False, validate_by_alias=True)


def read_all(reader: type[M], items: Sequence[object]) -> list[M]:
    """Each of `items` (API models) as a `reader`, in one call into pydantic-core."""
    return _list_of(reader).validate_python(items)


@cache
def _list_of(model: type[M]) -> TypeAdapter[list[M]]:
    # One adapter per reader for the process: building one is the expensive part of a read.
    return TypeAdapter(list[model])  # type: ignore[valid-type]  # a type known at run time


def structured(model: BaseModel) -> CallToolResult:
    """`model` as structuredContent, unset fields left out, and the same JSON, compact, as the text block."""
    # A tool annotated `-> Annotated[CallToolResult, Model]` publishes Model's outputSchema and the
    # SDK checks structuredContent against it; the SDK's own text block would be indented JSON
    # carrying every unset field as null, which the assistant pays for in tokens.
    data: dict[str, Any] = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    return CallToolResult(content=[TextContent(type="text", text=to_json(data).decode())], structured_content=data)
