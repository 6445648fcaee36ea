"""Tool results: pydantic models sent as structured content plus one compact JSON text block."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any, TypeVar, cast

from mcp_types import CallToolResult, TextContent
from pydantic import BaseModel, ConfigDict, TypeAdapter
from pydantic_core import to_json

__all__ = ["READ_FROM_API", "ToolModel", "read_all", "structured"]

M = TypeVar("M", bound=BaseModel)


class ToolModel(BaseModel):
    """Base of every tool output; unset optional fields are left out on the wire, never sent as null."""

    # Validators are built on a model's first use, not at import: a host that spawns the server
    # only to list its tools never pays for them (their JSON Schemas are published from a file).
    model_config = ConfigDict(extra="forbid", defer_build=True)


# Config of a private subclass of a tool model that reads it straight from an API model: attributes
# (from_attributes) under the API's names (validation aliases) and never the tool's own names, so an
# unknown field the vendor sent under a tool's name is not read. Subclassing keeps the published
# schema, derived from the tool model, in the tool's names.
READ_FROM_API = ConfigDict(from_attributes=True, validate_by_name=False, validate_by_alias=True)


def read_all(reader: type[M], items: Sequence[object]) -> list[M]:
    """Each of `items` (API models) as a `reader`, in one call into pydantic-core.

    For 200-500 items about 25-30% faster than building each model with a Python call.
    """
    return _list_of(reader).validate_python(items)


@cache
def _list_of(model: type[M]) -> TypeAdapter[list[M]]:
    # Built on first use, like the models' validators: a spawn that only lists tools never pays.
    return TypeAdapter(list[model])  # type: ignore[valid-type]


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
