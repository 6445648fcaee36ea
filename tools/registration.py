"""Tools built for a fast start: published schemas read from a file derived from the code, argument models built lazily.

A host spawns the server and waits for tools/list. Deriving each tool's schemas the SDK's way
(`Tool.from_function`: an argument model, two JSON Schemas from pydantic, then our compaction)
costs about 5 ms a tool on a 2-core machine, every start. The result depends only on the code,
so it is derived once, kept in `published_schemas.json` beside this module, and read at start;
`tests/tools/test_published_schemas.py` derives it again the SDK's way and fails on any
difference (regenerate with `UPDATE_SNAPSHOTS=1`), so the file cannot drift from the code.

What still validates a call is the real thing: each tool's argument model (pydantic, unknown
names refused), created from the function's signature on the tool's first call. Only the
parameters the published inputSchema does not list (the context, a consent resolver) have
their annotations read at start: evaluating every annotation and creating twelve models
would cost about 15 ms of each spawn for tools a host may never call.
Results are not validated again on the server: every tool returns `structured(model)`, a dump of
a validated model, and clients check structuredContent against the published outputSchema.
"""

from __future__ import annotations

import inspect
import json
import typing
from collections.abc import Callable
from functools import cache, partial
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.resolve import Resolve, build_resolver_plans, find_resolved_parameters
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp_types import ToolAnnotations
from pydantic import BaseModel, ConfigDict, PrivateAttr, create_model

from outboundcalls_mcp.tools.schema import compact_schema

__all__ = ["SCHEMA_FILE", "LazyArguments", "LazyFuncMetadata", "build_tool", "derive_schemas", "published_schemas"]

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


class LazyFuncMetadata(FuncMetadata):
    """The SDK's FuncMetadata with the argument model created on the tool's first call."""

    _make_arguments: Callable[[], type[ArgModelBase]] | None = PrivateAttr(default=None)

    def arguments_model(self) -> type[ArgModelBase]:
        """The argument model, created now if this is the first time it is needed."""
        if self._make_arguments is not None:
            self.arg_model = self._make_arguments()
            self._make_arguments = None
        return self.arg_model

    def validate_arguments(self, arguments_to_validate: dict[str, Any]) -> dict[str, Any]:
        self.arguments_model()
        return super().validate_arguments(arguments_to_validate)


def build_tool(fn: Callable[..., Any], annotations: ToolAnnotations, schemas: dict[str, Any]) -> Tool:
    """The SDK's Tool for `fn`, with the given published schemas and an argument model made on first use."""
    signature = inspect.signature(fn)
    published = set(schemas["inputSchema"].get("properties", {}))
    for name in published:
        if name.startswith("_") or (hasattr(BaseModel, name) and callable(getattr(BaseModel, name))):
            raise TypeError(f"{fn.__name__}: parameter {name!r} would shadow pydantic; rename it")
    # The parameters that are not arguments: the context, and those the SDK resolves (consent).
    others = {name: _annotation(fn, param) for name, param in signature.parameters.items() if name not in published}
    context_kwarg = next((name for name, hint in others.items() if _is_context(hint)), None)
    # The SDK's own reading of Resolve(...) parameters, asked only where one is present: it
    # evaluates every annotation again, which for ten tools out of twelve finds nothing.
    resolved = find_resolved_parameters(fn) if any(_has_resolve(hint) for hint in others.values()) else {}
    # A parameter neither published nor context nor resolved, or a published one gone: a stale file.
    disagree = (set(others) - {context_kwarg, *resolved}) | (published - set(signature.parameters))
    if disagree:
        raise TypeError(
            f"{fn.__name__}: its signature and tools/published_schemas.json disagree on {sorted(disagree)}; "
            "regenerate the file as tests/tools/test_published_schemas.py says"
        )
    metadata = LazyFuncMetadata(arg_model=LazyArguments, output_schema=schemas["outputSchema"])
    metadata._make_arguments = partial(_argument_model, fn, signature, published)
    return Tool(
        fn=fn,
        name=fn.__name__,
        description=inspect.cleandoc(fn.__doc__ or ""),
        parameters=schemas["inputSchema"],
        fn_metadata=metadata,
        is_async=inspect.iscoroutinefunction(fn),
        context_kwarg=context_kwarg,
        resolved_params=resolved,
        resolver_plans=build_resolver_plans(resolved, published),
        annotations=annotations,
    )


def _argument_model(fn: Callable[..., Any], signature: inspect.Signature, names: set[str]) -> type[ArgModelBase]:
    """The pydantic model of `fn`'s arguments (`names`), with its annotations and defaults."""
    hints = typing.get_type_hints(fn, include_extras=True)
    fields: dict[str, Any] = {}
    for name, param in signature.parameters.items():
        if name not in names:
            continue
        annotation = hints.get(name, Any)
        fields[name] = annotation if param.default is inspect.Parameter.empty else (annotation, param.default)
    return create_model(f"{fn.__name__}Arguments", __base__=LazyArguments, **fields)


def _annotation(fn: Callable[..., Any], param: inspect.Parameter) -> Any:
    """One parameter's annotation, evaluated as typing.get_type_hints would, without evaluating the rest."""
    if isinstance(param.annotation, str):
        return eval(param.annotation, fn.__globals__)  # noqa: S307 - the module's own annotation text
    return None if param.annotation is inspect.Parameter.empty else param.annotation


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
