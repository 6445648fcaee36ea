"""Tools built for a fast start: published schemas read from a file derived from the code, argument models built lazily.

A host spawns the server and waits for tools/list. Deriving each tool's schemas the SDK's way
(`Tool.from_function`: an argument model, two JSON Schemas from pydantic, then our compaction)
costs about 5 ms a tool on a 2-core machine, every start. The result depends only on the code,
so it is derived once, kept in `published_schemas.json` beside this module, and read at start;
`tests/tools/test_published_schemas.py` derives it again the SDK's way and fails on any
difference (regenerate with `UPDATE_SNAPSHOTS=1`), so the file cannot drift from the code.

What still validates a call is the real thing: each tool's argument model (pydantic, unknown
names refused) is created at registration but builds its validator on the tool's first call.
Results are not validated again on the server: every tool returns `structured(model)`, a dump of
a validated model, and clients check structuredContent against the published outputSchema.
"""

from __future__ import annotations

import inspect
import json
import typing
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.resolve import Resolve, build_resolver_plans, find_resolved_parameters
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp_types import ToolAnnotations
from pydantic import BaseModel, ConfigDict, create_model

from tools.schema import compact_schema

__all__ = ["SCHEMA_FILE", "LazyArguments", "build_tool", "derive_schemas", "published_schemas"]

SCHEMA_FILE = Path(__file__).with_name("published_schemas.json")


class LazyArguments(ArgModelBase):
    """Base of every tool's argument model: unknown names refused, validator built on first use."""

    # The SDK's own base ignores unknown names, so `limt=5` would silently be the default 20.
    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", defer_build=True)


@cache
def published_schemas() -> dict[str, dict[str, Any]]:
    """Tool name -> {"inputSchema", "outputSchema"}, as derived from the code by `derive_schemas`."""
    loaded: dict[str, dict[str, Any]] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return loaded


def derive_schemas(fn: Callable[..., Any]) -> dict[str, Any]:
    """A tool's published schemas the SDK's way (slow: for the schema file and its test)."""
    tool = Tool.from_function(fn, structured_output=True)
    if tool.output_schema is None:
        raise TypeError(f"{fn.__name__} must return a pydantic model: every tool publishes an outputSchema")
    return {
        "inputSchema": compact_schema(tool.parameters),
        "outputSchema": compact_schema(tool.output_schema, output=True),
    }


def build_tool(fn: Callable[..., Any], annotations: ToolAnnotations, schemas: dict[str, Any]) -> Tool:
    """The SDK's Tool for `fn`, with the given published schemas and a lazily built argument model."""
    signature = inspect.signature(fn)
    hints = typing.get_type_hints(fn, include_extras=True)  # evaluated once, not once per SDK helper
    context_kwarg = next((name for name in signature.parameters if _is_context(hints.get(name))), None)
    # The SDK's own reading of Resolve(...) parameters, asked only where one is present: it
    # evaluates every annotation again, which for ten tools out of twelve finds nothing.
    resolved = find_resolved_parameters(fn) if any(_has_resolve(hint) for hint in hints.values()) else {}
    skip = {context_kwarg, *resolved}
    fields: dict[str, Any] = {}
    for name, param in signature.parameters.items():
        if name in skip:
            continue
        if name.startswith("_") or (hasattr(BaseModel, name) and callable(getattr(BaseModel, name))):
            raise TypeError(f"{fn.__name__}: parameter {name!r} would shadow pydantic; rename it")
        annotation = hints.get(name, Any)
        fields[name] = annotation if param.default is inspect.Parameter.empty else (annotation, param.default)
    arg_model = create_model(f"{fn.__name__}Arguments", __base__=LazyArguments, **fields)
    return Tool(
        fn=fn,
        name=fn.__name__,
        description=inspect.cleandoc(fn.__doc__ or ""),
        parameters=schemas["inputSchema"],
        fn_metadata=FuncMetadata(arg_model=arg_model, output_schema=schemas["outputSchema"]),
        is_async=inspect.iscoroutinefunction(fn),
        context_kwarg=context_kwarg,
        resolved_params=resolved,
        resolver_plans=build_resolver_plans(resolved, set(fields)),
        annotations=annotations,
    )


def _is_context(annotation: Any) -> bool:
    target = typing.get_origin(annotation) or annotation
    return inspect.isclass(target) and issubclass(target, Context)


def _has_resolve(annotation: Any) -> bool:
    """Whether a Resolve(...) marker appears anywhere in the annotation (the SDK then says where it may)."""
    if isinstance(annotation, Resolve):
        return True
    return any(_has_resolve(arg) for arg in typing.get_args(annotation)) or any(
        isinstance(m, Resolve) for m in getattr(annotation, "__metadata__", ())
    )
